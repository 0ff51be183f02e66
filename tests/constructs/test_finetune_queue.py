"""Template assertions for the fine-tune queue construct, its Lambda asset and cdk-nag report."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Environment, Stack, Validations
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Match, Template
from cdk_nag import AwsSolutionsChecks

from inferfleet.constructs.finetune_handlers.schema import LAUNCH_STREAM_FILTER
from inferfleet.constructs.finetune_handlers.settings import (
    LauncherSettings,
    PublisherSettings,
    RegisterSettings,
    Tables,
    TrainingLimits,
)
from inferfleet.constructs.finetune_queue import (
    AdapterComponents,
    FinetuneQueue,
    FinetuneQueueProps,
)
from inferfleet.constructs.props.problems import PropsError
from inferfleet.constructs.sagemaker_endpoint import (
    HostingMode,
    SageMakerEndpoint,
    SageMakerEndpointProps,
)
from inferfleet.infra.feature_flags import cdk_feature_flags

REGION = Environment(region="us-east-1")


def _build(
    app: App,
    adapter_components: AdapterComponents | None = None,
    *,
    stack_name: str = "Personalization",
    env: Environment = REGION,
    **props: Any,
) -> tuple[Stack, FinetuneQueue]:
    stack = Stack(app, stack_name, env=env)
    endpoint = SageMakerEndpoint(
        stack, "Users", props=SageMakerEndpointProps(mode=HostingMode.MULTI_MODEL)
    )
    queue = FinetuneQueue(
        stack,
        "Finetune",
        model_bucket=endpoint.model_bucket,
        adapter_components=adapter_components,
        props=FinetuneQueueProps(**{"model_prefix": endpoint.model_prefix, **props}),
    )
    return stack, queue


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One synth with cdk-nag, shared: the template, the construct, the report, the assets."""
    outdir = tmp_path_factory.mktemp("cdk.out")
    app = App(context=cdk_feature_flags(), outdir=str(outdir))
    Validations.of(app).add_plugins(AwsSolutionsChecks())
    stack, queue = _build(app, batch_threshold=20, batch_tasks=8)
    # A control: a bare bucket in another stack must be reported, or the check checks nothing.
    s3.Bucket(Stack(app, "Control", env=REGION), "Bare")
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    template = json.loads((outdir / "Personalization.template.json").read_text())
    return {
        "template": Template.from_json(template),
        "json": template,
        "queue": queue,
        "stack": stack,
        "outdir": outdir,
        "report": json.loads((outdir / "validation-report.json").read_text()),
    }


def _logical_id(synthesized: dict[str, Any], construct: Any) -> str:
    return synthesized["stack"].resolve(synthesized["stack"].get_logical_id(construct))


def _policy_statements(synthesized: dict[str, Any], role: Any) -> list[dict[str, Any]]:
    return _role_statements(synthesized["stack"], synthesized["json"], role)


def _role_statements(stack: Stack, template: dict[str, Any], role: Any) -> list[dict[str, Any]]:
    role_id = stack.resolve(stack.get_logical_id(role.node.default_child))
    statements = []
    for resource in template["Resources"].values():
        if (
            resource["Type"] == "AWS::IAM::Policy"
            and {"Ref": role_id} in resource["Properties"]["Roles"]
        ):
            statements.extend(resource["Properties"]["PolicyDocument"]["Statement"])
    return statements


def _actions(statements: list[dict[str, Any]]) -> set[str]:
    actions: set[str] = set()
    for statement in statements:
        action = statement["Action"]
        actions.update([action] if isinstance(action, str) else action)
    return actions


def test_tables_are_encrypted_with_point_in_time_recovery(synthesized) -> None:
    tables = synthesized["template"].find_resources("AWS::DynamoDB::Table")
    assert len(tables) == 3  # jobs, models, idempotency
    for table in tables.values():
        properties = table["Properties"]
        assert properties["SSESpecification"] == {"SSEEnabled": True}
        recovery = properties["PointInTimeRecoverySpecification"]
        assert recovery["PointInTimeRecoveryEnabled"] is True


