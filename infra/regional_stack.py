"""One CloudFormation stack per region: a loop over the region's plan.

Everything the stack builds comes from its :class:`~inferfleet.infra.plan.RegionPlan`: the
props of the cluster, of each model service and of the personalization section, the stack
name, tags and outputs. Emulator mode is a plan too (:mod:`inferfleet.infra.emulator`), so
this module has no branch for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from aws_cdk import CfnOutput, Environment, Fn, Stack, Tags
from constructs import Construct

from inferfleet.constructs.finetune_queue import FinetuneQueue
from inferfleet.constructs.neuron_batch_inference import NeuronBatchInference
from inferfleet.constructs.neuron_model_service import NeuronModelService
from inferfleet.constructs.neuron_serving_cluster import NeuronServingCluster
from inferfleet.constructs.props.problems import PropsError
from inferfleet.constructs.sagemaker_endpoint import SageMakerEndpoint
from inferfleet.infra import names
from inferfleet.infra.plan import BatchJobPlan, PersonalizationPlan, RegionPlan, TrafficOutputs

T = TypeVar("T")


class SynthesisError(RuntimeError):
    """A construct failed while the app was built; the message starts with its path."""


class RegionalStack(Stack):
    """Serving cluster, model services, personalization and batch jobs of one region."""

    def __init__(self, scope: Construct, plan: RegionPlan) -> None:
        super().__init__(
            scope,
            plan.stack_name,
            env=Environment(account=plan.account, region=plan.region),
            description=plan.description,
        )
        self.plan = plan
        untagged = list(plan.untagged_resource_types) or None
        for key, value in plan.tags.items():
            Tags.of(self).add(key, value, exclude_resource_types=untagged)

        self.serving_cluster = self._build(
            "Serving", lambda: NeuronServingCluster(self, "Serving", props=plan.cluster)
        )
        self.services: dict[str, NeuronModelService] = {}
        for service in plan.services:
            model_service = self._build(
                service.name,
                lambda service=service: NeuronModelService(
                    self, service.name, props=service.props, serving_cluster=self.serving_cluster
                ),
            )
            self.services[service.name] = model_service
            self._output(service.endpoint_output, model_service.endpoint_url)
            self._output(service.target_group_output, model_service.target_group.target_group_arn)
            for pool in service.props.pools:
                ecs_key, asg_key = names.pool_outputs(service.name, pool.instance_type)
                capacity = model_service.pools[pool.instance_type].auto_scaling_group
                self._output(ecs_key, model_service.services[pool.instance_type].service_name)
                self._output(asg_key, capacity.auto_scaling_group_name)
            if service.traffic_outputs is not None:
                self._traffic_outputs(service.traffic_outputs, model_service)
        self._output(names.CLUSTER_NAME, self.serving_cluster.cluster.cluster_name)
        if plan.behind_traffic:
            self._output(names.VPC_ID, self.serving_cluster.vpc.vpc_id)
        self.personalization: tuple[SageMakerEndpoint, FinetuneQueue] | None = None
        if plan.personalization is not None:
            self.personalization = self._personalization(plan.personalization)
        self.batch_jobs = {job.name: self._batch_job(job) for job in plan.batch_jobs}

    def _personalization(
        self, plan: PersonalizationPlan
    ) -> tuple[SageMakerEndpoint, FinetuneQueue]:
        topic = self.serving_cluster.alarm_topic
        logs = self.serving_cluster.access_log_bucket
        endpoint = self._build(
            "Personalization",
            lambda: SageMakerEndpoint(
                self,
                "Personalization",
                props=plan.endpoint,
                access_logs_bucket=logs,
                alarm_topic=topic,
            ),
        )
        queue = self._build(
            "Finetune",
            lambda: FinetuneQueue(
                self,
                "Finetune",
                props=plan.queue,
                model_bucket=endpoint.model_bucket,
                adapter_components=plan.adapters,
                access_logs_bucket=logs,
                alarm_topic=topic,
            ),
        )
        self._output(names.PERSONALIZATION_ENDPOINT_NAME, endpoint.endpoint_name)
        self._output(names.PERSONALIZATION_MODEL_BUCKET, endpoint.model_bucket.bucket_name)
        self._output(names.PERSONALIZATION_MODEL_PREFIX, endpoint.model_prefix)
        self._output(names.FINETUNE_DATA_BUCKET, queue.data_bucket.bucket_name)
        self._output(names.FINETUNE_JOBS_TABLE, queue.jobs_table.table_name)
        self._output(names.FINETUNE_MODELS_TABLE, queue.models_table.table_name)
        self._output(names.FINETUNE_EVENT_SOURCE, queue.event_source)
        if endpoint.base_component_name is not None:
            self._output(names.PERSONALIZATION_BASE_COMPONENT, endpoint.base_component_name)
        return endpoint, queue

    def _batch_job(self, job: BatchJobPlan) -> NeuronBatchInference:
        construct = self._build(
            f"Batch-{job.name}",
            lambda: NeuronBatchInference(
                self,
                f"Batch-{job.name}",
                props=job.props,
                alarm_topic=self.serving_cluster.alarm_topic,
            ),
        )
        self._output(job.state_machine_output, construct.state_machine.state_machine_arn)
        return construct

    def _traffic_outputs(self, outputs: TrafficOutputs, service: NeuronModelService) -> None:
        """What the global stack reads of this service besides its pools' Auto Scaling groups
        (it gets them as parameters)."""
        load_balancer = service.load_balancer
        # targetgroup/NAME/ID from the ARN: moto cannot resolve the TargetGroupFullName
        # attribute, and the ARN's sixth ':' field is exactly that.
        target_group = Fn.select(5, Fn.split(":", service.target_group.target_group_arn))
        values = {
            "LoadBalancerArn": load_balancer.load_balancer_arn,
            "LoadBalancerFullName": load_balancer.load_balancer_full_name,
            "LoadBalancerDnsName": load_balancer.load_balancer_dns_name,
            "LoadBalancerZoneId": load_balancer.load_balancer_canonical_hosted_zone_id,
            "TargetGroupFullName": target_group,
        }
        for what, key in outputs.load_balancer.items():
            self._output(key, values[what])

    def _output(self, key: str, value: str) -> None:
        CfnOutput(self, key, value=value)

    def _build(self, construct_id: str, build: Callable[[], T]) -> T:
        with _naming_the_construct(f"{self.node.path}/{construct_id}"):
            return build()


@contextmanager
def _naming_the_construct(path: str) -> Iterator[None]:
    """Any failure inside a construct reaches the user with the construct's path."""
    try:
        yield
    except PropsError:
        raise
    except Exception as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise SynthesisError(f"{path}: {message}") from error
