"""Network, ECS cluster and shared plumbing for model services on Neuron instances."""

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from inferfleet.constructs.private_bucket import private_bucket


class NeuronServingCluster(Construct):
    """A VPC, an ECS cluster with Container Insights, and what its services share.

    Model services (:class:`~inferfleet.constructs.neuron_model_service.NeuronModelService`)
    are added on top; each brings its own load balancer and capacity pools.

    :param vpc: an existing VPC. Default: a new one over ``max_azs`` zones with public
        and private subnets, a NAT gateway per zone and flow logs to CloudWatch.
        Import an existing one with ``ec2.Vpc.from_vpc_attributes`` (no lookup).
    :param vpc_cidr: address range of a new VPC; with ``vpc``, give that VPC's range.
        Kept as a literal so security-group rules can be checked at synth.
        Default: 10.0.0.0/16 for a new VPC.
    :param max_azs: zones of a new VPC. Default: 3.
    :param nat_gateways: NAT gateways of a new VPC. Default: one per zone.
    :param alarm_emails: addresses subscribed to the alarm topic. Default: none.
    :param access_log_retention: how long load balancer access logs are kept.
        Default: 90 days.
    :param compile_cache_retention: how long unused Neuron compile artifacts are kept.
        Default: 180 days.
    :param log_retention: retention of container and flow logs. Default: one month.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc | None = None,
        vpc_cidr: str | None = None,
        max_azs: int = 3,
        nat_gateways: int | None = None,
        alarm_emails: list[str] | None = None,
        access_log_retention: Duration = Duration.days(90),
        compile_cache_retention: Duration = Duration.days(180),
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH,
    ) -> None:
        super().__init__(scope, construct_id)
        if vpc is not None and nat_gateways is not None:
            raise ValueError(f"{construct_id}: nat_gateways applies to a new VPC only; drop it")
        if vpc is not None and vpc_cidr is None:
            raise ValueError(f"{construct_id}: give vpc_cidr, the address range of the given vpc")
        self.log_retention = log_retention
        self.vpc_cidr = vpc_cidr or "10.0.0.0/16"
        self.vpc = vpc or self._new_vpc(self.vpc_cidr, max_azs, nat_gateways, log_retention)
        self.cluster = ecs.Cluster(
            self,
            "Cluster",
            vpc=self.vpc,
            container_insights_v2=ecs.ContainerInsights.ENHANCED,
        )
        self.access_log_bucket = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,  # the only kind ALB log delivery accepts
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[s3.LifecycleRule(expiration=access_log_retention)],
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.compile_cache_bucket = private_bucket(
            self,
            "CompileCache",
            access_logs_bucket=self.access_log_bucket,
            access_logs_prefix="compile-cache/",
            versioned=False,
            lifecycle_rules=[s3.LifecycleRule(expiration=compile_cache_retention)],
        )
        self.alarm_key = kms.Key(
            self,
            "AlarmTopicKey",
            description="Encrypts the alarm and Auto Scaling notification topic",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        # CloudWatch alarms publish through the key; IAM grants can't reach service principals.
        self.alarm_key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
            )
        )
        self.alarm_topic = sns.Topic(
            self,
            "AlarmTopic",
            master_key=self.alarm_key,
            enforce_ssl=True,
        )
        for email in alarm_emails or []:
            self.alarm_topic.add_subscription(subscriptions.EmailSubscription(email))
        self.dashboard = cloudwatch.Dashboard(
            self,
            "Dashboard",
            dashboard_name=f"{Stack.of(self).stack_name}-serving",
            default_interval=Duration.hours(3),
        )

    def _new_vpc(
        self, cidr: str, max_azs: int, nat_gateways: int | None, log_retention: logs.RetentionDays
    ) -> ec2.Vpc:
        flow_log_group = logs.LogGroup(self, "FlowLogs", retention=log_retention)
        return ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(cidr),
            max_azs=max_azs,
            nat_gateways=nat_gateways,
            subnet_configuration=[
                ec2.SubnetConfiguration(
                    name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24
                ),
                ec2.SubnetConfiguration(
                    name="private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=20
                ),
            ],
            flow_logs={
                "all": ec2.FlowLogOptions(
                    destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_log_group),
                    traffic_type=ec2.FlowLogTrafficType.ALL,
                )
            },
        )
