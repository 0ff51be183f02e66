"""What `finetune status` imports: its start is the fleet plan (once; then its recorded
names) and botocore, nothing heavier.

Each run is a fresh interpreter that runs the command to its end and then reports which of
the modules that would slow its start got imported on the way (the CDK through jsii, boto3
with s3transfer, rich; and, once the plan's names are recorded, the spec, the plan and
PyYAML; pydantic stays, typer parses the flags with it). A structural guard, not a timing:
benchmarks/cli_start.py times it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from importlib import resources
from pathlib import Path

from finetune_stack import deploy_stack
from finetune_world import FinetuneWorld
from moto_server import offline_aws_environment

from inferfleet.constructs.finetune_handlers.jobs import Job, JobStatus, JobStore, utc_now_iso
from inferfleet.infra.plan import load_fleet_plan

REPO_ROOT = Path(__file__).resolve().parents[3]
HEAVY = ("aws_cdk", "jsii", "boto3", "s3transfer", "rich")
PLANNING = ("inferfleet.infra.plan", "inferfleet.infra.spec", "yaml")
PROBE = textwrap.dedent(
    """
    import json, sys
    from inferfleet.cli.main import main
    try:
        main(sys.argv[2:])
        code = 0
    except SystemExit as exit:
        code = exit.code or 0
    loaded = sorted(name for name in json.loads(sys.argv[1]) if name in sys.modules)
    print(json.dumps({"exit": code, "loaded": loaded}), file=sys.stderr)
    """
)


def run_fresh(
    *argv: str, env: dict[str, str], watched: tuple[str, ...] = HEAVY
) -> tuple[dict, str]:
    """The probe's report (which ``watched`` modules got imported) and the command's stdout."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(watched), *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=120,
    )
    report = json.loads(result.stderr.strip().splitlines()[-1])
    return report, result.stdout


def test_status_from_a_fleet_file_reads_the_job_without_boto3_cdk_or_rich(moto, tmp_path: Path):
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(resources.files("inferfleet.infra").joinpath("example_fleet.yaml").read_text())
    shutil.copy(REPO_ROOT / "cdk.context.json", tmp_path / "cdk.context.json")
    plan = load_fleet_plan(fleet)
    region = plan.personalization_regions[0]
    world = FinetuneWorld(suffix="start", region=region)
    deploy_stack(world, plan.region(region).stack_name, "users")
    job = Job(
        user_id="ada",
        job_id="j1",
        model_id="poems",
        status=JobStatus.QUEUED,
        data_uri=f"s3://{world.data_bucket}/uploads/ada/j1/data/",
        created_at=utc_now_iso(),
        hyperparameters={"epochs": "3"},
        attempts=2,
    )
    assert JobStore(world.client("dynamodb"), world.jobs_table, world.models_table).register(job)
    env = {**os.environ, **offline_aws_environment(moto), "XDG_CACHE_HOME": str(tmp_path / "c")}
    env.pop("AWS_PROFILE", None)
    status = ("finetune", "status", "j1", "--user", "ada", "--config", str(fleet), "--json")

    first, first_out = run_fresh(*status, env=env, watched=HEAVY + PLANNING)
    again, again_out = run_fresh(*status, env=env, watched=HEAVY + PLANNING)

    assert first == {"exit": 0, "loaded": sorted(PLANNING)}
    assert again == {"exit": 0, "loaded": []}
    assert again_out == first_out
    shown = json.loads(again_out)
    assert (shown["status"], shown["attempts"], shown["hyperparameters"]) == (
        "QUEUED",
        2,
        {"epochs": "3"},
    )


def test_status_help_imports_none_of_them():
    report, out = run_fresh("finetune", "status", "--help", env=dict(os.environ))
    assert report == {"exit": 0, "loaded": []}
    assert "finetune status [OPTIONS]" in out and "--user" in out
