"""The fine-tune CLI against moto: resources found from a real CloudFormation stack's outputs."""

from __future__ import annotations

import json
import shutil
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from finetune_stack import Deployed, deploy_stack
from finetune_world import FakeLambdaContext, FinetuneWorld

from inferfleet.cli.main import main
from inferfleet.constructs.finetune_handlers import launcher, publisher, register
from inferfleet.constructs.finetune_handlers.layout import manifest_key
from inferfleet.infra.plan import load_fleet_plan

REPO_ROOT = Path(__file__).resolve().parents[3]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    captured = capsys.readouterr()
    return int(exited.value.code or 0), captured.out, captured.err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def _training_data(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    (data / "shards").mkdir(parents=True)
    (data / "train.jsonl").write_text('{"text": "hello"}\n')
    (data / "shards" / "part-1.jsonl").write_text('{"text": "world"}\n')
    return data


def test_submit_uploads_data_then_the_manifest_and_prints_the_job_id(
    deployed: Deployed, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = _training_data(tmp_path)
    code, out, err = run(
        capsys,
        "finetune", "submit", "--user", "alice", "--data", str(data),
        "--hp", "epochs=3", "--hp", "lr=0.0001", "--model", "poems",
        *deployed.cli_args(),
    )  # fmt: skip

    assert code == 0, err
    job_id = out.strip()
    assert len(job_id) == 32 and f"finetune status {job_id} --user alice" in err
    s3 = deployed.world.client("s3")
    keys = sorted(
        item["Key"] for item in s3.list_objects_v2(Bucket=deployed.world.data_bucket)["Contents"]
    )
    prefix = f"uploads/alice/{job_id}/"
    assert keys == [
        f"{prefix}data/shards/part-1.jsonl",
        f"{prefix}data/train.jsonl",
        f"{prefix}manifest.json",
    ]
    manifest = json.loads(
        s3.get_object(Bucket=deployed.world.data_bucket, Key=manifest_key("alice", job_id))[
            "Body"
        ].read()
    )
    assert manifest == {"hyperparameters": {"epochs": "3", "lr": "0.0001"}, "model_id": "poems"}
    # The manifest is the last object written: its event must not outrun the data.
    puts = [
        entry["url"]
        for entry in deployed.server.recorded_requests()
        if entry["method"] == "PUT" and "/uploads/alice/" in entry["url"]
    ]
    assert puts[-1].endswith("manifest.json") and len(puts) == 3


def test_status_and_list_follow_a_job_to_ready(
    deployed: Deployed, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    world = deployed.world
    submitted = run_json(
        capsys,
        "finetune", "submit", "--user", "bob", "--data", str(_training_data(tmp_path)),
        *deployed.cli_args(),
    )  # fmt: skip
    job_id = submitted["job_id"]
    register.handler(world.s3_event(manifest_key("bob", job_id)), FakeLambdaContext())
    status = ["finetune", "status", job_id, "--user", "bob", *deployed.cli_args()]
    assert run_json(capsys, *status)["status"] == "QUEUED"

    launcher.handler({"sweep": True}, FakeLambdaContext())
    training = run_json(capsys, *status)
    assert training["status"] == "TRAINING" and training["attempts"] == 1
    world.write_training_output(training["training_job_name"])
    publisher.handler(world.training_job_event(training["training_job_name"]), FakeLambdaContext())

    listing = run_json(capsys, "finetune", "list", "--user", "bob", *deployed.cli_args())
    assert [(job["job_id"], job["status"]) for job in listing["jobs"]] == [(job_id, "READY")]
    assert [model["model_id"] for model in listing["models"]] == [job_id]
    assert listing["models"][0]["artifact_url"].endswith(f"/bob/{job_id}/{job_id}.tar.gz")

    code, out, _ = run(capsys, "finetune", "list", "--user", "bob", *deployed.cli_args())
    assert code == 0 and job_id in out and "READY" in out
    code, out, _ = run(capsys, *status)
    assert code == 0 and "READY" in out


def test_status_shows_the_job_of_the_user_asked_for(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two users picked the same job id; each sees their own job."""
    world = deployed.world
    for user, epochs in (("alice", 1), ("mallory", 7)):
        _, event = world.upload(user, "same-id", hyperparameters={"epochs": epochs})
        register.handler(event, FakeLambdaContext())

    for user, epochs in (("alice", "1"), ("mallory", "7")):
        shown = run_json(
            capsys, "finetune", "status", "same-id", "--user", user, *deployed.cli_args()
        )
        assert (shown["user_id"], shown["hyperparameters"]) == (user, {"epochs": epochs})


def _model_record(world: FinetuneWorld, user: str, model: str, version: str, **extra: str) -> None:
    item = {
        "user_id": user,
        "model_id": model,
        "version": version,
        "target_model": f"{user}/{model}/{version}.tar.gz",
        "artifact_url": f"s3://{world.model_bucket}/models/{user}/{model}/{version}.tar.gz",
        **extra,
    }
    world.client("dynamodb").put_item(
        TableName=world.models_table, Item={key: {"S": value} for key, value in item.items()}
    )


def test_invoke_sends_the_current_version_as_target_model(
    deployed: Deployed, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    world = deployed.world
    _model_record(world, "carol", "style-v2", "j7")
    deployed.server.set_sagemaker_endpoint_results(
        [{"Body": '{"generated_text": "hi"}', "ContentType": "application/json"}]
    )
    payload = tmp_path / "request.json"
    payload.write_text('{"inputs": "hello"}')

    result = run_json(
        capsys,
        "invoke", "--user", "carol", "--model", "style-v2", "--payload", str(payload),
        *deployed.cli_args(),
    )  # fmt: skip

    assert result["body"] == '{"generated_text": "hi"}'
    assert (result["target_model"], result["version"]) == ("carol/style-v2/j7.tar.gz", "j7")
    [request] = [
        entry
        for entry in deployed.server.recorded_requests()
        if entry["url"].endswith(f"/endpoints/{deployed.endpoint_name}/invocations")
    ]
    headers = {key.lower(): value for key, value in request["headers"].items()}
    assert headers["x-amzn-sagemaker-target-model"] == "carol/style-v2/j7.tar.gz"
    assert request["body"] == '{"inputs": "hello"}'


def test_invoke_targets_the_users_adapter_component(
    deployed: Deployed, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _model_record(deployed.world, "dora", "tone", "j2", inference_component="ift-0abc")
    deployed.server.set_sagemaker_endpoint_results([{"Body": "ok", "ContentType": "text/plain"}])
    payload = tmp_path / "request.json"
    payload.write_text("{}")

    result = run_json(
        capsys,
        "invoke", "--user", "dora", "--model", "tone", "--payload", str(payload),
        *deployed.cli_args(),
    )  # fmt: skip

    assert (result["inference_component"], result["target_model"]) == ("ift-0abc", None)
    [request] = [
        entry
        for entry in deployed.server.recorded_requests()
        if entry["url"].endswith("/invocations")
    ]
    headers = {key.lower(): value for key, value in request["headers"].items()}
    assert headers["x-amzn-sagemaker-inference-component"] == "ift-0abc"
    assert "x-amzn-sagemaker-target-model" not in headers


def test_invoke_refuses_a_model_the_user_does_not_have(
    deployed: Deployed, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    payload = tmp_path / "request.json"
    payload.write_text("{}")
    code, out, err = run(
        capsys,
        "invoke", "--user", "dan", "--model", "nope", "--payload", str(payload),
        *deployed.cli_args(),
    )  # fmt: skip
    assert code == 1 and out == ""
    assert "user dan has no such model" in err and "Traceback" not in err


def test_the_fleet_file_names_the_stack(
    moto, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    fleet = tmp_path / "fleet.yaml"
    text = resources.files("inferfleet.infra").joinpath("example_fleet.yaml").read_text()
    # The queue in the second region of the fleet, to tell its stack from the canary's.
    fleet.write_text(text.replace("  regions: [us-east-1]\n", "  regions: [us-west-2]\n"))
    shutil.copy(REPO_ROOT / "cdk.context.json", tmp_path / "cdk.context.json")
    plan = load_fleet_plan(fleet)
    assert plan.personalization_regions == ("us-west-2",)
    stack = plan.region("us-west-2").stack_name
    deploy_stack(FinetuneWorld(suffix="fleetfile", region="us-west-2"), stack, "users")

    # Without --region the queue's region is meant, not the fleet's first.
    listing = run_json(
        capsys,
        "finetune", "list", "--user", "erin", "--config", str(fleet), "--endpoint-url", moto.url,
    )  # fmt: skip
    assert listing == {"user_id": "erin", "jobs": [], "models": []}
    code, _, err = run(
        capsys, "finetune", "list", "--user", "erin", "--config", str(fleet),
        "--region", "us-east-1", "--endpoint-url", moto.url,
    )  # fmt: skip
    assert code == 2
    assert "--region us-east-1: the fine-tune queue of" in err and "runs in us-west-2" in err


def test_a_fleet_without_personalization_is_refused(tmp_path: Path, capsys) -> None:
    fleet = tmp_path / "fleet.yaml"
    text = (REPO_ROOT / "fleet.yaml").read_text()
    fleet.write_text(text[: text.index("# Per-user fine-tuning")])
    shutil.copy(REPO_ROOT / "cdk.context.json", tmp_path / "cdk.context.json")
    code, _, err = run(capsys, "finetune", "status", "abc", "--user", "u", "--config", str(fleet))
    assert code == 2
    assert "the fleet has no personalization section" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (
            ["finetune", "submit", "--user", "u", "--data", "missing"],
            2,
            "--data: cannot read missing (no such file)",
        ),
        (["finetune", "submit", "--user", "u", "--data", ".", "--hp", "epochs"], 2, "KEY=VALUE"),
        (["finetune", "list", "--user", "bad user"], 2, "--user 'bad user'"),
        (["finetune", "status", "0123", "--user", "u"], 1, "job 0123 of user u: not found"),
        (["finetune", "status", "0123"], 2, "--user: a job is known by its user and its id"),
        (["finetune", "status", "..", "--user", "u"], 2, "JOB '..': not a job id"),
        (["finetune", "status", "j1", "--user", "a\n"], 2, "--user 'a\\n': not an id"),
        (["finetune", "list", "--user", ".."], 2, "--user '..': not an id"),
    ],
)
def test_bad_input_gets_one_paragraph_and_the_right_exit_code(
    deployed: Deployed, capsys: pytest.CaptureFixture[str], argv, code, message
) -> None:
    exit_code, _, err = run(capsys, *argv, *deployed.cli_args())
    assert exit_code == code
    assert message in err and "Traceback" not in err


TARGET = ["--stack", "s", "--region", "us-east-1"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["finetune", "status", "", *TARGET], "JOB '': not a job id"),
        (["finetune", "status", "../x", *TARGET], "JOB '../x': not a job id"),
        (["finetune", "list", "--user", "u", "--stack", ""], "--stack '': not a stack name"),
        (["finetune", "list", "--user", "u", "--stack", "s", "--region", "us east"], "us east"),
        (["finetune", "list", "--user", "u", "--stack", "s", "--region", ""], "not a region"),
        (["finetune", "list", "--user", "u", *TARGET, "--endpoint-url", ""], "not a URL"),
        (["invoke", "-u", "u", "-m", "m", "-p", ".", *TARGET], "is a folder"),
        (["invoke", "-u", "u", "-m", "m", "-p", "x", "--content-type", " ", *TARGET], "empty"),
    ],
)
def test_empty_and_odd_arguments_are_refused_before_any_call(
    moto, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    moto.restart_recording()
    endpoint = [] if "--endpoint-url" in argv else ["--endpoint-url", moto.url]
    code, out, err = run(capsys, *argv, *endpoint)
    assert code == 2 and out == ""
    assert message in err and "Traceback" not in err
    assert moto.recorded_requests() == []


def test_a_payload_over_the_request_limit_is_refused(
    moto, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    payload = tmp_path / "big.bin"
    with payload.open("wb") as file:
        file.truncate(7 * 1024 * 1024)
    code, _, err = run(
        capsys, "invoke", "-u", "u", "-m", "m", "-p", str(payload), "--stack", "s",
        "--region", "us-east-1", "--endpoint-url", moto.url,
    )  # fmt: skip
    assert code == 2
    assert "7.0 MiB is over SageMaker's 6 MiB limit" in err


def test_a_stack_without_the_fine_tune_outputs_says_so(
    moto, capsys: pytest.CaptureFixture[str]
) -> None:
    cloudformation = FinetuneWorld(suffix="bare", region=moto.region).client("cloudformation")
    template = {"Resources": {"Bucket": {"Type": "AWS::S3::Bucket"}}}
    cloudformation.create_stack(StackName="serving-only", TemplateBody=json.dumps(template))
    code, _, err = run(
        capsys, "finetune", "list", "--user", "u", "--stack", "serving-only",
        "--region", moto.region, "--endpoint-url", moto.url,
    )  # fmt: skip
    assert code == 1
    assert "has no output FinetuneJobsTable" in err
