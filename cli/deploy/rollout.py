"""The rollout engine: regions one after another in the order of the fleet file.

The first region is the canary. After the synth, a preflight of the whole run checks
that a Docker engine answers when the stacks have image assets to build (outside
emulator mode). Each region then goes through preflight (bootstrapped?), ``cdk
deploy`` of its stack, a wait for the ECS services and ALB targets, and a smoke
request per service; the first failing step stops the rollout, and the regions after
it are not touched. ``destroy`` walks the regions in reverse order.

A fleet with a ``traffic`` section has a global stack too (the plan's ``global_plan``). It
points at every region's load balancers, so a rollout of every region deploys it last, with
the regional stacks' outputs as its parameters (read from CloudFormation, so regions
deployed earlier count too); ``destroy`` of every region deletes it first. A rollout of some
regions leaves it alone. ``deploy --dry-run`` of every region diffs it last too, with the
parameter values a deploy would pass (templates alone while a region is not deployed yet).

The work folder (``--out``) is claimed as this command's (see
:mod:`inferfleet.cli.output_folder`). A region's outputs file is replaced only by
the outputs of a deploy that succeeded; a failed or interrupted deploy leaves the
previous one in place.

Against an emulator (``--endpoint-url``; written for moto's server mode):

- the app is synthesized in emulator mode (context ``inferfleet:emulator=true``), which
  leaves out what moto cannot run; regional_stack lists exactly what;
- ``cdk deploy`` uses ``--method direct``: moto's change-set execution creates the
  resources but never the stack outputs; ``cdk diff`` uses ``--method template``: moto
  cannot create the read-only change set;
- the waits and smoke requests are reported as skipped, with the reason: the emulator
  launches no instances and serves no load balancer, so services never become stable
  and endpoints never answer. The stacks themselves are deployed and their outputs read;
- ``destroy`` works for fleets that import their VPC (``regions[].vpc``); moto cannot
  delete a new VPC's NAT gateway, internet gateway, routes and flow log, so deleting such
  a stack fails there (the command says so and stops).
"""

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from inferfleet.cli import output_folder
from inferfleet.cli.aws import AwsAccess
from inferfleet.cli.deploy.cdk_cli import CdkCli, CdkRun, resource_progress, stacks_with_differences
from inferfleet.cli.deploy.events import Event, EventStream, Step, StepFailed
from inferfleet.cli.deploy.preflight import (
    check_account,
    check_bootstrapped,
    check_docker,
    docker_image_assets,
)
from inferfleet.cli.deploy.smoke import grpc_smoke_request, smoke_request
from inferfleet.cli.deploy.waiters import (
    Deadline,
    as_detail,
    wait_services_stable,
    wait_targets_healthy,
)
from inferfleet.cli.errors import UserError
from inferfleet.infra import names
from inferfleet.infra.plan import FleetPlan, GlobalPlan

WRITER = "inferfleet deploy"
WORKDIR_FLAG = "--out"
EMULATOR_DIFF_REASON = "the emulator cannot create the change set that compares parameter values"
EMULATOR_SKIP_REASON = (
    "skipped against an emulator ({url}): it starts no instances and serves no load "
    "balancer, so services never become stable and endpoints never answer"
)


@dataclass(frozen=True)
class RolloutOptions:
    wait: bool = True
    smoke: bool = True
    wait_timeout_s: float = 1800
    poll_s: float = 15


@dataclass
class RolloutResult:
    command: str
    completed: list[str] = field(default_factory=list)
    untouched: list[str] = field(default_factory=list)
    failed_region: str | None = None
    failed_phase: str | None = None
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.failed_phase is None

    def summary(self) -> str:
        done = ", ".join(self.completed) or "none"
        if self.ok:
            return f"{self.command} finished: {done}"
        where = f"at {self.failed_region}" if self.failed_region else "before any region"
        return (
            f"{self.command} stopped {where} in step {self.failed_phase}: {self.message}. "
            f"Completed: {done}; untouched: {', '.join(self.untouched) or 'none'}"
        )


def emit_summary(events: EventStream, result: RolloutResult) -> None:
    events.emit(
        Event(
            "summary",
            "succeeded" if result.ok else "failed",
            message=result.summary(),
            detail=asdict(result),
        )
    )


def rollout_regions(plan: FleetPlan, selected: list[str] | None, *, source: str) -> list[str]:
    """``selected`` regions (all when None) in the plan's deploy order."""
    known = list(plan.region_names)
    unknown = [name for name in selected or [] if name not in known]
    if unknown:
        raise UserError(
            f"--region {', '.join(unknown)}: not in {source}; use some of {', '.join(known)}"
        )
    return [name for name in known if selected is None or name in selected]