def test_the_job_table_has_a_stream_and_the_queue_indexes(synthesized) -> None:
    queue = synthesized["queue"]
    jobs = synthesized["json"]["Resources"][
        _logical_id(synthesized, queue.jobs_table.node.default_child)
    ]["Properties"]
    assert jobs["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    # A job is its user's: the same job id of two users is two jobs.
    assert jobs["KeySchema"] == [
        {"AttributeName": "user_id", "KeyType": "HASH"},
        {"AttributeName": "job_id", "KeyType": "RANGE"},
    ]
    assert {index["IndexName"] for index in jobs["GlobalSecondaryIndexes"]} == {
        "by-status",
        "by-training-job",
    }
    models = synthesized["json"]["Resources"][
        _logical_id(synthesized, queue.models_table.node.default_child)
    ]["Properties"]
    assert models["KeySchema"] == [
        {"AttributeName": "user_id", "KeyType": "HASH"},
        {"AttributeName": "model_id", "KeyType": "RANGE"},
    ]


def test_the_launcher_hears_new_queued_jobs_with_partial_failures_and_a_dlq(synthesized) -> None:
    queue = synthesized["queue"]
    dlq_id = _logical_id(synthesized, queue.dead_letter_queue.node.default_child)
    synthesized["template"].has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "FunctionName": {
                "Ref": _logical_id(synthesized, queue.launcher_function.node.default_child)
            },
            "BisectBatchOnFunctionError": True,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "MaximumRetryAttempts": 3,
            "StartingPosition": "TRIM_HORIZON",
            "DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": [dlq_id, "Arn"]}}},
            "FilterCriteria": {
                "Filters": [{"Pattern": Match.serialized_json(LAUNCH_STREAM_FILTER)}]
            },
        },
    )
    synthesized["template"].has_resource_properties(
        "AWS::Lambda::Function",
        {"Handler": "finetune_handlers.launcher.handler", "ReservedConcurrentExecutions": 1},
    )
    # One schedule: the launcher sweeps the queue, the publisher ends what it missed.
    publisher_id = _logical_id(synthesized, queue.publisher_function.node.default_child)
    launcher_id = _logical_id(synthesized, queue.launcher_function.node.default_child)
    synthesized["template"].has_resource_properties(
        "AWS::Events::Rule",
        {
            "ScheduleExpression": "rate(1 minute)",
            "Targets": Match.array_with(
                [
                    Match.object_like(
                        {"Arn": {"Fn::GetAtt": [launcher_id, "Arn"]}, "Input": '{"sweep":true}'}
                    ),
                    Match.object_like(
                        {
                            "Arn": {"Fn::GetAtt": [publisher_id, "Arn"]},
                            "Input": '{"reconcile":true}',
                        }
                    ),
                ]
            ),
        },
    )


def test_the_dead_letter_queue_is_encrypted_and_alarmed(synthesized) -> None:
    queue = synthesized["queue"]
    dlq_arn = {
        "Fn::GetAtt": [_logical_id(synthesized, queue.dead_letter_queue.node.default_child), "Arn"]
    }
    # Uploads whose registration keeps failing land there too.
    synthesized["template"].has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Handler": "finetune_handlers.register.handler",
            "DeadLetterConfig": {"TargetArn": dlq_arn},
        },
    )
    synthesized["template"].has_resource_properties(
        "AWS::SQS::Queue", {"SqsManagedSseEnabled": True}
    )
    # SSL only, like the buckets.
    synthesized["template"].has_resource_properties(
        "AWS::SQS::QueuePolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Deny",
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            }
                        )
                    ]
                )
            }
        },
    )
    dlq_id = _logical_id(synthesized, queue.dead_letter_queue.node.default_child)
    synthesized["template"].has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "MetricName": "ApproximateNumberOfMessagesVisible",
            "Dimensions": [{"Name": "QueueName", "Value": {"Fn::GetAtt": [dlq_id, "QueueName"]}}],
            "Threshold": 1,
        },
    )


def test_training_state_changes_reach_the_publisher(synthesized) -> None:
    queue = synthesized["queue"]
    publisher_id = _logical_id(synthesized, queue.publisher_function.node.default_child)
    synthesized["template"].has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventPattern": {
                "source": ["aws.sagemaker"],
                "detail-type": ["SageMaker Training Job State Change"],
                "detail": {
                    "TrainingJobStatus": ["Completed", "Failed", "Stopped"],
                    "TrainingJobName": [{"prefix": f"{queue.training_job_prefix}-"}],
                },
            },
            "Targets": [
                Match.object_like(
                    {
                        "Arn": {"Fn::GetAtt": [publisher_id, "Arn"]},
                        "DeadLetterConfig": Match.any_value(),
                        "RetryPolicy": Match.any_value(),
                    }
                )
            ],
        },
    )


