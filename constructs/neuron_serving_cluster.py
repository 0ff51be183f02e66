"""Network, ECS cluster and shared plumbing for model services on Neuron instances."""

from aws_cdk import Duration, Names, RemovalPolicy, Stack
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
from inferfleet.constructs.props.problems import PropsProblem, raise_for
from inferfleet.constructs.props.serving_cluster import (
    LOG_RETENTION_DAYS,
    ImportedVpc,
    NeuronServingClusterProps,
)

__all__ = ["ImportedVpc", "NeuronServingCluster", "NeuronServingClusterProps"]

# The role Auto Scaling publishes lifecycle notifications as.
AUTO_SCALING_SERVICE_ROLE = "AWSServiceRoleForAutoScaling"


class NeuronServingCluster(Construct):
    """A VPC, an ECS cluster with Container Insights, and what its services share.

    Model services (:class:`~inferfleet.constructs.neuron_model_service.NeuronModelService`)
    are added on top; each brings its own load balancer and capacity pools.

    :param props: network and retention settings (:class:`NeuronServingClusterProps`,
        defaults documented there). Default: a new VPC over three zones.
    :param vpc: an existing VPC object instead of ``props.vpc`` (give its range in
        ``props.vpc_cidr``, kept literal so security-group rules can be checked at synth).
        Default: ``cluster.vpc`` when a cluster is given.
    :param cluster: an ECS cluster of this app to add the services' capacity to (an
        ``ecs.Cluster``: an imported one cannot take capacity providers from CDK). Default: a
        new cluster with Container Insights (enhanced).
    :param alarm_topic: an existing SNS topic for alarms and Auto Scaling notifications (its
        policy, and its key's, must let CloudWatch and Auto Scaling publish). Default: a new
        topic encrypted with a new KMS key that lets them.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        props: NeuronServingClusterProps | None = None,
        vpc: ec2.IVpc | None = None,
        cluster: ecs.Cluster | None = None,
        alarm_topic: sns.ITopic | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        props = props or NeuronServingClusterProps()
        problems = props.problems()
        if vpc is not None and (props.vpc is not None or props.nat_gateways is not None):
            problems.append(
                PropsProblem("vpc", "give the VPC once: as the vpc object or as props.vpc")
            )
        if cluster is not None and not isinstance(cluster, ecs.Cluster):
            problems.append(
                PropsProblem(
                    "cluster",
                    "needs an ecs.Cluster of this app; an imported cluster cannot take the "
                    "capacity providers the services add",
                )
            )
        elif cluster is not None and (vpc is not None or props.vpc is not None):
            problems.append(
                PropsProblem(
                    "vpc",
                    "an existing cluster brings its VPC (cluster.vpc); leave vpc and props.vpc out",
                )
            )
        raise_for(self.node.path, problems)
        self.props = props
        vpc = vpc or (cluster.vpc if cluster is not None else None)
        self.log_retention = _retention(props.log_retention_days)
        self.vpc_cidr = props.cidr
        if vpc is not None:
            self.vpc = vpc
        elif props.vpc is not None:
            self.vpc = _imported_vpc(self, props.vpc)
        else:
            self.vpc = self._new_vpc(props)
        self.cluster: ecs.Cluster = cluster or ecs.Cluster(
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
            lifecycle_rules=[
                s3.LifecycleRule(expiration=Duration.days(props.access_log_retention_days))
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.compile_cache_bucket = private_bucket(
            self,
            "CompileCache",
            access_logs_bucket=self.access_log_bucket,
            access_logs_prefix="compile-cache/",
            versioned=False,
            lifecycle_rules=[
                s3.LifecycleRule(expiration=Duration.days(props.compile_cache_retention_days))
            ],
        )
        self.alarm_key: kms.Key | None = None
        self.alarm_topic: sns.ITopic = alarm_topic or self._new_alarm_topic()
        for email in props.alarm_emails:
            self.alarm_topic.add_subscription(subscriptions.EmailSubscription(email))
        self.dashboard: cloudwatch.Dashboard | None = (
            cloudwatch.Dashboard(
                self,
                "Dashboard",
                # From the construct's path: two clusters in one stack get two dashboards.
                dashboard_name=Names.unique_resource_name(self, max_length=255, separator="-"),
                default_interval=Duration.hours(3),
            )
            if props.dashboard
            else None
        )

    def _new_alarm_topic(self) -> sns.Topic:
        self.alarm_key = kms.Key(
            self,
            "AlarmTopicKey",
            description="Encrypts the alarm and Auto Scaling notification topic",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self._let_publishers_use(self.alarm_key)
        return sns.Topic(self, "AlarmTopic", master_key=self.alarm_key, enforce_ssl=True)

    def _let_publishers_use(self, key: kms.Key) -> None:
        """The alarm topic's two publishers encrypt through the key: this account's CloudWatch
        alarms, and Auto Scaling's lifecycle notifications (sent as its service-linked role)."""
        stack = Stack.of(self)
        publish = ["kms:Decrypt", "kms:GenerateDataKey*"]
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsOfThisAccount",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=publish,
                resources=["*"],
                conditions={
                    "StringEquals": {"aws:SourceAccount": stack.account},
                    "ArnLike": {
                        "aws:SourceArn": f"arn:{stack.partition}:cloudwatch:{stack.region}:"
                        f"{stack.account}:alarm:*"
                    },
                },
            )
        )
        # Named by condition, not as the principal: KMS refuses a policy naming a role that
        # does not exist yet, and the role appears with the account's first Auto Scaling group.
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AutoScalingNotificationsOfThisAccount",
                principals=[iam.AnyPrincipal()],
                actions=publish,
                resources=["*"],
                conditions={
                    "StringEquals": {"kms:CallerAccount": stack.account},
                    "ArnEquals": {
                        "aws:PrincipalArn": f"arn:{stack.partition}:iam::{stack.account}:role/"
                        f"aws-service-role/autoscaling.amazonaws.com/{AUTO_SCALING_SERVICE_ROLE}"
                    },
                },
            )
        )

    def _new_vpc(self, props: NeuronServingClusterProps) -> ec2.Vpc:
        flow_log_group = logs.LogGroup(self, "FlowLogs", retention=self.log_retention)
        zones = props.availability_zones
        return ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(props.vpc_cidr),
            availability_zones=list(zones) if zones else None,
            max_azs=None if zones else props.max_azs,
            nat_gateways=props.nat_gateways,
            restrict_default_security_group=props.restrict_default_security_group,
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


def _imported_vpc(scope: Construct, vpc: ImportedVpc) -> ec2.IVpc:
    return ec2.Vpc.from_vpc_attributes(
        scope,
        "Vpc",
        vpc_id=vpc.vpc_id,
        vpc_cidr_block=vpc.cidr,
        availability_zones=list(vpc.availability_zones),
        private_subnet_ids=list(vpc.private_subnet_ids),
        public_subnet_ids=list(vpc.public_subnet_ids) or None,
    )


def _retention(days: int) -> logs.RetentionDays:
    # RetentionDays lists the periods CloudWatch Logs accepts in ascending order, then INFINITE.
    finite = [member for member in logs.RetentionDays if member is not logs.RetentionDays.INFINITE]
    return dict(zip(LOG_RETENTION_DAYS, finite, strict=True))[days]
