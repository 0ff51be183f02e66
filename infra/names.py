"""Every name the stacks, the CLI and the tests agree on; no aws_cdk import.

Stack names, CloudFormation output keys, context keys and resource-name prefixes are made
here and nowhere else, so the CLI never re-parses a template or imports a construct to learn
one. A name that would break an AWS length limit is cut and suffixed with a hash of the whole,
so it stays within the limit, unique and the same on every synth.
"""

from __future__ import annotations

import hashlib

from inferfleet.constructs.finetune_handlers.layout import MAX_TRAINING_JOB_PREFIX
from inferfleet.constructs.props.batch_inference import MAX_NAME_LENGTH as MAX_BATCH_JOB_PREFIX

# Lookups the CDK app recorded, beside the fleet file; the plan reads them too.
CONTEXT_FILE = "cdk.context.json"

# Context keys of the CDK app (`cdk synth -c KEY=VALUE`).
CONFIG_CONTEXT_KEY = "config"
EMULATOR_CONTEXT_KEY = "inferfleet:emulator"

FLEET_TAG_KEY = "inferfleet:fleet"
HASH_LENGTH = 6


def regional_stack_name(fleet: str, region: str) -> str:
    """CloudFormation stack of one region of a fleet, e.g. ``shopping-assistant-us-east-1``."""
    return f"{fleet}-{region}"


def bounded_name(name: str, limit: int) -> str:
    """``name`` if it fits in ``limit`` characters, else its head, '-' and a hash of it all."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:HASH_LENGTH]
    head = name[: limit - HASH_LENGTH - 1].rstrip("-")
    return f"{head}-{digest}"


def training_job_prefix(fleet: str) -> str:
    """Start of every training job name of a fleet's fine-tune queue."""
    return bounded_name(f"{fleet}-ft", MAX_TRAINING_JOB_PREFIX)


# SageMaker's limit on endpoint and inference component names.
MAX_SAGEMAKER_NAME = 63


def personalization_endpoint_name(fleet: str) -> str:
    """The personalization endpoint with inference components (adapters name it at run time;
    a multi-model endpoint keeps a CloudFormation-generated name)."""
    return bounded_name(f"{fleet}-personalization", MAX_SAGEMAKER_NAME)


def base_component_name(fleet: str) -> str:
    """The base-model inference component the adapter components attach to. Never under
    ``training_job_prefix(fleet)-``, the adapters' own names, which the publisher may delete."""
    return bounded_name(f"{fleet}-base-model", MAX_SAGEMAKER_NAME)


def output_key(*parts: str) -> str:
    """A CloudFormation output key from name parts: ``("assistant", "Endpoint")`` is
    ``AssistantEndpoint``. Hyphenated names become CamelCase."""
    return "".join(
        piece[:1].upper() + piece[1:] for part in parts for piece in part.split("-") if piece
    )


# Outputs of a regional stack, read by `deploy`, `status`, `bench` and `finetune`.
CLUSTER_NAME = output_key("Serving", "ClusterName")
PERSONALIZATION_ENDPOINT_NAME = output_key("Personalization", "EndpointName")
PERSONALIZATION_MODEL_BUCKET = output_key("Personalization", "ModelBucket")
PERSONALIZATION_MODEL_PREFIX = output_key("Personalization", "ModelPrefix")
PERSONALIZATION_BASE_COMPONENT = output_key("Personalization", "BaseComponentName")
FINETUNE_DATA_BUCKET = output_key("Finetune", "DataBucket")
FINETUNE_JOBS_TABLE = output_key("Finetune", "JobsTable")
FINETUNE_MODELS_TABLE = output_key("Finetune", "ModelsTable")
# the ``source`` the application puts removal requests under, and reads events by
FINETUNE_EVENT_SOURCE = output_key("Finetune", "EventSource")
PERSONALIZATION_OUTPUTS = (
    PERSONALIZATION_ENDPOINT_NAME,
    PERSONALIZATION_MODEL_BUCKET,
    PERSONALIZATION_MODEL_PREFIX,
    FINETUNE_DATA_BUCKET,
    FINETUNE_JOBS_TABLE,
    FINETUNE_MODELS_TABLE,
    FINETUNE_EVENT_SOURCE,
)


def service_endpoint(service: str) -> str:
    """Output holding the service's URL (``http(s)://`` + the load balancer's DNS name)."""
    return output_key(service, "Endpoint")


def service_target_group_arn(service: str) -> str:
    return output_key(service, "TargetGroupArn")


def service_outputs(service: str) -> tuple[str, str]:
    return service_endpoint(service), service_target_group_arn(service)


def batch_job_prefix(fleet: str, job: str) -> str:
    """Start of the names of a batch job's transform jobs (and their output folders)."""
    return bounded_name(f"{fleet}-{job}", MAX_BATCH_JOB_PREFIX)


def batch_state_machine(job: str) -> str:
    """Output holding the ARN of the state machine that runs a batch job."""
    return output_key("Batch", job, "StateMachineArn")


def pool_outputs(service: str, instance_type: str) -> tuple[str, str]:
    """Outputs naming one pool's ECS service and Auto Scaling group, which ``bench --scale``
    resizes: ``("AssistantInf248xlargeEcsService", "AssistantInf248xlargeAutoScalingGroup")``."""
    pool = "".join(character for character in instance_type if character.isalnum())
    return output_key(service, pool, "EcsService"), output_key(service, pool, "AutoScalingGroup")


# --- the global (traffic) layer ----------------------------------------------------------
# CloudFormation parameter and output keys are alphanumeric; alarm names stop at 255.
MAX_ALARM_NAME = 255
VPC_ID = output_key("Serving", "VpcId")
GLOBAL_HOSTED_ZONE_ID = output_key("Traffic", "HostedZoneId")


def global_stack_name(fleet: str) -> str:
    """CloudFormation stack of a fleet's traffic layer, e.g. ``shopping-assistant-global``."""
    return f"{fleet}-global"


def _alphanumeric(text: str) -> str:
    return "".join(piece[:1].upper() + piece[1:] for piece in _words(text))


def _words(text: str) -> list[str]:
    return "".join(c if c.isalnum() else " " for c in text).split()


def service_load_balancer_outputs(service: str) -> dict[str, str]:
    """Outputs of a regional stack the global stack reads, per service: what -> output key."""
    return {
        what: output_key(service, what)
        for what in (
            "LoadBalancerArn",
            "LoadBalancerFullName",
            "LoadBalancerDnsName",
            "LoadBalancerZoneId",
            "TargetGroupFullName",
        )
    }


def region_health_alarm_name(fleet: str, region: str, service: str) -> str:
    """The regional alarm a Route 53 health check of the global stack follows: named, since a
    stack in another region cannot reference it."""
    return bounded_name(f"{fleet}-{region}-{service}-region-health", MAX_ALARM_NAME)


def global_parameter(region: str, output: str) -> str:
    """The global stack's parameter that carries ``output`` of ``region``'s stack."""
    return output_key(_alphanumeric(region), output)


def traffic_record_output(service: str) -> str:
    """Output of the global stack holding a service's fully qualified name."""
    return output_key("Traffic", service, "RecordName")