def test_removal_requests_reach_the_publisher_under_the_queues_own_source(synthesized) -> None:
    queue = synthesized["queue"]
    assert queue.event_source == f"inferfleet.finetune.{queue.training_job_prefix}"
    synthesized["template"].has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventPattern": {
                "source": [queue.event_source],
                "detail-type": ["Fine-tune Model Removal Requested"],
            }
        },
    )
    environment = synthesized["template"].find_resources(
        "AWS::Lambda::Function",
        {"Properties": {"Environment": {"Variables": {"EVENT_SOURCE": Match.any_value()}}}},
    )
    [variables] = [r["Properties"]["Environment"]["Variables"] for r in environment.values()]
    assert variables["EVENT_SOURCE"] == queue.event_source


def _two_queues(
    first: dict[str, Any], second: dict[str, Any], second_env: Environment = REGION
) -> tuple[FinetuneQueue, FinetuneQueue]:
    """Two queues of one app, each in its own stack, on the account's default bus."""
    app = App(context=cdk_feature_flags())
    _stack, queue = _build(app, **first)
    _stack, other = _build(app, stack_name="Other", env=second_env, **second)
    return queue, other


def test_two_queues_on_one_bus_get_sources_and_prefixes_of_their_own() -> None:
    first, other = _two_queues({}, {})
    assert first.event_source != other.event_source
    assert not f"{first.training_job_prefix}-".startswith(f"{other.training_job_prefix}-")
    assert not f"{other.training_job_prefix}-".startswith(f"{first.training_job_prefix}-")


@pytest.mark.parametrize(
    ("second", "message"),
    [
        ({"event_source": "inferfleet.finetune.shop-ft"},
         "event_source: 'inferfleet.finetune.shop-ft' is also the source of "
         "Personalization/Finetune on the same bus"),
        ({"training_job_prefix": "shop-ft-ft"}, "training_job_prefix: 'shop-ft-ft' overlaps"),
        ({"training_job_prefix": "shop"}, "training_job_prefix: 'shop' overlaps 'shop-ft'"),
    ],
)  # fmt: skip
def test_a_second_queue_that_would_take_the_firsts_events_is_refused(
    second: dict[str, Any], message: str
) -> None:
    with pytest.raises(PropsError, match=re.escape(message)) as raised:
        _two_queues({"training_job_prefix": "shop-ft"}, second)
    assert str(raised.value).startswith("Other/Finetune: ")


def test_queues_in_other_regions_may_share_a_source_and_a_prefix() -> None:
    shared = {"training_job_prefix": "shop-ft", "event_source": "shop.finetune"}
    first, other = _two_queues(shared, shared, Environment(region="eu-west-1"))
    assert first.event_source == other.event_source == "shop.finetune"


def test_manifests_under_uploads_trigger_the_register_function(synthesized) -> None:
    queue = synthesized["queue"]
    register_id = _logical_id(synthesized, queue.register_function.node.default_child)
    synthesized["template"].has_resource_properties(
        "Custom::S3BucketNotifications",
        {
            "NotificationConfiguration": {
                "LambdaFunctionConfigurations": [
                    {
                        "Events": ["s3:ObjectCreated:*"],
                        "Filter": {
                            "Key": {
                                "FilterRules": Match.array_with(
                                    [
                                        {"Name": "suffix", "Value": "manifest.json"},
                                        {"Name": "prefix", "Value": "uploads/"},
                                    ]
                                )
                            }
                        },
                        "LambdaFunctionArn": {"Fn::GetAtt": [register_id, "Arn"]},
                    }
                ]
            }
        },
    )


def _resource_suffixes(statement: dict[str, Any]) -> list[str]:
    resources = statement["Resource"]
    return [
        resource["Fn::Join"][1][-1] if "Fn::Join" in resource else resource
        for resource in (resources if isinstance(resources, list) else [resources])
    ]


