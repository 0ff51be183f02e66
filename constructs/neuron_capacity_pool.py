"""Auto Scaling group of Neuron instances, registered as an ECS capacity provider."""

import math

from aws_cdk import Duration
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns as sns
from constructs import Construct

from inferfleet.constructs.nag import acknowledge
from inferfleet.constructs.neuron_instances import NeuronInstanceType

# The ECS-optimized Neuron AMI, Docker layers of a Neuron serving image and logs.
BASE_ROOT_VOLUME_GIB = 100


def root_volume_gib(weights_gib: float) -> int:
    """Room for the image, the weights, and their compiled Neuron artifacts (about the
    same size again), with 20% to spare."""
    return BASE_ROOT_VOLUME_GIB + math.ceil(weights_gib * 2 * 1.2)


class NeuronCapacityPool(Construct):
    """Instances of one Neuron type for an ECS cluster.

    Launch template on the ECS-optimized Neuron AMI (resolved at deploy time from
    SSM), IMDSv2 required, encrypted gp3 root volume sized for the model, lifecycle
    notifications to ``notification_topic``, and an ECS capacity provider with
    managed scaling and termination protection so ECS adds instances when tasks
    wait for one and never removes an instance that still runs a task.

    :param cluster: the ECS cluster that gets the capacity provider.
    :param instance: the Neuron instance type.
    :param vpc_subnets: where instances run. Default: private subnets with egress.
    :param min_capacity: instances kept running. Default: 0 (ECS scales from tasks).
    :param max_capacity: upper bound of instances.
    :param weights_gib: model weights to store on the root volume. Default: 0.
    :param notification_topic: receives Auto Scaling launch/terminate notices.
    :param target_capacity_percent: managed-scaling utilisation target. Default: 100,
        no idle instances; lower it to keep warm spares for faster scale-out.
    :param instance_warmup: time before a new instance counts. Default: 10 minutes,
        the Neuron AMI boot plus a large image pull.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cluster: ecs.Cluster,
        instance: NeuronInstanceType,
        max_capacity: int,
        notification_topic: sns.ITopic,
        min_capacity: int = 0,
        vpc_subnets: ec2.SubnetSelection | None = None,
        weights_gib: float = 0,
        target_capacity_percent: int = 100,
        instance_warmup: Duration = Duration.minutes(10),
    ) -> None:
        super().__init__(scope, construct_id)
        if not 0 <= min_capacity <= max_capacity:
            raise ValueError(
                f"{construct_id}: min_capacity {min_capacity} must be between 0 and "
                f"max_capacity {max_capacity}"
            )
        if not 1 <= target_capacity_percent <= 100:
            raise ValueError(
                f"{construct_id}: target_capacity_percent {target_capacity_percent} "
                "must be within 1..100"
            )
        self.instance = instance

        self.security_group = ec2.SecurityGroup(
            self,
            "InstanceSecurityGroup",
            vpc=cluster.vpc,
            description=f"{instance.name} container instances",
            allow_all_outbound=True,
        )
        self.role = iam.Role(
            self,
            "InstanceRole",
            assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name("AmazonSSMManagedInstanceCore")
            ],
        )
        self.launch_template = ec2.LaunchTemplate(
            self,
            "LaunchTemplate",
            instance_type=ec2.InstanceType(instance.name),
            machine_image=ecs.EcsOptimizedImage.amazon_linux2(ecs.AmiHardwareType.NEURON),
            role=self.role,
            security_group=self.security_group,
            user_data=ec2.UserData.for_linux(),
            require_imdsv2=True,
            http_put_response_hop_limit=2,
            detailed_monitoring=True,
            ebs_optimized=True,
            block_devices=[
                ec2.BlockDevice(
                    device_name="/dev/xvda",
                    volume=ec2.BlockDeviceVolume.ebs(
                        root_volume_gib(weights_gib),
                        volume_type=ec2.EbsDeviceVolumeType.GP3,
                        encrypted=True,
                        delete_on_termination=True,
                    ),
                )
            ],
        )
        self.auto_scaling_group = autoscaling.AutoScalingGroup(
            self,
            "AutoScalingGroup",
            vpc=cluster.vpc,
            vpc_subnets=vpc_subnets
            or ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            launch_template=self.launch_template,
            min_capacity=min_capacity,
            max_capacity=max_capacity,
            new_instances_protected_from_scale_in=True,
            notifications=[autoscaling.NotificationConfiguration(topic=notification_topic)],
            health_checks=autoscaling.HealthChecks.ec2(grace_period=instance_warmup),
        )
        self.capacity_provider = ecs.AsgCapacityProvider(
            self,
            "CapacityProvider",
            auto_scaling_group=self.auto_scaling_group,
            enable_managed_scaling=True,
            enable_managed_termination_protection=True,
            enable_managed_draining=True,
            target_capacity_percent=target_capacity_percent,
            instance_warmup_period=int(instance_warmup.to_seconds()),
            machine_image_type=ecs.MachineImageType.AMAZON_LINUX_2,
        )
        cluster.add_asg_capacity_provider(self.capacity_provider)
        acknowledge(
            self.role,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/"
            "AmazonSSMManagedInstanceCore]",
            "Session Manager replaces SSH keys; AWS keeps this policy to the minimal SSM actions",
        )
        for finding in ("Action::ecs:Submit*", "Resource::*"):
            acknowledge(
                self.role,
                f"AwsSolutions-IAM5[{finding}]",
                "the ECS container agent's own policy (written by aws-cdk-lib): "
                "discovery and telemetry calls have no resource-level permissions",
            )
