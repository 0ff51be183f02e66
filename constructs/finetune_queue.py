"""A fine-tune queue: per-user uploads become SageMaker training jobs, then MME models.

Flow: the client writes data and then a manifest under ``uploads/{user}/{job}/`` of the data
bucket -> the register function puts one QUEUED job (conditional write, so duplicate S3 events
register it once) -> the job table's stream and a scheduled sweep feed the launcher, which
starts training jobs under deterministic names, at most ``max_running_jobs`` at a time and at
``create_calls_per_second`` -> EventBridge's "SageMaker Training Job State Change" feeds the
publisher, which copies the artifact to ``{model_prefix}{user}/{model}.tar.gz`` of the model
bucket, records the model and emits an event for the application.

Lambda code is the ``finetune_handlers`` package next to this module (no Docker bundling);
Powertools comes from its public layer.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Aws, Duration, Names, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3_notifications
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from inferfleet.constructs.container_images import ecr_repository_arn, image_asset_options
from inferfleet.constructs.finetune_handlers.layout import (
    BATCH_ROOT,
    MANIFEST_NAME,
    MAX_TRAINING_JOB_PREFIX,
    TRAINING_OUTPUT_ROOT,
    UPLOAD_ROOT,
)
from inferfleet.constructs.finetune_handlers.schema import (
    BY_STATUS_INDEX,
    BY_TRAINING_JOB_INDEX,
    CREATED_AT,
    EVENT_SOURCE_PREFIX,
    JOB_KEY,
    LAUNCH_STREAM_FILTER,
    MODEL_KEY,
    MODEL_REMOVAL_DETAIL_TYPE,
    STATE_CHANGE_DETAIL_TYPE,
    STATE_CHANGE_SOURCE,
    TERMINAL_TRAINING_STATUSES,
    USER_KEY,
)
from inferfleet.constructs.finetune_handlers.settings import (
    Hosting,
    LauncherSettings,
    PublisherSettings,
    RegisterSettings,
    Tables,
    TrainingLimits,
)
from inferfleet.constructs.nag import (
    RoutingRole,
    acknowledge,
    acknowledged_policy,
    nag_resource,
    only_actions,
)
from inferfleet.constructs.private_bucket import private_bucket
from inferfleet.constructs.props.finetune_queue import AdapterComponents, FinetuneQueueProps
from inferfleet.constructs.props.problems import PropsProblem, raise_for

__all__ = ["AdapterComponents", "FinetuneQueue", "FinetuneQueueProps"]

HANDLERS_PACKAGE = "finetune_handlers"
POWERTOOLS_ACCOUNT = "017000801446"
RUNTIME = lambda_.Runtime.PYTHON_3_13
# The stack-level singleton CDK adds to put notifications on a bucket at deploy time.
_NOTIFICATIONS_HANDLER_ID = "BucketNotificationsHandler050a0587b7544547bf325f094a3db834"


class FinetuneQueue(Construct):
    """Uploads -> DynamoDB job queue -> SageMaker training jobs -> models on an endpoint.

    :param props: the queue (:class:`FinetuneQueueProps`, every default documented there).
    :param model_bucket: bucket the endpoint loads from (e.g.
        ``SageMakerEndpoint.model_bucket``).
    :param adapter_components: publish to adapter inference components instead of a
        multi-model endpoint's prefix. Default: none (multi-model endpoint).
    :param event_bus: bus for the ready/failed events. Default: the account's default bus.
    :param alarm_topic: SNS topic the alarms notify. Default: none.
    :param access_logs_bucket: where the data bucket logs access. Default: none.
    :param removal_policy: for tables and the data bucket. Default: RETAIN.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        model_bucket: s3.IBucket,
        props: FinetuneQueueProps | None = None,
        adapter_components: AdapterComponents | None = None,
        event_bus: events.IEventBus | None = None,
        alarm_topic: sns.ITopic | None = None,
        access_logs_bucket: s3.IBucket | None = None,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    ) -> None:
        super().__init__(scope, construct_id)
        props = props or FinetuneQueueProps()
        raise_for(
            self.node.path,
            props.problems() + (adapter_components.problems() if adapter_components else []),
        )
        self.props = props
        model_prefix = props.model_prefix
        training_job_prefix = props.training_job_prefix or Names.unique_resource_name(
            self, max_length=MAX_TRAINING_JOB_PREFIX, separator="-"
        )
        limits = TrainingLimits(
            max_epochs=props.max_epochs,
            max_seq_len=props.max_seq_len,
            max_batch_size=props.max_batch_size,
        )
        self.model_bucket = model_bucket
        self.model_prefix = model_prefix
        self.training_job_prefix = training_job_prefix
        self.adapter_components = adapter_components
        self.event_bus = event_bus or events.EventBus.from_event_bus_name(
            self, "DefaultBus", "default"
        )
        self.event_source = props.event_source or f"{EVENT_SOURCE_PREFIX}{training_job_prefix}"
        self._refuse_a_clash()

        self.jobs_table = self._jobs_table(removal_policy)
        self.models_table = self._table(
            "ModelsTable", USER_KEY, MODEL_KEY, removal_policy=removal_policy
        )
        self.idempotency_table = self._idempotency_table()
        self.data_bucket = self._data_bucket(access_logs_bucket, removal_policy)
        self.dead_letter_queue = self._dead_letter_queue()

        training_image = None if props.training_image_uri else self._training_image()
        self.training_image_uri = props.training_image_uri or training_image.image_uri  # type: ignore[union-attr]
        # The asset's repository, or the given image's: pulls reach that repository only.
        self._training_repository_arn = (
            training_image.repository.repository_arn
            if training_image
            else ecr_repository_arn(self.training_image_uri, Stack.of(self).partition)
        )
        # One role per job kind, each reaching the prefixes that kind needs.
        self.single_training_role = self._training_role(
            "SingleTrainingRole",
            "Single fine-tune jobs: SageMaker reads the upload, writes the model",
            reads=[UPLOAD_ROOT],
            writes=[TRAINING_OUTPUT_ROOT],
        )
        self.batch_training_role = self._training_role(
            "BatchTrainingRole",
            "Batch fine-tune jobs: the container reads uploads and tasks, writes task outputs",
            reads=[UPLOAD_ROOT, BATCH_ROOT],
            writes=[BATCH_ROOT],
        )

        self._layer = lambda_.LayerVersion.from_layer_version_arn(
            self,
            "Powertools",
            f"arn:{Aws.PARTITION}:lambda:{Aws.REGION}:{POWERTOOLS_ACCOUNT}:layer:"
            f"AWSLambdaPowertoolsPythonV3-python313-x86_64:{props.powertools_layer_version}",
        )
        self._code = lambda_.Code.from_asset(
            str(Path(__file__).parent),
            exclude=["*", f"!{HANDLERS_PACKAGE}", f"!{HANDLERS_PACKAGE}/*.py"],
        )
        tables = Tables(jobs=self.jobs_table.table_name, models=self.models_table.table_name)
        hosting = Hosting.INFERENCE_COMPONENTS if adapter_components else Hosting.MULTI_MODEL

        self.register_function = self._function(
            "Register",
            "register",
            timeout=Duration.minutes(1),
            environment={
                **tables.to_env(),
                **limits.to_env(),
                **RegisterSettings(
                    data_bucket=self.data_bucket.bucket_name,
                    idempotency_table=self.idempotency_table.table_name,
                ).to_env(),
            },
            dead_letter_queue=self.dead_letter_queue,
        )
        launcher_settings = LauncherSettings(
            data_bucket=self.data_bucket.bucket_name,
            training_job_prefix=training_job_prefix,
            training_image=self.training_image_uri,
            single_role_arn=self.single_training_role.role_arn,
            batch_role_arn=self.batch_training_role.role_arn,
            instance_type=props.training_instance_type,
            volume_size_gb=props.training_volume_gb,
            max_runtime_s=props.training_max_runtime_s,
            network_isolation=props.training_network_isolation,
            warm_pool_keep_alive_s=props.warm_pool_keep_alive_s,
            max_running_jobs=props.max_running_jobs,
            create_calls_per_second=props.create_calls_per_second,
            max_attempts=props.max_attempts,
            # Longer than the function timeout: a live launch is never taken over.
            lease_s=int(Duration.minutes(10).to_seconds()),
            batch_threshold=props.batch_threshold,
            batch_tasks=props.batch_tasks,
            batch_instances=props.batch_instances,
            hosting=hosting,
        )
        self.launcher_function = self._function(
            "Launcher",
            "launcher",
            timeout=Duration.minutes(5),
            # One launcher at a time: it alone paces CreateTrainingJob for the account.
            reserved_concurrent_executions=1,
            environment={**tables.to_env(), **limits.to_env(), **launcher_settings.to_env()},
        )
        publisher_settings = PublisherSettings(
            data_bucket=self.data_bucket.bucket_name,
            training_job_prefix=training_job_prefix,
            model_bucket=model_bucket.bucket_name,
            model_prefix=model_prefix,
            event_bus=self.event_bus.event_bus_name,
            event_source=self.event_source,
            reconcile_after_s=props.reconcile_after_s,
            hosting=hosting,
            endpoint_name=adapter_components.endpoint_name if adapter_components else "",
            base_component_name=(
                adapter_components.base_component_name if adapter_components else ""
            ),
        )
        self.publisher_function = self._function(
            "Publisher",
            "publisher",
            timeout=Duration.minutes(5),
            environment={**tables.to_env(), **publisher_settings.to_env()},
        )

        self._wire_register()
        self._wire_launcher(
            Duration.seconds(props.sweep_interval_s), warm_pools=props.warm_pool_keep_alive_s > 0
        )
        self._wire_publisher()
        self.alarms = self._alarms()
        if alarm_topic is not None:
            for alarm in self.alarms.values():
                alarm.add_alarm_action(cloudwatch_actions.SnsAction(alarm_topic))

    # -- storage -----------------------------------------------------------------------------

    def _table(
        self,
        construct_id: str,
        partition: str,
        sort: str | None = None,
        *,
        removal_policy: RemovalPolicy,
        stream: dynamodb.StreamViewType | None = None,
    ) -> dynamodb.Table:
        return dynamodb.Table(
            self,
            construct_id,
            partition_key=dynamodb.Attribute(name=partition, type=dynamodb.AttributeType.STRING),
            sort_key=(
                dynamodb.Attribute(name=sort, type=dynamodb.AttributeType.STRING) if sort else None
            ),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            stream=stream,
            removal_policy=removal_policy,
        )

    def _jobs_table(self, removal_policy: RemovalPolicy) -> dynamodb.Table:
        # Keyed by user and job: a job id is the user's own, another user may pick it too.
        table = self._table(
            "JobsTable",
            USER_KEY,
            JOB_KEY,
            removal_policy=removal_policy,
            stream=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
        )
        for index, partition, sort in (
            (BY_STATUS_INDEX, "status", CREATED_AT),
            (BY_TRAINING_JOB_INDEX, "training_job_name", JOB_KEY),
        ):
            table.add_global_secondary_index(
                index_name=index,
                partition_key=dynamodb.Attribute(
                    name=partition, type=dynamodb.AttributeType.STRING
                ),
                sort_key=dynamodb.Attribute(name=sort, type=dynamodb.AttributeType.STRING),
            )
        return table

    def _idempotency_table(self) -> dynamodb.Table:
        table = dynamodb.Table(
            self,
            "IdempotencyTable",
            partition_key=dynamodb.Attribute(name="id", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            time_to_live_attribute="expiration",
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            removal_policy=RemovalPolicy.DESTROY,
        )
        return table

    def _data_bucket(
        self, access_logs_bucket: s3.IBucket | None, removal_policy: RemovalPolicy
    ) -> s3.Bucket:
        return private_bucket(
            self,
            "DataBucket",
            access_logs_bucket=access_logs_bucket,
            access_logs_prefix="finetune-data/",
            removal_policy=removal_policy,
            lifecycle_rules=[
                s3.LifecycleRule(
                    noncurrent_version_expiration=Duration.days(30),
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                )
            ],
        )

    def _dead_letter_queue(self) -> sqs.Queue:
        queue = sqs.Queue(
            self,
            "DeadLetterQueue",
            # SSE-SQS: EventBridge cannot deliver to a queue under the AWS-managed KMS key.
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        acknowledge(
            queue,
            "AwsSolutions-SQS3",
            "this queue is itself the dead-letter queue of the launcher's stream, the register "
            "function and the publisher's rule",
        )
        return queue

    # -- training ----------------------------------------------------------------------------

    def _training_image(self) -> ecr_assets.DockerImageAsset:
        return ecr_assets.DockerImageAsset(self, "TrainingImage", **image_asset_options("finetune"))

    def _training_role(
        self, construct_id: str, description: str, *, reads: list[str], writes: list[str]
    ) -> iam.Role:
        role = iam.Role(
            self,
            construct_id,
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=description,
        )
        bucket_arn = self.data_bucket.bucket_arn
        nag_bucket = nag_resource(role, bucket_arn)
        _grant_prefixes(role, bucket_arn, reads, ["s3:GetObject"], nag_bucket=nag_bucket)
        _grant_prefixes(
            role,
            bucket_arn,
            writes,
            ["s3:PutObject", "s3:AbortMultipartUpload"],
            nag_bucket=nag_bucket,
        )
        role.add_to_policy(_list_under(bucket_arn, reads))
        repository_arn = self._training_repository_arn or (
            f"arn:{Aws.PARTITION}:ecr:{Aws.REGION}:{Aws.ACCOUNT_ID}:repository/*"
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
                resources=[repository_arn],
            )
        )
        if self._training_repository_arn is None:
            acknowledge(
                role,
                "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ecr:<AWS::Region>:"
                "<AWS::AccountId>:repository/*]",
                "training_image_uri is not an ECR image URI known at synth; pulls stay in this "
                "account and region",
            )
        acknowledged_policy(
            role,
            "UnscopedActions",
            {
                "AwsSolutions-IAM5[Resource::*]": (
                    "ecr:GetAuthorizationToken has no resource types; PutMetricData is limited "
                    "to the training namespace by condition"
                )
            },
            [
                iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"]),
                iam.PolicyStatement(
                    actions=["cloudwatch:PutMetricData"],
                    resources=["*"],
                    conditions={
                        "StringEquals": {"cloudwatch:namespace": "/aws/sagemaker/TrainingJobs"}
                    },
                ),
            ],
        )
        log_groups = (
            f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:"
            "log-group:/aws/sagemaker/TrainingJobs"
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[log_groups, f"{log_groups}:*"],
            )
        )
        acknowledge(
            role,
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:<AWS::Region>:"
            "<AWS::AccountId>:log-group:/aws/sagemaker/TrainingJobs:*]",
            "SageMaker writes one log stream per training job and instance",
        )
        return role

    # -- functions ---------------------------------------------------------------------------

    def _function(
        self,
        construct_id: str,
        module: str,
        *,
        timeout: Duration,
        environment: dict[str, str],
        reserved_concurrent_executions: int | None = None,
        dead_letter_queue: sqs.IQueue | None = None,
    ) -> lambda_.Function:
        log_group = logs.LogGroup(
            self,
            f"{construct_id}Logs",
            retention=logs.RetentionDays.ONE_MONTH,
            removal_policy=RemovalPolicy.DESTROY,
        )
        role = RoutingRole(
            self,
            f"{construct_id}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[log_group.log_group_arn],
            )
        )
        acknowledge(
            role,
            f"AwsSolutions-IAM5[Resource::{nag_resource(role, log_group.log_group_arn)}]",
            "Lambda creates a log stream per execution environment in the function's own log group",
        )
        function = lambda_.Function(
            self,
            construct_id,
            runtime=RUNTIME,
            architecture=lambda_.Architecture.X86_64,
            code=self._code,
            handler=f"{HANDLERS_PACKAGE}.{module}.handler",
            layers=[self._layer],
            timeout=timeout,
            memory_size=512,
            role=role,
            log_group=log_group,
            reserved_concurrent_executions=reserved_concurrent_executions,
            dead_letter_queue=dead_letter_queue,
            environment={
                **environment,
                "POWERTOOLS_SERVICE_NAME": f"inferfleet-finetune-{module}",
                "POWERTOOLS_LOG_LEVEL": "INFO",
            },
        )
        acknowledge(
            function,
            "AwsSolutions-L1",
            "the runtime is the one the Powertools public layer is built for "
            "(AWSLambdaPowertoolsPythonV3-python313); move both together",
        )
        return function

    def _wire_register(self) -> None:
        function = self.register_function
        self.data_bucket.add_event_notification(
            s3.EventType.OBJECT_CREATED,
            s3_notifications.LambdaDestination(function),
            s3.NotificationKeyFilter(prefix=UPLOAD_ROOT, suffix=MANIFEST_NAME),
        )
        function.configure_async_invoke(retry_attempts=2)
        notifications = Stack.of(self).node.try_find_child(_NOTIFICATIONS_HANDLER_ID)
        if notifications is not None:
            acknowledge(
                notifications,
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                "AWSLambdaBasicExecutionRole]",
                "CDK's own handler that configures bucket notifications at deploy time; it "
                "only writes its logs",
            )
        self._read_objects(function, [UPLOAD_ROOT])
        self.jobs_table.grant(function, "dynamodb:PutItem")
        self.idempotency_table.grant(
            function,
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
        )
        self._acknowledge_indexes(function)

    def _wire_launcher(self, sweep_interval: Duration, *, warm_pools: bool) -> None:
        function = self.launcher_function
        role: RoutingRole = function.role  # type: ignore[assignment]
        # What the stream event source adds: finding the table's stream.
        role.route(
            only_actions("dynamodb:ListStreams"),
            policy="StreamDiscovery",
            findings={
                "AwsSolutions-IAM5[Resource::*]": (
                    "dynamodb:ListStreams (the stream event source) has no resource types"
                )
            },
        )
        function.add_event_source(
            event_sources.DynamoEventSource(
                self.jobs_table,
                starting_position=lambda_.StartingPosition.TRIM_HORIZON,
                batch_size=10,
                bisect_batch_on_error=True,
                retry_attempts=3,
                report_batch_item_failures=True,
                on_failure=event_sources.SqsDlq(self.dead_letter_queue),
                filters=[lambda_.FilterCriteria.filter(LAUNCH_STREAM_FILTER)],
            )
        )
        self.sweep_rule = events.Rule(
            self,
            "SweepSchedule",
            description="Launch what the stream left queued, recover interrupted launches, "
            "end jobs whose training job ended unheard",
            schedule=events.Schedule.rate(sweep_interval),
            targets=[
                targets.LambdaFunction(
                    function, event=events.RuleTargetInput.from_object({"sweep": True})
                )
            ],
        )
        self.jobs_table.grant(function, "dynamodb:GetItem", "dynamodb:Query", "dynamodb:UpdateItem")
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=[
                    "sagemaker:CreateTrainingJob",
                    "sagemaker:DescribeTrainingJob",
                    "sagemaker:AddTags",
                ],
                resources=[self._training_jobs_arn()],
            )
        )
        if warm_pools:
            acknowledged_policy(
                role,
                "WarmPoolDiscovery",
                {
                    "AwsSolutions-IAM5[Resource::*]": (
                        "sagemaker:ListTrainingJobs (finding a warm pool to reuse) has no "
                        "resource types"
                    )
                },
                [iam.PolicyStatement(actions=["sagemaker:ListTrainingJobs"], resources=["*"])],
            )
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=[self.single_training_role.role_arn, self.batch_training_role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            )
        )
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject"], resources=[f"{self.data_bucket.bucket_arn}/{BATCH_ROOT}*"]
            )
        )
        self._acknowledge_objects(function, self.data_bucket, [BATCH_ROOT])
        self._acknowledge_training_jobs(function)
        self._acknowledge_indexes(function)

    def _refuse_a_clash(self) -> None:
        """Two queues of one app in one account and region: SageMaker's state changes reach
        both rules, and a bus they share carries both queues' removal requests."""
        here = Stack.of(self)
        for other in self.node.root.node.find_all():
            if not isinstance(other, FinetuneQueue) or other is self:
                continue
            there = Stack.of(other)
            if (there.account, there.region) != (here.account, here.region):
                continue
            problems = []
            same_bus = other.event_bus.event_bus_name == self.event_bus.event_bus_name
            if same_bus and other.event_source == self.event_source:
                problems.append(
                    PropsProblem(
                        "event_source",
                        f"{self.event_source!r} is also the source of {other.node.path} on "
                        "the same bus: each would take the other's removal requests; give "
                        "each queue its own, or leave event_source unset",
                    )
                )
            mine, theirs = f"{self.training_job_prefix}-", f"{other.training_job_prefix}-"
            if mine.startswith(theirs) or theirs.startswith(mine):
                problems.append(
                    PropsProblem(
                        "training_job_prefix",
                        f"{self.training_job_prefix!r} overlaps {other.training_job_prefix!r} "
                        f"of {other.node.path}: one queue's training jobs would match the "
                        "other's rule and role; give prefixes where neither, with a hyphen, "
                        "starts the other",
                    )
                )
            raise_for(self.node.path, problems)

    def _wire_publisher(self) -> None:
        function = self.publisher_function
        self.training_state_rule = events.Rule(
            self,
            "TrainingJobStateChange",
            description="Publish or fail fine-tune jobs when their training job ends",
            event_pattern=events.EventPattern(
                source=[STATE_CHANGE_SOURCE],
                detail_type=[STATE_CHANGE_DETAIL_TYPE],
                detail={
                    "TrainingJobStatus": list(TERMINAL_TRAINING_STATUSES),
                    "TrainingJobName": [{"prefix": f"{self.training_job_prefix}-"}],
                },
            ),
            targets=[self._publisher_target()],
        )
        self.removal_rule = events.Rule(
            self,
            "ModelRemoval",
            description="Take a user's model out of service when the application asks",
            event_bus=self.event_bus,
            event_pattern=events.EventPattern(
                source=[self.event_source], detail_type=[MODEL_REMOVAL_DETAIL_TYPE]
            ),
            targets=[self._publisher_target()],
        )
        self.sweep_rule.add_target(
            targets.LambdaFunction(
                function, event=events.RuleTargetInput.from_object({"reconcile": True})
            )
        )
        self.jobs_table.grant(function, "dynamodb:GetItem", "dynamodb:Query", "dynamodb:UpdateItem")
        self.models_table.grant(
            function, "dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"
        )
        self._read_objects(function, [TRAINING_OUTPUT_ROOT, BATCH_ROOT])
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject", "s3:AbortMultipartUpload"],
                resources=[f"{self.model_bucket.bucket_arn}/{self.model_prefix}*"],
            )
        )
        self._acknowledge_objects(function, self.model_bucket, [self.model_prefix])
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["sagemaker:DescribeTrainingJob"], resources=[self._training_jobs_arn()]
            )
        )
        self._acknowledge_training_jobs(function)
        if self.adapter_components is not None:
            self._grant_adapter_components(function)
        self.event_bus.grant_put_events_to(function)
        self._acknowledge_indexes(function)

    def _publisher_target(self) -> targets.LambdaFunction:
        return targets.LambdaFunction(
            self.publisher_function,
            retry_attempts=8,
            max_event_age=Duration.hours(24),
            dead_letter_queue=self.dead_letter_queue,
        )

    def _grant_adapter_components(self, function: lambda_.Function) -> None:
        components = (
            f"arn:{Aws.PARTITION}:sagemaker:{Aws.REGION}:{Aws.ACCOUNT_ID}:"
            f"inference-component/{self.training_job_prefix.lower()}-*"
        )
        endpoint = (
            f"arn:{Aws.PARTITION}:sagemaker:{Aws.REGION}:{Aws.ACCOUNT_ID}:"
            f"endpoint/{self.adapter_components.endpoint_name.lower()}"  # type: ignore[union-attr]
        )
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=[
                    "sagemaker:CreateInferenceComponent",
                    "sagemaker:UpdateInferenceComponent",
                    "sagemaker:DescribeInferenceComponent",
                    "sagemaker:DeleteInferenceComponent",
                    "sagemaker:AddTags",
                ],
                resources=[components],
            )
        )
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["sagemaker:CreateInferenceComponent"], resources=[endpoint]
            )
        )
        acknowledge(
            function.role,  # type: ignore[arg-type]
            f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:"
            f"<AWS::AccountId>:inference-component/{self.training_job_prefix.lower()}-*]",
            "adapter components are named per user model at run time; the prefix scopes them "
            "to this queue",
        )

    def _training_jobs_arn(self) -> str:
        # SageMaker ARNs carry the name in lower case.
        return (
            f"arn:{Aws.PARTITION}:sagemaker:{Aws.REGION}:{Aws.ACCOUNT_ID}:"
            f"training-job/{self.training_job_prefix.lower()}-*"
        )

    def _acknowledge_training_jobs(self, function: lambda_.Function) -> None:
        acknowledge(
            function.role,  # type: ignore[arg-type]
            f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:"
            f"<AWS::AccountId>:training-job/{self.training_job_prefix.lower()}-*]",
            "training jobs are named per job at run time; the prefix scopes them to this queue",
        )

    def _read_objects(self, function: lambda_.Function, prefixes: list[str]) -> None:
        """s3:GetObject under the prefixes; no listing (the handlers read keys they know)."""
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"],
                resources=[f"{self.data_bucket.bucket_arn}/{prefix}*" for prefix in prefixes],
            )
        )
        self._acknowledge_objects(function, self.data_bucket, prefixes)

    def _acknowledge_objects(
        self, function: lambda_.Function, bucket: s3.IBucket, prefixes: list[str]
    ) -> None:
        nag_bucket = nag_resource(function, bucket.bucket_arn)
        for prefix in prefixes:
            acknowledge(
                function.role,  # type: ignore[arg-type]
                f"AwsSolutions-IAM5[Resource::{nag_bucket}/{prefix}*]",
                f"objects are per upload, training job or model version under {prefix}; "
                "nothing else",
            )

    def _acknowledge_indexes(self, function: lambda_.Function) -> None:
        acknowledge(
            function.role,  # type: ignore[arg-type]
            f"AwsSolutions-IAM5[Resource::{nag_resource(function, self.jobs_table.table_arn)}"
            "/index/*]",
            "the job queue is read through its status and training-job indexes",
        )

    # -- alarms ------------------------------------------------------------------------------

    def _alarms(self) -> dict[str, cloudwatch.Alarm]:
        alarms = {
            "DeadLetters": cloudwatch.Alarm(
                self,
                "DeadLettersAlarm",
                alarm_description="Fine-tune records or events were dead-lettered",
                metric=self.dead_letter_queue.metric_approximate_number_of_messages_visible(
                    period=Duration.minutes(1), statistic="Maximum"
                ),
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
        }
        for name, function in (
            ("Register", self.register_function),
            ("Launcher", self.launcher_function),
            ("Publisher", self.publisher_function),
        ):
            alarms[f"{name}Errors"] = cloudwatch.Alarm(
                self,
                f"{name}ErrorsAlarm",
                alarm_description=f"The fine-tune {name.lower()} function failed",
                metric=function.metric_errors(period=Duration.minutes(5)),
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
        return alarms


def _list_under(bucket_arn: str, prefixes: list[str]) -> iam.PolicyStatement:
    return iam.PolicyStatement(
        actions=["s3:ListBucket"],
        resources=[bucket_arn],
        conditions={"StringLike": {"s3:prefix": [f"{prefix}*" for prefix in prefixes]}},
    )


def _grant_prefixes(
    role: iam.Role, bucket_arn: str, prefixes: list[str], actions: list[str], *, nag_bucket: str
) -> None:
    role.add_to_policy(
        iam.PolicyStatement(
            actions=actions, resources=[f"{bucket_arn}/{prefix}*" for prefix in prefixes]
        )
    )
    for prefix in prefixes:
        acknowledge(
            role,
            f"AwsSolutions-IAM5[Resource::{nag_bucket}/{prefix}*]",
            f"training jobs read and write per-job objects under {prefix} only",
        )