class Rollout:
    def __init__(
        self,
        plan: FleetPlan,
        *,
        config: Path,
        aws: AwsAccess,
        cdk: CdkCli,
        workdir: Path,
        events: EventStream,
    ) -> None:
        self.plan = plan
        self.config = config.resolve()
        self.aws = aws
        self.cdk = cdk
        self.workdir = workdir.resolve()
        self.events = events
        self.assembly = self.workdir / "assembly"
        self.account = ""

    def stack(self, region: str) -> str:
        return self.plan.region(region).stack_name

    # --- commands ------------------------------------------------------------

    def units(self, command: str, regions: list[str]) -> list[str]:
        """What ``command`` walks, in order: the regions (reversed by destroy) and, when
        every region is in it, the global stack — last to deploy and diff, first to destroy."""
        whole = self._global_name is not None and set(regions) == set(self.plan.region_names)
        glob = [self._global_name] if whole else []
        if command == "destroy":
            return [*glob, *reversed(regions)]  # type: ignore[list-item]
        return [*regions, *glob]  # type: ignore[list-item]

    def deploy(self, regions: list[str], options: RolloutOptions) -> RolloutResult:
        units = self.units("deploy", regions)
        return self._run(
            "deploy",
            units,
            lambda unit: (
                self._deploy_global()
                if unit == self._global_name
                else self._deploy_region(unit, options)
            ),
            before_regions=lambda units: self._docker_preflight(regions),
        )

    def diff(self, regions: list[str]) -> RolloutResult:
        return self._run(
            "diff",
            self.units("diff", regions),
            lambda unit: (
                self._diff_global() if unit == self._global_name else self._diff_region(unit)
            ),
        )

    def destroy(self, regions: list[str]) -> RolloutResult:
        return self._run(
            "destroy",
            self.units("destroy", regions),
            lambda unit: self._destroy_stack(
                *(
                    (self.plan.global_plan.region, unit)  # type: ignore[union-attr]
                    if unit == self._global_name
                    else (unit, self.stack(unit))
                )
            ),
        )

    @property
    def _global_name(self) -> str | None:
        return self.plan.global_plan.stack_name if self.plan.global_plan else None

    def _run(
        self,
        command: str,
        units: list[str],
        per_unit: Callable[[str], None],
        before_regions: Callable[[list[str]], None] = lambda units: None,
    ) -> RolloutResult:
        output_folder.claim(self.workdir, flag=WORKDIR_FLAG, writer=WRITER)
        result = RolloutResult(command, untouched=list(units))
        regions = [unit for unit in units if unit != self._global_name]
        try:
            self._credentials(regions)
            self._synth()
            before_regions(units)
            for unit in units:
                result.untouched.remove(unit)
                try:
                    per_unit(unit)
                except StepFailed:
                    result.failed_region = unit
                    raise
                result.completed.append(unit)
        except StepFailed as failure:
            result.failed_phase = self.events.events[-1].phase
            result.message = str(failure)
        emit_summary(self.events, result)
        return result

    # --- steps ---------------------------------------------------------------

    def _credentials(self, regions: list[str]) -> None:
        with self.events.step("credentials") as step:
            account = self.aws.account(regions[0])
            for region in regions:
                expected = self.plan.region(region).account
                check_account(expected, account, source=f"{self.config.name} ({region})")
            step.detail = {"account": account, "endpoint_url": self.aws.endpoint_url}
            self.account = account

    def _synth(self) -> None:
        with self.events.step("synth") as step:
            run = self.cdk.synth(
                config=self.config,
                assembly=self.assembly,
                emulator=self.aws.emulated,
                log=self.workdir / "logs" / "synth.log",
                cwd=self.config.parent,
            )
            _raise_unless_ok(run, "cdk synth")
            step.detail = {"assembly": str(self.assembly), "emulator": self.aws.emulated}

    def _docker_preflight(self, regions: list[str]) -> None:
        """Image assets need a Docker engine to build; say so before any region changes."""
        with self.events.step("preflight") as step:
            if self.aws.emulated:
                step.skip("skipped against an emulator: it publishes no images")
                return
            images = docker_image_assets(self.assembly, [self.stack(r) for r in regions])
            step.detail = {"docker_images": images, "docker": check_docker(images)}

    def _deploy_region(self, region: str, options: RolloutOptions) -> None:
        stack = self.stack(region)
        with self.events.step("preflight", region=region, stack=stack) as step:
            step.detail = {"bootstrap_version": check_bootstrapped(self.aws, region, self.account)}
        with self.events.step("deploy", region=region, stack=stack) as step:
            outputs_file = self.workdir / "outputs" / f"{region}.json"
            # The CLI writes next to the previous outputs; they stay until these replace them.
            written = outputs_file.with_name(f".{outputs_file.name}.deploying")
            written.unlink(missing_ok=True)
            try:
                run = self.cdk.deploy(
                    stack,
                    assembly=self.assembly,
                    outputs_file=written,
                    emulator=self.aws.emulated,
                    log=self.workdir / "logs" / f"deploy-{region}.log",
                    cwd=self.config.parent,
                    on_line=self._report_resource_progress,
                )
                _raise_unless_ok(run, "cdk deploy")
                outputs = self._outputs(region, written)
                written.replace(outputs_file)
            finally:
                written.unlink(missing_ok=True)
            step.outputs = outputs
            step.detail = {"outputs_file": str(outputs_file)}
        self.verify(region, outputs, options)

    def _deploy_global(self) -> None:
        """The global stack, its parameters read from the regional stacks' outputs."""
        plan = self.plan.global_plan
        assert plan is not None
        stack = plan.stack_name
        with self.events.step("deploy", region=plan.region, stack=stack) as step:
            values = global_parameter_values(self.aws, plan)
            outputs_file = self.workdir / "outputs" / "global.json"
            written = outputs_file.with_name(f".{outputs_file.name}.deploying")
            written.unlink(missing_ok=True)
            try:
                run = self.cdk.deploy(
                    stack,
                    assembly=self.assembly,
                    outputs_file=written,
                    emulator=self.aws.emulated,
                    log=self.workdir / "logs" / "deploy-global.log",
                    cwd=self.config.parent,
                    on_line=self._report_resource_progress,
                    parameters=values,
                )
                _raise_unless_ok(run, "cdk deploy")
                outputs = self._stack_outputs(stack, plan.outputs, written)
                written.replace(outputs_file)
            finally:
                written.unlink(missing_ok=True)
            step.outputs = outputs
            step.detail = {"outputs_file": str(outputs_file), "parameters": len(values)}

    def verify(self, region: str, outputs: dict[str, str], options: RolloutOptions) -> None:
        """The wait and smoke steps of a deployed region, from its stack outputs."""
        stack = self.stack(region)
        with self.events.step("wait", region=region, stack=stack) as step:
            if not self._skipped(step, None if options.wait else "--no-wait"):
                self._wait(region, outputs, options, step)
        with self.events.step("smoke", region=region, stack=stack) as step:
            off = "--no-wait" if not options.wait else None if options.smoke else "--no-smoke"
            if not self._skipped(step, off):
                self._smoke(region, outputs, step)

    def _diff_region(self, region: str) -> None:
        self._diff_stack(region, self.stack(region), log_name=region)

    def _diff_global(self) -> None:
        """The global stack's diff with the parameter values deploy would pass; while a
        region is not deployed yet (deploy would deploy it first) they are not known, and the
        templates alone are compared."""
        plan = self.plan.global_plan
        assert plan is not None
        values: dict[str, str] | None
        try:
            values = global_parameter_values(self.aws, plan)
        except StepFailed as unknown:
            values, basis = None, f"templates only: {unknown}"
        else:
            basis = f"a change set with the {len(values)} parameters of the regional stacks"
            if self.aws.emulated:
                values, basis = None, f"templates only: {EMULATOR_DIFF_REASON}"
        self._diff_stack(
            plan.region,
            plan.stack_name,
            log_name="global",
            parameters=values,
            template_only=values is None,
            compared=basis,
        )

    def _diff_stack(
        self,
        region: str,
        stack: str,
        *,
        log_name: str,
        parameters: dict[str, str] | None = None,
        template_only: bool = False,
        compared: str | None = None,
    ) -> None:
        with self.events.step("diff", region=region, stack=stack) as step:
            run = self.cdk.diff(
                stack,
                assembly=self.assembly,
                emulator=self.aws.emulated,
                log=self.workdir / "logs" / f"diff-{log_name}.log",
                cwd=self.config.parent,
                parameters=parameters,
                template_only=template_only,
            )
            _raise_unless_ok(run, "cdk diff")
            differences = stacks_with_differences(run.output)
            step.message = "no differences" if differences == 0 else "differences found"
            step.detail = {"differences": differences, "diff": _diff_text(run.output, stack)}
            if compared is not None:
                step.detail["compared"] = compared

    def _destroy_stack(self, region: str, stack: str) -> None:
        with self.events.step("destroy", region=region, stack=stack):
            run = self.cdk.destroy(
                stack,
                assembly=self.assembly,
                log=self.workdir
                / "logs"
                / f"destroy-{'global' if stack == self._global_name else region}.log",
                cwd=self.config.parent,
                on_line=self._report_resource_progress,
            )
            _raise_unless_ok(run, "cdk destroy")
            from inferfleet.cli.deploy.status import stack_state

            state = stack_state(self.aws, region, stack)
            if state is not None:
                raise StepFailed(f"{stack} still exists ({state.status}) after cdk destroy")

    # --- helpers -------------------------------------------------------------

    def _skipped(self, step: Step, flag: str | None) -> bool:
        if flag is not None:
            step.skip(f"skipped: {flag}")
        elif self.aws.emulated:
            step.skip(EMULATOR_SKIP_REASON.format(url=self.aws.endpoint_url))
        return step.status == "skipped"

    def _report_resource_progress(self, line: str) -> None:
        progress = resource_progress(line)
        if progress is not None:
            self.events.progress(f"{progress[0]}/{progress[1]} resources")

    def _outputs(self, region: str, outputs_file: Path) -> dict[str, str]:
        return self._stack_outputs(
            self.stack(region), self.plan.region(region).outputs, outputs_file
        )

    def _stack_outputs(
        self, stack: str, expected: tuple[str, ...], outputs_file: Path
    ) -> dict[str, str]:
        try:
            outputs = json.loads(outputs_file.read_text()).get(stack, {})
        except (OSError, ValueError):
            outputs = {}
        missing = [key for key in expected if key not in outputs]
        if missing:
            raise StepFailed(
                f"{stack} deployed without the outputs {', '.join(missing)}; the stack is not "
                "the one this fleet file describes (check the stack in the CloudFormation console)"
            )
        return outputs

    def _wait(
        self, region: str, outputs: dict[str, str], options: RolloutOptions, step: Step
    ) -> None:
        deadline = Deadline(options.wait_timeout_s)
        counts = wait_services_stable(
            self.aws.client("ecs", region),
            outputs[names.CLUSTER_NAME],
            deadline,
            delay_s=options.poll_s,
        )
        health = wait_targets_healthy(
            self.aws.client("elbv2", region),
            [outputs[service.target_group_output] for service in self.plan.region(region).services],
            deadline,
            delay_s=options.poll_s,
        )
        step.detail = as_detail(counts, health)

    def _smoke(self, region: str, outputs: dict[str, str], step: Step) -> None:
        results = {}
        for service in self.plan.region(region).services:
            endpoint = outputs[service.endpoint_output].rstrip("/")
            if service.props.protocol == "grpc":
                results[service.name] = asdict(grpc_smoke_request(endpoint))
                continue
            path = service.props.health_check.path
            results[service.name] = asdict(smoke_request(endpoint + path))
        step.detail = {"requests": results}