def _assert_lists_nothing(statements: list[dict[str, Any]]) -> None:
    assert not {
        action for action in _actions(statements) if action.startswith(("s3:List", "s3:GetBucket"))
    }


def _assert_lists_only_under(statements: list[dict[str, Any]], prefixes: list[str]) -> None:
    """Bucket-level reads are ListBucket under the given prefixes, and nothing else."""
    actions = _actions(statements)
    assert not {action for action in actions if action.startswith(("s3:List", "s3:GetBucket"))} - {
        "s3:ListBucket"
    }
    [listing] = [s for s in statements if "s3:ListBucket" in s["Action"]]
    assert listing["Action"] == "s3:ListBucket"
    assert listing["Condition"] == {"StringLike": {"s3:prefix": [f"{p}*" for p in prefixes]}}


def test_the_launcher_may_start_only_this_queues_training_jobs(synthesized) -> None:
    queue = synthesized["queue"]
    statements = _policy_statements(synthesized, queue.launcher_function.role)
    assert _actions(statements) == {
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "dynamodb:GetItem",
        "dynamodb:Query",
        "dynamodb:UpdateItem",
        "dynamodb:DescribeStream",
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
        "dynamodb:ListStreams",
        "sagemaker:CreateTrainingJob",
        "sagemaker:DescribeTrainingJob",
        "sagemaker:AddTags",
        "iam:PassRole",
        # The batch task list; no object-lock, tagging or multipart permissions it never uses.
        "s3:PutObject",
        "sqs:SendMessage",
        "sqs:GetQueueAttributes",
        "sqs:GetQueueUrl",
    }
    sagemaker = next(s for s in statements if "sagemaker:CreateTrainingJob" in s["Action"])
    assert (
        sagemaker["Resource"]["Fn::Join"][1][-1]
        == f":training-job/{queue.training_job_prefix.lower()}-*"
    )
    pass_role = next(s for s in statements if s["Action"] == "iam:PassRole")
    assert pass_role["Condition"] == {
        "StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}
    }
    assert sorted(resource["Fn::GetAtt"][0] for resource in pass_role["Resource"]) == sorted(
        _logical_id(synthesized, role.node.default_child)
        for role in (queue.single_training_role, queue.batch_training_role)
    )
    put = next(s for s in statements if s["Action"] == "s3:PutObject")
    assert _resource_suffixes(put) == ["/batches/*"]


def test_the_register_function_reads_only_uploads(synthesized) -> None:
    statements = _policy_statements(synthesized, synthesized["queue"].register_function.role)
    reads = [s for s in statements if s["Action"] == "s3:GetObject"]
    assert [_resource_suffixes(s) for s in reads] == [["/uploads/*"]]
    _assert_lists_nothing(statements)


def test_the_publisher_writes_only_under_the_model_prefix(synthesized) -> None:
    queue = synthesized["queue"]
    statements = _policy_statements(synthesized, queue.publisher_function.role)
    writes = [s for s in statements if "s3:PutObject" in s["Action"]]
    assert [(set(s["Action"]), _resource_suffixes(s)) for s in writes] == [
        ({"s3:PutObject", "s3:AbortMultipartUpload"}, ["/models/*"])
    ]
    [reads] = [s for s in statements if s["Action"] == "s3:GetObject"]
    assert sorted(_resource_suffixes(reads)) == ["/batches/*", "/training/*"]
    _assert_lists_nothing(statements)
    describe = next(s for s in statements if s["Action"] == "sagemaker:DescribeTrainingJob")
    assert (
        describe["Resource"]["Fn::Join"][1][-1]
        == f":training-job/{queue.training_job_prefix.lower()}-*"
    )
    assert {"dynamodb:UpdateItem", "dynamodb:DeleteItem"} <= _actions(statements)
    assert not any(action.endswith("*") for action in _actions(statements))


@pytest.mark.parametrize(
    ("kind", "reads", "writes"),
    [
        ("single", ["/uploads/*"], ["/training/*"]),
        ("batch", ["/uploads/*", "/batches/*"], ["/batches/*"]),
    ],
)
def test_each_job_kind_has_a_role_scoped_to_its_prefixes(synthesized, kind, reads, writes) -> None:
    role = getattr(synthesized["queue"], f"{kind}_training_role")
    statements = _policy_statements(synthesized, role)
    [get] = [s for s in statements if s["Action"] == "s3:GetObject"]
    [put] = [s for s in statements if "s3:PutObject" in s["Action"]]
    assert sorted(_resource_suffixes(get)) == sorted(reads)
    assert _resource_suffixes(put) == writes
    assert set(put["Action"]) == {"s3:PutObject", "s3:AbortMultipartUpload"}
    _assert_lists_only_under(statements, [read.strip("/*") + "/" for read in reads])


