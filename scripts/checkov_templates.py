"""checkov over synthesized templates: fails on any failed check the README does not accept.

    python scripts/checkov_templates.py cdk.out [--readme README.md] [--json]

Every check that may fail is listed in the README's "checkov" table with its reason; a check
that fails and is not listed makes this exit 1, and a listed check that no longer fails is
named too (drop it from the table). checkov runs from the virtualenv scripts/setup.sh makes for
it (``$INFERFLEET_TOOLS_DIR``, default ``~/.cache/inferfleet``), or ``$INFERFLEET_CHECKOV``.
Exit codes: 0 clean, 1 unaccepted failures or checkov failed, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TABLE_START = "<!-- checkov-accepted:start -->"
TABLE_END = "<!-- checkov-accepted:end -->"
_CHECK = re.compile(r"CKV2?_AWS_\d+")


def checkov_binary() -> str | None:
    explicit = os.environ.get("INFERFLEET_CHECKOV")
    if explicit:
        return explicit
    pins = (REPO / "constraints.txt").read_text(encoding="utf-8")
    version = re.search(r"^checkov==(\S+)$", pins, re.MULTILINE)
    tools = Path(os.environ.get("INFERFLEET_TOOLS_DIR", Path.home() / ".cache" / "inferfleet"))
    if version:
        candidate = tools / f"checkov-{version[1]}" / "bin" / "checkov"
        if candidate.exists():
            return str(candidate)
    return shutil.which("checkov")


def accepted_checks(readme: Path) -> dict[str, str]:
    """Check id -> reason, from the README's table between the checkov markers."""
    text = readme.read_text(encoding="utf-8")
    if TABLE_START not in text or TABLE_END not in text:
        raise ValueError(f"{readme}: no table between {TABLE_START} and {TABLE_END}")
    table = text.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0]
    accepted = {}
    for line in table.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        checks = _CHECK.findall(cells[0])
        for check in checks:
            if len(cells) < 2 or not cells[-1]:
                raise ValueError(f"{readme}: {check} is listed without a reason")
            accepted[check] = cells[-1]
    return accepted


def failed_checks(checkov: str, templates: list[Path]) -> dict[str, dict[str, object]]:
    """Check id -> {name, resources} of every failed check."""
    command = [checkov, "--framework", "cloudformation", "--output", "json", "--quiet"]
    for template in templates:
        command += ["--file", str(template)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    # checkov exits 1 when a check fails; anything else, or no JSON, is checkov failing.
    try:
        reports = json.loads(done.stdout)
    except json.JSONDecodeError:
        raise RuntimeError(
            f"checkov exited {done.returncode} without a report: {done.stderr.strip()[-800:]}"
        ) from None
    if done.returncode not in (0, 1):
        raise RuntimeError(f"checkov exited {done.returncode}: {done.stderr.strip()[-800:]}")
    failed: dict[str, dict[str, object]] = defaultdict(lambda: {"name": "", "resources": []})
    for report in reports if isinstance(reports, list) else [reports]:
        for check in report.get("results", {}).get("failed_checks", []):
            entry = failed[check["check_id"]]
            entry["name"] = check["check_name"]
            entry["resources"].append(  # type: ignore[union-attr]
                f"{Path(check['file_path']).name}: {check['resource']}"
            )
    return dict(failed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("assembly", type=Path, help="a cloud assembly (cdk.out) folder")
    parser.add_argument("--readme", type=Path, default=REPO / "README.md")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    templates = sorted(args.assembly.glob("*.template.json"))
    if not templates:
        print(
            f"error: {args.assembly} holds no *.template.json; pass the folder "
            "`inferfleet synth --out` wrote",
            file=sys.stderr,
        )
        return 2
    try:
        accepted = accepted_checks(args.readme)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    checkov = checkov_binary()
    if checkov is None:
        print(
            "error: checkov not found; scripts/setup.sh installs it, or set INFERFLEET_CHECKOV",
            file=sys.stderr,
        )
        return 1
    try:
        failed = failed_checks(checkov, templates)
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    unaccepted = {check: found for check, found in failed.items() if check not in accepted}
    stale = sorted(set(accepted) - set(failed))
    if args.json:
        print(
            json.dumps(
                {
                    "templates": [t.name for t in templates],
                    "failed": failed,
                    "unaccepted": sorted(unaccepted),
                    "accepted_not_failing": stale,
                },
                indent=2,
            )
        )
    else:
        for check, found in sorted(failed.items()):
            mark = "accepted" if check in accepted else "NOT ACCEPTED"
            print(f"{check} {mark}: {found['name']} ({len(found['resources'])})")  # type: ignore[arg-type]
            if check not in accepted:
                for resource in found["resources"]:  # type: ignore[union-attr]
                    print(f"    {resource}")
        for check in stale:
            print(f"{check} is accepted in the README but no longer fails: drop it from the table")
    return 1 if unaccepted else 0


if __name__ == "__main__":
    sys.exit(main())