def global_parameter_values(aws: AwsAccess, plan: GlobalPlan) -> dict[str, str]:
    """The global stack's parameters from the regional stacks' outputs in CloudFormation."""
    from inferfleet.cli.deploy.status import stack_state

    outputs_by_stack = {}
    for parameter in plan.parameters:
        if parameter.stack in outputs_by_stack:
            continue
        state = stack_state(aws, parameter.region, parameter.stack)
        if state is None:
            raise StepFailed(
                f"{plan.stack_name} points at {parameter.stack}, which is not deployed; deploy "
                "every region first"
            )
        outputs_by_stack[parameter.stack] = state.outputs
    try:
        return plan.parameter_values(outputs_by_stack)
    except KeyError as error:
        raise StepFailed(
            f"{error.args[0]}: it was deployed from another fleet file; deploy every region "
            "with this one"
        ) from None


def _raise_unless_ok(run: CdkRun, what: str) -> None:
    if not run.ok:
        raise StepFailed(f"{what} failed: {run.error_summary()} (full output: {run.log})")


def _diff_text(output: str, stack: str) -> str:
    lines = output.splitlines()
    for index, line in enumerate(lines):
        if line.startswith(f"Stack {stack}"):
            return "\n".join(lines[index:]).strip()
    return output.strip()
