"""Template assertions for NeuronBatchInference, its summary asset, cdk-nag and cfn-lint."""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Environment, Stack, Validations
from aws_cdk.assertions import Template
from cdk_nag import AwsSolutionsChecks

from inferfleet.constructs.neuron_batch_inference import NeuronBatchInference
from inferfleet.constructs.props.batch_inference import NeuronBatchInferenceProps
from inferfleet.constructs.props.problems import PropsError
from inferfleet.infra.feature_flags import cdk_feature_flags

pytestmark = pytest.mark.slow

ENV = Environment(account="123456789012", region="us-east-1")


def job(**changes: Any) -> NeuronBatchInferenceProps:
    fields: dict[str, Any] = {
        "name": "shop-duplicates",
        "model_artifact": "s3://shop-models/pair/model.tar.gz",
        "input_prefix": "s3://shop-data/pairs/",
        "output_prefix": "s3://shop-data/scores/",
        "instance_type": "ml.inf2.24xlarge",
        "instance_count": 2,
        "schedule": "cron(0 3 ? * MON *)",
        "price_per_instance_hour": 7.5,
    }
    return NeuronBatchInferenceProps(**{**fields, **changes})


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    outdir = tmp_path_factory.mktemp("cdk.out")
    app = App(context=cdk_feature_flags(), outdir=str(outdir))
    Validations.of(app).add_plugins(AwsSolutionsChecks())
    stack = Stack(app, "Batch", env=ENV)
    construct = NeuronBatchInference(stack, "Duplicates", props=job())
    app.synth()
    template = json.loads((outdir / "Batch.template.json").read_text())
    machine = next(
        r for r in template["Resources"].values() if r["Type"] == "AWS::StepFunctions::StateMachine"
    )
    return {
        "json": template,
        "template": Template.from_json(template),
        "construct": construct,
        "outdir": outdir,
        "report": json.loads((outdir / "validation-report.json").read_text()),
        "definition": json.loads(_literal_definition(machine["Properties"]["DefinitionString"])),
    }


def _literal_definition(value: Any) -> str:
    """The definition with CloudFormation references replaced by placeholders."""
    if isinstance(value, str):
        return value
    parts = value["Fn::Join"][1]
    return "".join(part if isinstance(part, str) else "REF" for part in parts)