def test_every_setting_a_handler_reads_is_set_by_the_construct(synthesized) -> None:
    queue = synthesized["queue"]
    resources = synthesized["json"]["Resources"]
    wanted = {
        "register": [Tables, TrainingLimits, RegisterSettings],
        "launcher": [Tables, TrainingLimits, LauncherSettings],
        "publisher": [Tables, PublisherSettings],
    }
    for module, classes in wanted.items():
        function = getattr(queue, f"{module}_function")
        environment = resources[_logical_id(synthesized, function.node.default_child)][
            "Properties"
        ]["Environment"]["Variables"]
        names = {f.metadata["env"] for cls in classes for f in dataclasses.fields(cls)}
        assert names <= set(environment), (module, names - set(environment))
    launcher = resources[_logical_id(synthesized, queue.launcher_function.node.default_child)]
    environment = launcher["Properties"]["Environment"]["Variables"]
    assert environment["TRAINING_NETWORK_ISOLATION"] == "true"
    assert environment["WARM_POOL_KEEP_ALIVE_S"] == "0"


def test_adapter_components_are_managed_by_the_publisher_within_the_prefix() -> None:
    app = App(context=cdk_feature_flags())
    stack, queue = _build(
        app,
        adapter_components=AdapterComponents(endpoint_name="users", base_component_name="base"),
        warm_pool_keep_alive_s=1800,
    )
    template = Template.from_stack(stack).to_json()
    statements = _role_statements(stack, template, queue.publisher_function.role)
    components = next(s for s in statements if "sagemaker:UpdateInferenceComponent" in s["Action"])
    assert components["Resource"]["Fn::Join"][1][-1] == (
        f":inference-component/{queue.training_job_prefix.lower()}-*"
    )
    publisher = template["Resources"][
        stack.resolve(stack.get_logical_id(queue.publisher_function.node.default_child))
    ]
    environment = publisher["Properties"]["Environment"]["Variables"]
    assert environment["MODEL_HOSTING"] == "inference_components"
    assert (environment["ENDPOINT_NAME"], environment["BASE_INFERENCE_COMPONENT"]) == (
        "users",
        "base",
    )


