"""`cdk synth` (the pinned CDK CLI running cdk.json's app) and `inferfleet synth` agree."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from inferfleet.cli.synth import synthesize
from inferfleet.infra.plan import load_fleet_plan

REPO_ROOT = Path(__file__).resolve().parents[2]
CDK = REPO_ROOT / "node_modules" / ".bin" / "cdk"


@pytest.mark.slow
def test_cdk_cli_and_in_process_synth_give_the_same_templates(tmp_path):
    assert CDK.exists(), "the pinned CDK CLI is missing: run scripts/setup.sh (npm ci)"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        [str(CDK), "synth", "--quiet", "--output", str(tmp_path / "cli.out")],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr

    report = synthesize(
        load_fleet_plan(REPO_ROOT / "fleet.yaml"),
        config_dir=REPO_ROOT,
        outdir=tmp_path / "in-process.out",
    )
    assert report.passed
    names = [stack.name for stack in report.stacks]
    assert len(names) == 3
    for name in names:
        from_cli = json.loads((tmp_path / "cli.out" / f"{name}.template.json").read_text())
        in_process = json.loads((tmp_path / "in-process.out" / f"{name}.template.json").read_text())
        assert from_cli == in_process, name