def resources(synthesized: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [r["Properties"] for r in synthesized["json"]["Resources"].values() if r["Type"] == kind]


def test_the_transform_splits_by_line_in_mini_batches_one_request_per_neuron_core(
    synthesized,
) -> None:
    states = synthesized["definition"]["States"]
    transform = states["Transform"]
    assert transform["Resource"].endswith(":states:::sagemaker:createTransformJob.sync")
    parameters = transform["Parameters"]
    assert parameters["BatchStrategy"] == "MultiRecord"
    assert parameters["MaxConcurrentTransforms"] == 12  # inf2.24xlarge: 6 chips x 2 cores
    assert parameters["TransformInput"]["SplitType"] == "Line"
    assert parameters["TransformInput"]["DataSource"]["S3DataSource"] == {
        "S3DataType": "S3Prefix",
        "S3Uri": "s3://shop-data/pairs/",
    }
    assert parameters["TransformOutput"]["AssembleWith"] == "Line"
    assert parameters["TransformResources"] == {
        "InstanceType": "ml.inf2.24xlarge",
        "InstanceCount": 2,
    }
    assert transform["TimeoutSeconds"] == 24 * 3600
    name = states["Name"]["Parameters"]
    assert (
        name["job_name.$"] == "States.Format('shop-duplicates-{}-{}', $.run.run_id, $.run.attempt)"
    )
    assert name["output_path.$"].startswith("States.Format('s3://shop-data/scores/shop-duplicates-")


def test_transient_job_failures_run_again_under_a_new_name_and_others_fail(synthesized) -> None:
    states = synthesized["definition"]["States"]
    catches = {tuple(c["ErrorEquals"]): c["Next"] for c in states["Transform"]["Catch"]}
    assert catches == {("States.Timeout",): "StopLate", ("States.ALL",): "Transient"}
    (choice,) = states["Transient"]["Choices"]
    attempt, present, transient = choice["And"]
    assert attempt == {"Variable": "$.run.attempt", "NumericLessThan": 2}  # 3 attempts
    assert present["IsPresent"] is True
    assert {c["StringMatches"] for c in transient["Or"]} >= {"*CapacityError*"}
    assert choice["Next"] == "Backoff" and states["Transient"]["Default"] == "Failed"
    assert states["NextAttempt"]["Parameters"]["attempt.$"] == "States.MathAdd($.run.attempt, 1)"
    assert states["NextAttempt"]["Next"] == "Name"
    assert states["StopLate"]["Resource"].endswith("aws-sdk:sagemaker:stopTransformJob")
    assert states["RunLate"]["Type"] == "Fail"
    assert states["Summarize"]["Parameters"]["Payload"] == {"job.$": "$.job"}


def test_the_model_runs_one_copy_per_core_with_network_isolation(synthesized) -> None:
    (model,) = resources(synthesized, "AWS::SageMaker::Model")
    assert model["EnableNetworkIsolation"] is True
    container = model["PrimaryContainer"]
    assert container["ModelDataUrl"] == "s3://shop-models/pair/model.tar.gz"
    assert container["Environment"]["INFERFLEET_NEURON_CORES"] == "12"
    assert container["Environment"]["INFERFLEET_INSTANCE_TYPE"] == "inf2.24xlarge"


def _statements(synthesized: dict[str, Any], role_id: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for logical_id, resource in synthesized["json"]["Resources"].items():
        if resource["Type"] != "AWS::IAM::Policy" or not logical_id.startswith(role_id):
            continue
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"]
            for action in [actions] if isinstance(actions, str) else actions:
                found.setdefault(action, []).append(json.dumps(statement))
    return found


RUN = "shop-duplicates-" + "?" * 32 + "-?"


def test_roles_reach_only_the_exact_prefixes(synthesized) -> None:
    execution = _statements(synthesized, "DuplicatesExecutionRole")
    reads = " ".join(execution["s3:GetObject"])
    assert ":s3:::shop-models/pair/model.tar.gz" in reads and ":s3:::shop-data/pairs/*" in reads
    (written,) = execution["s3:PutObject"]
    assert f":s3:::shop-data/scores/{RUN}/*" in written and "pairs" not in written
    (listed,) = execution["s3:ListBucket"]
    assert json.loads(listed)["Condition"] == {"StringLike": {"s3:prefix": ["pairs/*"]}}
    machine = _statements(synthesized, "DuplicatesRunRole")
    (jobs,) = machine["sagemaker:CreateTransformJob"]
    assert f":transform-job/{RUN}" in jobs
    assert "sagemaker:CreateModel" not in machine and "iam:PassRole" not in machine
    summary = _statements(synthesized, "DuplicatesSummaryRole")
    (put,) = summary["s3:PutObject"]
    assert f":s3:::shop-data/scores/{RUN}/*" in put


def test_the_run_pattern_matches_this_jobs_runs_and_not_a_longer_named_job() -> None:
    run_id = "0123456789abcdef0123456789abcdef"
    pattern = job().run_pattern
    assert pattern == RUN
    assert fnmatch.fnmatchcase(f"shop-duplicates-{run_id}-2", pattern)
    assert not fnmatch.fnmatchcase(f"shop-duplicates-weekly-{run_id}-0", pattern)


def test_the_schedule_starts_the_state_machine_and_alarms_watch_its_runs(synthesized) -> None:
    (schedule,) = resources(synthesized, "AWS::Scheduler::Schedule")
    assert schedule["ScheduleExpression"] == "cron(0 3 ? * MON *)"
    assert schedule["Target"]["Arn"]["Ref"].startswith("DuplicatesRun")
    alarms = synthesized["construct"].alarms
    assert set(alarms) == {"Failed", "Late", "NotStarted"}
    late = next(
        a
        for a in resources(synthesized, "AWS::CloudWatch::Alarm")
        if a.get("MetricName") == "ExecutionTime"
    )
    assert late["Threshold"] == 6 * 3600 * 1000 and late["Statistic"] == "Maximum"


def test_the_summary_function_ships_its_package_alone(synthesized) -> None:
    (function,) = [
        f
        for f in resources(synthesized, "AWS::Lambda::Function")
        if f["Handler"] == "batch_summary.handler.handler"
    ]
    settings = json.loads(function["Environment"]["Variables"]["BATCH_SUMMARY_SETTINGS"])
    assert settings == {"input_prefix": "s3://shop-data/pairs/", "price_per_instance_hour": 7.5}
    assets = [
        path
        for path in Path(synthesized["outdir"]).glob("asset.*")
        if (path / "batch_summary").is_dir()
    ]
    assert len(assets) == 1
    assert sorted(p.name for p in assets[0].iterdir()) == ["batch_summary"]
    assert {p.name for p in (assets[0] / "batch_summary").iterdir()} == {
        "__init__.py",
        "handler.py",
        "layout.py",
    }


def test_cdk_nag_finds_no_unacknowledged_errors_and_cfn_lint_is_clean(synthesized) -> None:
    erring = [
        violation["ruleName"]
        for plugin in synthesized["report"]["pluginReports"]
        for violation in plugin.get("violations", [])
        if violation.get("severity", "error") == "error"
    ]
    assert erring == []
    from cfnlint.api import ManualArgs, lint_file

    matches = lint_file(
        Path(synthesized["outdir"]) / "Batch.template.json",
        config=ManualArgs(ignore_checks=["W3005"], regions=[ENV.region]),
    )
    assert [(match.rule.id, match.message) for match in matches] == []


def test_without_a_schedule_there_is_no_schedule_and_no_not_started_alarm() -> None:
    app = App(context=cdk_feature_flags())
    stack = Stack(app, "OnDemand", env=ENV)
    construct = NeuronBatchInference(
        stack, "Job", props=job(schedule=None, instance_type="ml.trn1.2xlarge", image_uri="x/y:1")
    )
    template = Template.from_stack(stack)
    template.resource_count_is("AWS::Scheduler::Schedule", 0)
    assert set(construct.alarms) == {"Failed", "Late"}
    assert construct.props.concurrency == 2


def test_bad_props_are_refused_with_the_construct_path() -> None:
    stack = Stack(App(context=cdk_feature_flags()), "Bad", env=ENV)
    with pytest.raises(PropsError, match=r"^Bad/Job: instance_type: 'inf2.xlarge'.*ml.inf2.xlarge"):
        NeuronBatchInference(stack, "Job", props=job(instance_type="inf2.xlarge"))
