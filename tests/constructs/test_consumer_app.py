"""The constructs as another CDK app uses them: a plain App() with none of this repo's feature
flags, two of each construct in one stack, and cdk-nag run for real.

An acknowledgement must cover exactly the statements inferfleet writes: a wildcard statement an
application adds to any inferfleet role is reported, and nothing else is.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk import App, Environment, Stack, Validations
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from cdk_nag import AwsSolutionsChecks

from inferfleet.constructs.finetune_queue import FinetuneQueue
from inferfleet.constructs.neuron_batch_inference import (
    NeuronBatchInference,
    NeuronBatchInferenceProps,
)
from inferfleet.constructs.neuron_model_service import (
    NeuronModelService,
    NeuronModelServiceProps,
    NeuronPool,
)
from inferfleet.constructs.neuron_serving_cluster import NeuronServingCluster
from inferfleet.constructs.sagemaker_endpoint import (
    HostingMode,
    SageMakerEndpoint,
    SageMakerEndpointProps,
)

WILDCARD = "AwsSolutions-IAM5[Resource::*]"


def _roles(
    service: NeuronModelService,
    endpoint: SageMakerEndpoint,
    queue: FinetuneQueue,
    batch: NeuronBatchInference,
):
    return [
        batch.execution_role,
        batch.state_machine.role,
        batch.summary_function.role,
        service.task_role,
        *(pool.role for pool in service.pools.values()),
        *(task.execution_role for task in service.task_definitions.values()),
        endpoint.role,
        queue.single_training_role,
        queue.batch_training_role,
        queue.register_function.role,
        queue.launcher_function.role,
        queue.publisher_function.role,
    ]


def _set(stack: Stack, n: int) -> tuple[Any, ...]:
    cluster = NeuronServingCluster(stack, f"Cluster{n}")
    repository = ecr.Repository.from_repository_name(stack, f"Repository{n}", f"model-{n}")
    service = NeuronModelService(
        stack,
        f"Service{n}",
        serving_cluster=cluster,
        image=ecs.ContainerImage.from_ecr_repository(repository, "1"),
        props=NeuronModelServiceProps(
            pools=(NeuronPool("inf2.xlarge", tensor_parallel=1),),
            # Without the partition-literals flag the bucket ARN is a token: still acknowledged.
            model_artifact=f"s3://models-{n}/llm/",
        ),
    )
    endpoint = SageMakerEndpoint(
        stack,
        f"Endpoint{n}",
        props=SageMakerEndpointProps(mode=HostingMode.MULTI_MODEL),
        alarm_topic=cluster.alarm_topic,
    )
    queue = FinetuneQueue(
        stack, f"Finetune{n}", model_bucket=endpoint.model_bucket, alarm_topic=cluster.alarm_topic
    )
    batch = NeuronBatchInference(
        stack,
        f"Batch{n}",
        props=NeuronBatchInferenceProps(
            name=f"duplicates-{n}",
            model_artifact=f"s3://models-{n}/pair/model.tar.gz",
            input_prefix=f"s3://data-{n}/pairs/",
            output_prefix=f"s3://data-{n}/scores/",
            instance_type="ml.inf2.xlarge",
            image_uri="example/pair:1",
        ),
    )
    return cluster, service, endpoint, queue, batch


@pytest.fixture(scope="module")
def consumer(tmp_path_factory) -> dict[str, Any]:
    outdir = tmp_path_factory.mktemp("cdk.out")
    app = App(outdir=str(outdir))
    Validations.of(app).add_plugins(AwsSolutionsChecks())
    stack = Stack(app, "Consumer", env=Environment(region="us-east-1"))
    clean = _set(stack, 1)
    _, service, endpoint, queue, batch = _set(stack, 2)
    widened = _roles(service, endpoint, queue, batch)
    for role in widened:
        role.add_to_principal_policy(iam.PolicyStatement(actions=["s3:GetObject"], resources=["*"]))
    # EBS-backed instances: the endpoint encrypts its volumes with a key of its own.
    ebs_endpoint = SageMakerEndpoint(
        stack,
        "InfEndpoint",
        props=SageMakerEndpointProps(instance_type="ml.inf2.xlarge", image_uri="example/image:1"),
    )
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = json.loads((outdir / "validation-report.json").read_text())
    errors = {
        (construct["constructPath"], violation["ruleName"])
        for plugin in report["pluginReports"]
        for violation in plugin.get("violations", [])
        if violation.get("severity", "error") == "error"
        for construct in violation["violatingConstructs"]
    }
    template = json.loads((outdir / "Consumer.template.json").read_text())
    return {
        "errors": errors,
        "template": template,
        "stack": stack,
        "clean": clean,
        "widened": widened,
        "ebs_endpoint": ebs_endpoint,
    }


@pytest.mark.slow
def test_a_wildcard_added_to_any_inferfleet_role_is_reported(consumer) -> None:
    widened = {f"{role.node.path}/DefaultPolicy/Resource" for role in consumer["widened"]}
    assert len(widened) == 12
    reported = {path for path, rule in consumer["errors"] if rule == WILDCARD}
    assert reported == widened
    # ...and nothing else is.
    assert consumer["errors"] == {(path, WILDCARD) for path in widened}


def _resources(template: dict[str, Any], kind: str) -> dict[str, Any]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


@pytest.mark.slow
def test_two_of_each_construct_get_names_of_their_own(consumer) -> None:
    template = consumer["template"]
    dashboards = [
        d["Properties"]["DashboardName"]
        for d in _resources(template, "AWS::CloudWatch::Dashboard").values()
    ]
    assert len(dashboards) == len(set(dashboards)) == 2
    queues = [q for q in consumer["stack"].node.children if isinstance(q, FinetuneQueue)]
    prefixes = {q.training_job_prefix for q in queues}
    assert len(prefixes) == 2
    assert all(p.startswith("Consumer-Finetune") for p in prefixes)


@pytest.mark.slow
def test_roles_reach_only_the_images_they_run(consumer) -> None:
    template = consumer["template"]
    stack = consumer["stack"]
    queue = consumer["clean"][3]
    role_id = stack.resolve(stack.get_logical_id(queue.single_training_role.node.default_child))
    statements = [
        statement
        for policy in _resources(template, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    [pull] = [s for s in statements if "ecr:BatchGetImage" in s["Action"]]
    # The training image asset's repository, not every repository of the account.
    assert "container-assets" in json.dumps(pull["Resource"])
    assert "repository/*" not in json.dumps(pull["Resource"])
    # The instance role: the ECS agent's calls, written out, and no logs on "*".
    pool = next(iter(consumer["clean"][1].pools.values()))
    pool_role = stack.resolve(stack.get_logical_id(pool.role.node.default_child))
    pool_statements = [
        statement
        for policy in _resources(template, "AWS::IAM::Policy").values()
        if {"Ref": pool_role} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    actions = {
        a
        for s in pool_statements
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    assert not any(a.startswith("logs:") or a.endswith("*") for a in actions)
    assert "ssm:GetParameters" not in actions and "ssm:GetParameter" not in actions
    managed = template["Resources"][pool_role]["Properties"].get("ManagedPolicyArns", [])
    assert managed == []


@pytest.mark.slow
def test_endpoint_volumes_are_encrypted_where_sagemaker_takes_a_key(consumer) -> None:
    template = consumer["template"]
    stack = consumer["stack"]
    configs = _resources(template, "AWS::SageMaker::EndpointConfig")
    ebs = consumer["ebs_endpoint"]
    ebs_id = stack.resolve(stack.get_logical_id(ebs.endpoint_config))
    key_id = stack.resolve(stack.get_logical_id(ebs.volume_key.node.default_child))
    assert configs.pop(ebs_id)["Properties"]["KmsKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    assert template["Resources"][key_id]["Properties"]["EnableKeyRotation"] is True
    # ml.g5 keeps models on NVMe instance storage, where SageMaker refuses a key.
    assert configs and all("KmsKeyId" not in c["Properties"] for c in configs.values())