def test_lambda_code_is_the_handler_package_alone_and_imports_as_lambda_does(synthesized) -> None:
    functions = synthesized["template"].find_resources("AWS::Lambda::Function")
    handlers = {
        f["Properties"]["Handler"]
        for f in functions.values()
        if f["Properties"]["Handler"].startswith("finetune_handlers.")
    }
    assert handlers == {
        "finetune_handlers.register.handler",
        "finetune_handlers.launcher.handler",
        "finetune_handlers.publisher.handler",
    }
    launcher = next(
        f
        for f in functions.values()
        if f["Properties"]["Handler"] == "finetune_handlers.launcher.handler"
    )
    asset_hash = launcher["Properties"]["Code"]["S3Key"].removesuffix(".zip")
    assets = json.loads((synthesized["outdir"] / "Personalization.assets.json").read_text())
    asset = synthesized["outdir"] / assets["files"][asset_hash]["source"]["path"]
    assert sorted(path.name for path in asset.iterdir()) == ["finetune_handlers"]
    assert not list(asset.rglob("__pycache__"))
    assert any(
        "AWSLambdaPowertoolsPythonV3-python313-x86_64" in str(layer)
        for layer in launcher["Properties"]["Layers"]
    )
    # Lambda puts the asset root on sys.path; nothing of this repository may be needed.
    imported = subprocess.run(
        [
            sys.executable,
            "-c",
            "import finetune_handlers.launcher, finetune_handlers.register, "
            "finetune_handlers.publisher, sys; "
            "assert not any(m.split('.')[0] == 'inferfleet' for m in sys.modules)",
        ],
        cwd=asset,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert imported.returncode == 0, imported.stderr


def test_the_training_image_defaults_to_the_finetune_container(synthesized) -> None:
    assets = json.loads((synthesized["outdir"] / "Personalization.assets.json").read_text())
    [image] = assets["dockerImages"].values()
    source = image["source"]
    directory = synthesized["outdir"] / source["directory"]
    # Built from containers/ with finetune/Dockerfile; the serving images are left out.
    assert source["dockerFile"] == "finetune/Dockerfile"
    assert (directory / "finetune" / "Dockerfile").is_file()
    assert (directory / "finetune" / "lora_finetune").is_dir()
    assert not (directory / "llm-neuron").exists()
    assert not (directory / "intent-neuron").exists()
    launcher_id = _logical_id(
        synthesized, synthesized["queue"].launcher_function.node.default_child
    )
    launcher = synthesized["json"]["Resources"][launcher_id]
    environment = launcher["Properties"]["Environment"]["Variables"]
    assert "TRAINING_IMAGE" in environment and "BATCH_THRESHOLD" in environment
    assert environment["BATCH_THRESHOLD"] == "20"


def test_an_explicit_training_image_uri_replaces_the_asset() -> None:
    app = App(context=cdk_feature_flags())
    uri = "111122223333.dkr.ecr.us-east-1.amazonaws.com/finetune:7"
    stack, queue = _build(app, training_image_uri=uri)
    assert queue.training_image_uri == uri
    template = Template.from_stack(stack)
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {"Environment": {"Variables": Match.object_like({"TRAINING_IMAGE": uri})}},
    )
    assembly = app.synth()
    assets = json.loads((Path(assembly.directory) / "Personalization.assets.json").read_text())
    assert assets.get("dockerImages", {}) == {}


def test_cfn_lint_is_clean(synthesized) -> None:
    from cfnlint.api import ManualArgs, lint_file

    matches = lint_file(
        synthesized["outdir"] / "Personalization.template.json",
        # W3005: the redundant DependsOn CDK writes.
        config=ManualArgs(ignore_checks=["W3005"], regions=[REGION.region]),
    )
    assert [(match.rule.id, match.message) for match in matches] == []


def test_cdk_nag_finds_no_unacknowledged_errors(synthesized) -> None:
    erring = {
        construct.get("constructPath", "")
        for plugin in synthesized["report"]["pluginReports"]
        for violation in plugin.get("violations", [])
        if violation.get("severity", "error") == "error"
        for construct in violation["violatingConstructs"]
    }
    assert erring, "the control bucket was not reported: cdk-nag did not run"
    assert {path.split("/")[0] for path in erring} == {"Control"}


@pytest.mark.parametrize(
    ("props", "message"),
    [
        ({"training_job_prefix": "bad_prefix"}, "training_job_prefix: 'bad_prefix'"),
        ({"training_job_prefix": "x" * 30}, "1-29 letters"),
        ({"max_running_jobs": 0}, "max_running_jobs"),
        ({"create_calls_per_second": 50}, "about 1 per second"),
        ({"batch_threshold": 100, "batch_tasks": 50}, "batch_tasks: 50 is outside 2..49"),
        ({"batch_threshold": 8, "batch_tasks": 4, "batch_instances": 10}, "batch_instances: 10"),
        ({"batch_threshold": 4, "batch_tasks": 8}, "raise batch_threshold to at least 8"),
        ({"warm_pool_keep_alive_s": 3601}, "warm_pool_keep_alive_s: 3601 s is outside 0..3600"),
        ({"training_max_runtime_s": 29 * 86400}, "training_max_runtime_s: "),
        ({"max_epochs": 0}, "max_epochs: 0 is outside 1..1000"),
        ({"model_prefix": "models"}, "model_prefix: 'models'"),
        ({"training_instance_type": "trn1.2xlarge"}, "ml. form"),
        ({"event_source": "aws.sagemaker"}, "event_source: 'aws.sagemaker' is not an Event"),
        ({"event_source": ""}, "event_source: '' is not an EventBridge source"),
    ],
)
def test_bad_props_fail_at_construction_with_the_field_named(props, message) -> None:
    with pytest.raises(PropsError, match=message) as raised:
        _build(App(context=cdk_feature_flags()), **props)
    assert str(raised.value).startswith("Personalization/Finetune: ")
