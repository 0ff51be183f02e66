"""Auto Scaling group of Neuron instances, registered as an ECS capacity provider."""

from aws_cdk import Aws, Duration
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns as sns
from constructs import Construct

from inferfleet.constructs.nag import RoutingRole, acknowledged_policy, within_actions
from inferfleet.constructs.neuron_instances import NEURON_INSTANCE_TYPES
from inferfleet.constructs.props.capacity_pool import NeuronCapacityPoolProps
from inferfleet.constructs.props.problems import raise_for

__all__ = ["NeuronCapacityPool", "NeuronCapacityPoolProps"]


class NeuronCapacityPool(Construct):
    """Instances of one Neuron type for an ECS cluster.

    Launch template on the ECS-optimized Neuron AMI (resolved at deploy time from
    SSM), IMDSv2 required and out of the tasks' reach (hop limit 1 and the ECS agent's
    ``ECS_AWSVPC_BLOCK_IMDS``, so a model container cannot read the instance role's
    credentials), encrypted gp3 root volume sized for the model, lifecycle
    notifications to ``notification_topic``, and an ECS capacity provider with
    managed scaling and termination protection so ECS adds instances when tasks
    wait for one and never removes an instance that still runs a task.

    :param props: the pool (:class:`NeuronCapacityPoolProps`, defaults documented there).
    :param cluster: the ECS cluster that gets the capacity provider.
    :param notification_topic: receives Auto Scaling launch/terminate notices.
    :param vpc_subnets: where instances run. Default: private subnets with egress.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        props: NeuronCapacityPoolProps,
        cluster: ecs.Cluster,
        notification_topic: sns.ITopic,
        vpc_subnets: ec2.SubnetSelection | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        raise_for(self.node.path, props.problems())
        self.props = props
        instance = NEURON_INSTANCE_TYPES[props.instance_type]
        instance_warmup = Duration.seconds(props.instance_warmup_s)
        self.instance = instance

        self.security_group = ec2.SecurityGroup(
            self,
            "InstanceSecurityGroup",
            vpc=cluster.vpc,
            description=f"{instance.name} container instances",
            allow_all_outbound=True,
        )
        self.role = RoutingRole(
            self, "InstanceRole", assumed_by=iam.ServicePrincipal("ec2.amazonaws.com")
        )
        self._agent_policies(cluster)
        self.launch_template = ec2.LaunchTemplate(
            self,
            "LaunchTemplate",
            instance_type=ec2.InstanceType(instance.name),
            machine_image=ecs.EcsOptimizedImage.amazon_linux2(ecs.AmiHardwareType.NEURON),
            role=self.role,
            security_group=self.security_group,
            user_data=_agent_config(),
            require_imdsv2=True,
            # The agent runs on the host network; tasks (awsvpc) are one hop further.
            http_put_response_hop_limit=1,
            detailed_monitoring=True,
            ebs_optimized=True,
            block_devices=[
                ec2.BlockDevice(
                    device_name="/dev/xvda",
                    volume=ec2.BlockDeviceVolume.ebs(
                        props.root_volume_gib,
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
            min_capacity=props.min_capacity,
            max_capacity=props.max_capacity,
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
            target_capacity_percent=props.target_capacity_percent,
            instance_warmup_period=int(instance_warmup.to_seconds()),
            machine_image_type=ecs.MachineImageType.AMAZON_LINUX_2,
        )
        cluster.add_asg_capacity_provider(self.capacity_provider)

    def _agent_policies(self, cluster: ecs.ICluster) -> None:
        """What the ECS agent and the Session Manager agent on the instance call, written here
        rather than taken from aws-cdk-lib (``Submit*``, logs on ``*``) or from
        AmazonSSMManagedInstanceCore (``ssm:GetParameter(s)`` on ``*``, Run Command)."""
        # The statements aws-cdk-lib adds when the cluster takes the capacity provider.
        self.role.route(within_actions(_CDK_AGENT_ACTIONS), policy=None)
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "ecs:RegisterContainerInstance",
                    "ecs:DeregisterContainerInstance",
                    "ecs:SubmitContainerStateChange",
                    "ecs:SubmitTaskStateChange",
                    "ecs:SubmitAttachmentStateChanges",
                ],
                resources=[cluster.cluster_arn],
            )
        )
        # No logs: the tasks' logs go through their execution role (awslogs driver).
        self.agent_policy = acknowledged_policy(
            self.role,
            "AgentPolicy",
            {
                "AwsSolutions-IAM5[Resource::*]": (
                    "the ECS agent: ecs:DiscoverPollEndpoint and ecr:GetAuthorizationToken have "
                    "no resource types; ecs:Poll and ecs:StartTelemetrySession are limited to "
                    "this cluster by the ecs:cluster condition"
                )
            },
            [
                iam.PolicyStatement(
                    actions=["ecs:DiscoverPollEndpoint", "ecr:GetAuthorizationToken"],
                    resources=["*"],
                ),
                iam.PolicyStatement(
                    actions=["ecs:Poll", "ecs:StartTelemetrySession"],
                    resources=["*"],
                    conditions={"ArnEquals": {"ecs:cluster": cluster.cluster_arn}},
                ),
            ],
        )
        instances = f"arn:{Aws.PARTITION}:ec2:{Aws.REGION}:{Aws.ACCOUNT_ID}:instance/*"
        self.session_manager_policy = acknowledged_policy(
            self.role,
            "SessionManagerPolicy",
            {
                "AwsSolutions-IAM5[Resource::*]": (
                    "Session Manager instead of SSH keys: its ssmmessages channel actions have "
                    "no resource types"
                ),
                "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:<AWS::Region>:"
                "<AWS::AccountId>:instance/*]": (
                    "the agent registers the instance it runs on, whose id is known at launch only"
                ),
            },
            [
                iam.PolicyStatement(
                    actions=["ssm:UpdateInstanceInformation"], resources=[instances]
                ),
                iam.PolicyStatement(
                    actions=[
                        "ssmmessages:CreateControlChannel",
                        "ssmmessages:CreateDataChannel",
                        "ssmmessages:OpenControlChannel",
                        "ssmmessages:OpenDataChannel",
                    ],
                    resources=["*"],
                ),
            ],
        )


_CDK_AGENT_ACTIONS = frozenset(
    {
        "ecs:DeregisterContainerInstance",
        "ecs:RegisterContainerInstance",
        "ecs:Submit*",
        "ecs:Poll",
        "ecs:StartTelemetrySession",
        "ecs:DiscoverPollEndpoint",
        "ecr:GetAuthorizationToken",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    }
)


# ECS agent settings (/etc/ecs/ecs.config); the cluster appends ECS_CLUSTER.
AGENT_CONFIG = {
    # Tasks in awsvpc mode get no route to the instance metadata service.
    "ECS_AWSVPC_BLOCK_IMDS": "true",
}


def _agent_config() -> ec2.UserData:
    user_data = ec2.UserData.for_linux()
    user_data.add_commands(
        *(f"echo {key}={value} >> /etc/ecs/ecs.config" for key, value in AGENT_CONFIG.items())
    )
    return user_data
