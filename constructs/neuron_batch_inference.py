"""NeuronBatchInference: a periodic SageMaker Batch Transform job on Inferentia2 or Trainium.

- the SageMaker model (the built-in ``pair-neuron`` image or ``image_uri``, the artifact,
  one copy per NeuronCore) under an execution role that reads the model's object and the
  input prefix, and writes the output prefix, nothing else;
- a Step Functions state machine that starts the transform job and waits for it
  (``createTransformJob.sync``): input split by line, multi-record mini-batches, files shared
  out to the instances by key (one at a time per instance), as many requests in flight per
  instance as it has NeuronCores. A job that fails for a transient reason (capacity, an
  internal error) runs again under a new name, up to ``max_attempts``; a run past
  ``max_run_hours`` is stopped and failed. After the job, a Lambda function counts the
  records in and out, writes ``_SUMMARY.json`` (records, pairs/s, instance-hours, cost) in
  the run's output folder and fails the run when an input lacks exactly one output record
  per record;
- an EventBridge Scheduler schedule that starts it (with ``schedule``);
- alarms: a run failed or was aborted, a run took longer than ``late_after_hours`` (at its
  end; a run is stopped at ``max_run_hours``), the schedule could not start one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import Aws, Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as scheduler_targets
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from inferfleet.constructs.batch_summary.layout import SETTINGS_ENV, run_output_prefix
from inferfleet.constructs.container_images import image_asset_options
from inferfleet.constructs.finetune_queue import POWERTOOLS_ACCOUNT, RUNTIME
from inferfleet.constructs.nag import (
    RoutingRole,
    acknowledge,
    acknowledged_policy,
    nag_resource,
    within_actions,
)
from inferfleet.constructs.props.batch_inference import NeuronBatchInferenceProps
from inferfleet.constructs.props.problems import raise_for
from inferfleet.containers.common.serving_env import PREFIX

SUMMARY_PACKAGE = "batch_summary"
JSON_LINES = "application/jsonlines"
# What SageMaker says of a job that failed through no fault of the model or the data.
TRANSIENT_FAILURES = ("*CapacityError*", "*InternalServerError*", "*InsufficientCapacity*")
RETRY_WAIT_S = 600
# Step Functions' managed rule for waiting on transform jobs (.sync).
SYNC_RULE = "StepFunctionsGetEventsForSageMakerTransformJobsRule"


class NeuronBatchInference(Construct):
    """See the module docstring; :class:`NeuronBatchInferenceProps` holds the defaults.

    :param props: the job.
    :param alarm_topic: SNS topic the alarms notify. Default: none.

    Raw resources stay reachable: ``model``, ``execution_role``, ``state_machine``,
    ``summary_function``, ``schedule`` (None without one), ``alarms``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        props: NeuronBatchInferenceProps,
        alarm_topic: sns.ITopic | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        raise_for(self.node.path, props.problems())
        self.props = props
        self.execution_role = self._execution_role()
        self.image_uri = self._image()
        self.model = sagemaker.CfnModel(
            self,
            "Model",
            execution_role_arn=self.execution_role.role_arn,
            enable_network_isolation=True,
            primary_container=sagemaker.CfnModel.ContainerDefinitionProperty(
                image=self.image_uri,
                model_data_url=props.model_artifact,
                environment={
                    f"{PREFIX}INSTANCE_TYPE": props.instance_type.removeprefix("ml."),
                    f"{PREFIX}NEURON_CORES": str(props.instance.neuron_cores),
                    **props.environment,
                },
            ),
        )
        self.model.node.add_dependency(self.execution_role)
        acknowledge(
            self.model,
            "AwsSolutions-SM1",
            "a transform job reaches S3 through SageMaker; the container runs with network "
            "isolation and needs no VPC",
        )
        self.summary_function = self._summary_function()
        self.state_machine = self._state_machine()
        self.schedule = self._schedule() if props.schedule else None
        self.alarms = self._alarms()
        if alarm_topic is not None:
            for alarm in self.alarms.values():
                alarm.add_alarm_action(cloudwatch_actions.SnsAction(alarm_topic))

    # -- the model ------------------------------------------------------------------------------

    def _execution_role(self) -> iam.Role:
        props = self.props
        role = iam.Role(
            self,
            "ExecutionRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"Batch job {props.name}: reads its model and input, writes its output",
        )
        model_bucket, model_key = props.model_location
        in_bucket, in_key = props.input_location
        out_bucket, out_key = props.output_location
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"], resources=[self._object_arn(model_bucket, model_key)]
            )
        )
        self._read_prefix(role, in_bucket, in_key, "the job reads every input file of its prefix")
        runs = f"{out_key}{props.run_pattern}/*"
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject", "s3:AbortMultipartUpload"],
                resources=[self._object_arn(out_bucket, runs)],
            )
        )
        acknowledge(
            role,
            f"AwsSolutions-IAM5[Resource::{_nag_object(out_bucket, runs)}]",
            "each run writes its .out files in its own folder, named after its transform job",
        )
        log_groups = (
            f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:"
            "log-group:/aws/sagemaker/TransformJobs"
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogGroup", "logs:DescribeLogStreams"], resources=[log_groups]
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[f"{log_groups}:log-stream:{props.run_pattern}/*"],
            )
        )
        acknowledge(
            role,
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:<AWS::Region>:"
            "<AWS::AccountId>:log-group:/aws/sagemaker/TransformJobs:log-stream:"
            f"{props.run_pattern}/*]",
            "SageMaker names the log streams after the transform job and the instance",
        )
        acknowledged_policy(
            role,
            "UnscopedActions",
            {
                "AwsSolutions-IAM5[Resource::*]": (
                    "ecr:GetAuthorizationToken has no resource types; cloudwatch:PutMetricData "
                    "is limited to the transform jobs' namespace by condition"
                )
            },
            [
                iam.PolicyStatement(
                    actions=["cloudwatch:PutMetricData"],
                    resources=["*"],
                    conditions={
                        "StringEquals": {"cloudwatch:namespace": "/aws/sagemaker/TransformJobs"}
                    },
                ),
                iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"]),
            ],
        )
        return role

    def _image(self) -> str:
        if self.props.image_uri:
            return self.props.image_uri
        asset = ecr_assets.DockerImageAsset(self, "Image", **image_asset_options("pair-neuron"))
        self.execution_role.add_to_policy(
            iam.PolicyStatement(
                actions=["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
                resources=[asset.repository.repository_arn],
            )
        )
        return asset.image_uri

    def _read_prefix(self, role: iam.Role, bucket: str, key: str, reason: str) -> None:
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"], resources=[self._object_arn(bucket, f"{key}*")]
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[f"arn:{Aws.PARTITION}:s3:::{bucket}"],
                conditions={"StringLike": {"s3:prefix": [f"{key}*"]}},
            )
        )
        acknowledge(role, f"AwsSolutions-IAM5[Resource::{_nag_object(bucket, f'{key}*')}]", reason)

    @staticmethod
    def _object_arn(bucket: str, key: str) -> str:
        return f"arn:{Aws.PARTITION}:s3:::{bucket}/{key}"

    # -- the summary ----------------------------------------------------------------------------

    def summary_settings(self) -> dict[str, Any]:
        props = self.props
        return {
            "input_prefix": props.input_prefix,
            "price_per_instance_hour": props.price_per_instance_hour,
        }

    def _summary_function(self) -> lambda_.Function:
        props = self.props
        log_group = logs.LogGroup(
            self,
            "SummaryLogs",
            retention=logs.RetentionDays.ONE_MONTH,
            removal_policy=RemovalPolicy.DESTROY,
        )
        role = iam.Role(
            self, "SummaryRole", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com")
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
        in_bucket, in_key = props.input_location
        out_bucket, out_key = props.output_location
        self._read_prefix(role, in_bucket, in_key, "the summary counts every input file's records")
        runs = f"{out_key}{props.run_pattern}/"
        self._read_prefix(
            role, out_bucket, runs, "the summary counts the records of a run's outputs"
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject"], resources=[self._object_arn(out_bucket, f"{runs}*")]
            )
        )
        function = lambda_.Function(
            self,
            "Summary",
            description=f"Batch job {props.name}: records in and out, pairs/s, cost of a run",
            runtime=RUNTIME,
            architecture=lambda_.Architecture.X86_64,
            code=lambda_.Code.from_asset(
                str(Path(__file__).parent),
                exclude=["*", f"!{SUMMARY_PACKAGE}", f"!{SUMMARY_PACKAGE}/*.py"],
            ),
            handler=f"{SUMMARY_PACKAGE}.handler.handler",
            layers=[
                lambda_.LayerVersion.from_layer_version_arn(
                    self,
                    "Powertools",
                    f"arn:{Aws.PARTITION}:lambda:{Aws.REGION}:{POWERTOOLS_ACCOUNT}:layer:"
                    f"AWSLambdaPowertoolsPythonV3-python313-x86_64:{props.powertools_layer_version}",
                )
            ],
            # It streams every input and output once; the run's data must fit in this.
            timeout=Duration.minutes(15),
            memory_size=512,
            role=role,
            log_group=log_group,
            environment={
                SETTINGS_ENV: Stack.of(self).to_json_string(self.summary_settings()),
                "POWERTOOLS_SERVICE_NAME": "inferfleet-batch-summary",
            },
        )
        acknowledge(
            function,
            "AwsSolutions-L1",
            "the runtime is the one the Powertools public layer is built for "
            "(AWSLambdaPowertoolsPythonV3-python313); move both together",
        )
        return function

    # -- the state machine ----------------------------------------------------------------------

    def definition(self) -> dict[str, Any]:
        """The state machine in Amazon States Language (tokens resolved by CloudFormation)."""
        props = self.props
        in_bucket, in_key = props.input_location
        run_folder = run_output_prefix(props.output_prefix, f"{props.name}-{{}}-{{}}")
        run_from_state = ["$.run.run_id", "$.run.attempt"]
        transient = [
            {"Variable": "$.failure.Cause", "StringMatches": p} for p in TRANSIENT_FAILURES
        ]
        return {
            "Comment": f"Batch job {props.name}: one Batch Transform run and its summary",
            "StartAt": "Prepare",
            "States": {
                "Prepare": {
                    "Type": "Pass",
                    "Parameters": {"attempt": 0, "run_id.$": "States.Hash($$.Execution.Id, 'MD5')"},
                    "ResultPath": "$.run",
                    "Next": "Name",
                },
                "Name": {
                    "Type": "Pass",
                    "Parameters": {
                        "attempt.$": "$.run.attempt",
                        "run_id.$": "$.run.run_id",
                        "job_name.$": _format(f"{props.name}-{{}}-{{}}", run_from_state),
                        "output_path.$": _format(run_folder, run_from_state),
                    },
                    "ResultPath": "$.run",
                    "Next": "Transform",
                },
                "Transform": {
                    "Type": "Task",
                    "Resource": f"arn:{Aws.PARTITION}:states:::sagemaker:createTransformJob.sync",
                    "Parameters": {
                        "TransformJobName.$": "$.run.job_name",
                        "ModelName": self.model.attr_model_name,
                        "BatchStrategy": "MultiRecord",
                        "MaxConcurrentTransforms": props.concurrency,
                        "MaxPayloadInMB": props.max_payload_mb,
                        "ModelClientConfig": {
                            "InvocationsMaxRetries": props.invocations_max_retries,
                            "InvocationsTimeoutInSeconds": props.invocations_timeout_s,
                        },
                        "TransformInput": {
                            "DataSource": {
                                "S3DataSource": {
                                    "S3DataType": "S3Prefix",
                                    "S3Uri": f"s3://{in_bucket}/{in_key}",
                                }
                            },
                            "ContentType": JSON_LINES,
                            "SplitType": "Line",
                            "CompressionType": "None",
                        },
                        "TransformOutput": {
                            "S3OutputPath.$": "$.run.output_path",
                            "Accept": JSON_LINES,
                            "AssembleWith": "Line",
                        },
                        "TransformResources": {
                            "InstanceType": props.instance_type,
                            "InstanceCount": props.instance_count,
                        },
                    },
                    "TimeoutSeconds": int(props.max_run_hours * 3600),
                    "ResultPath": "$.job",
                    "Retry": [
                        {
                            # The CreateTransformJob call itself (throttling, internal
                            # errors): nothing was created, the same name is free.
                            "ErrorEquals": ["SageMaker.AmazonSageMakerException"],
                            "IntervalSeconds": 10,
                            "BackoffRate": 2,
                            "MaxAttempts": 3,
                        }
                    ],
                    "Catch": [
                        {
                            "ErrorEquals": ["States.Timeout"],
                            "ResultPath": "$.failure",
                            "Next": "StopLate",
                        },
                        {
                            "ErrorEquals": ["States.ALL"],
                            "ResultPath": "$.failure",
                            "Next": "Transient",
                        },
                    ],
                    "Next": "Summarize",
                },
                "Transient": {
                    "Type": "Choice",
                    "Choices": [
                        {
                            "And": [
                                {
                                    "Variable": "$.run.attempt",
                                    "NumericLessThan": props.max_attempts - 1,
                                },
                                {"Variable": "$.failure.Cause", "IsPresent": True},
                                {"Or": transient},
                            ],
                            "Next": "Backoff",
                        }
                    ],
                    "Default": "Failed",
                },
                "Backoff": {"Type": "Wait", "Seconds": RETRY_WAIT_S, "Next": "NextAttempt"},
                "NextAttempt": {
                    "Type": "Pass",
                    "Parameters": {
                        "attempt.$": "States.MathAdd($.run.attempt, 1)",
                        "run_id.$": "$.run.run_id",
                    },
                    "ResultPath": "$.run",
                    "Next": "Name",
                },
                "StopLate": {
                    "Type": "Task",
                    "Resource": f"arn:{Aws.PARTITION}:states:::aws-sdk:sagemaker:stopTransformJob",
                    "Parameters": {"TransformJobName.$": "$.run.job_name"},
                    "ResultPath": None,
                    "Catch": [
                        {"ErrorEquals": ["States.ALL"], "ResultPath": None, "Next": "RunLate"}
                    ],
                    "Next": "RunLate",
                },
                "RunLate": {
                    "Type": "Fail",
                    "Error": "RunLate",
                    "Cause": f"the run took longer than max_run_hours ({props.max_run_hours:g} h); "
                    "its transform job was stopped",
                },
                "Failed": {
                    "Type": "Fail",
                    "ErrorPath": "$.failure.Error",
                    "CausePath": "$.failure.Cause",
                },
                "Summarize": {
                    "Type": "Task",
                    "Resource": f"arn:{Aws.PARTITION}:states:::lambda:invoke",
                    "Parameters": {
                        "FunctionName": self.summary_function.function_arn,
                        "Payload": {"job.$": "$.job"},
                    },
                    "ResultSelector": {"summary.$": "$.Payload"},
                    "OutputPath": "$.summary",
                    "Retry": [
                        {
                            "ErrorEquals": [
                                "Lambda.ServiceException",
                                "Lambda.TooManyRequestsException",
                                "Lambda.SdkClientException",
                            ],
                            "IntervalSeconds": 5,
                            "BackoffRate": 2,
                            "MaxAttempts": 3,
                        }
                    ],
                    "End": True,
                },
            },
        }

    def _state_machine(self) -> sfn.StateMachine:
        props = self.props
        log_group = logs.LogGroup(
            self,
            "RunLogs",
            retention=logs.RetentionDays.THREE_MONTHS,
            removal_policy=RemovalPolicy.DESTROY,
        )
        role = RoutingRole(self, "RunRole", assumed_by=iam.ServicePrincipal("states.amazonaws.com"))
        # What aws-cdk-lib adds for the execution logs and the X-Ray traces.
        role.route(
            within_actions(_LOG_DELIVERY_AND_TRACING),
            policy="LogDeliveryAndTracing",
            findings={
                "AwsSolutions-IAM5[Resource::*]": (
                    "Step Functions log delivery and X-Ray trace segments have no resource types"
                )
            },
        )
        machine = sfn.StateMachine(
            self,
            "Run",
            role=role,
            definition_body=sfn.DefinitionBody.from_string(
                Stack.of(self).to_json_string(self.definition())
            ),
            comment=f"Batch job {props.name}",
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL),
            tracing_enabled=True,
        )
        account = f"{Aws.REGION}:{Aws.ACCOUNT_ID}"
        jobs = f"arn:{Aws.PARTITION}:sagemaker:{account}:transform-job/{props.run_pattern}"
        machine.add_to_role_policy(
            iam.PolicyStatement(
                actions=[
                    "sagemaker:CreateTransformJob",
                    "sagemaker:DescribeTransformJob",
                    "sagemaker:StopTransformJob",
                ],
                resources=[jobs],
            )
        )
        machine.add_to_role_policy(
            iam.PolicyStatement(
                actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"],
                resources=[f"arn:{Aws.PARTITION}:events:{account}:rule/{SYNC_RULE}"],
            )
        )
        machine.add_to_role_policy(
            iam.PolicyStatement(
                actions=["lambda:InvokeFunction"], resources=[self.summary_function.function_arn]
            )
        )
        return machine

    # -- schedule and alarms --------------------------------------------------------------------

    def _schedule(self) -> scheduler.Schedule:
        self.schedule_group = scheduler.ScheduleGroup(self, "ScheduleGroup")
        return scheduler.Schedule(
            self,
            "Schedule",
            description=f"Starts batch job {self.props.name}",
            schedule=scheduler.ScheduleExpression.expression(self.props.schedule or ""),
            schedule_group=self.schedule_group,
            target=scheduler_targets.StepFunctionsStartExecution(
                self.state_machine,
                input=scheduler.ScheduleTargetInput.from_object({}),
                retry_attempts=3,
            ),
        )

    def _alarms(self) -> dict[str, cloudwatch.Alarm]:
        props = self.props
        five_minutes = Duration.minutes(5)
        machine = self.state_machine
        alarms = {
            "Failed": cloudwatch.Alarm(
                self,
                "FailedAlarm",
                alarm_description=f"Batch job {props.name}: a run failed, was aborted or was "
                "stopped for taking too long",
                metric=cloudwatch.MathExpression(
                    expression="failed + aborted + timedOut",
                    using_metrics={
                        "failed": machine.metric_failed(period=five_minutes, statistic="Sum"),
                        "aborted": machine.metric_aborted(period=five_minutes, statistic="Sum"),
                        "timedOut": machine.metric_timed_out(period=five_minutes, statistic="Sum"),
                    },
                    period=five_minutes,
                ),
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
            "Late": cloudwatch.Alarm(
                self,
                "LateAlarm",
                alarm_description=f"Batch job {props.name}: a run took longer than "
                f"{props.late_after_hours:g} h",
                metric=machine.metric_time(period=five_minutes, statistic="Maximum"),
                threshold=props.late_after_hours * 3600 * 1000,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
        }
        if self.schedule is not None:
            alarms["NotStarted"] = cloudwatch.Alarm(
                self,
                "NotStartedAlarm",
                alarm_description=f"Batch job {props.name}: the schedule could not start a run",
                metric=self.schedule_group.metric_target_errors(
                    period=five_minutes, statistic="Sum"
                ),
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
        return alarms


def _nag_object(bucket: str, key: str) -> str:
    """An object ARN as cdk-nag prints it (the partition as ``<AWS::Partition>``)."""
    return f"arn:<AWS::Partition>:s3:::{bucket}/{key}"


def _format(template: str, paths: list[str]) -> str:
    """``States.Format`` of a literal template (its quotes escaped) and state paths."""
    escaped = template.replace("\\", "\\\\").replace("'", "\\'")
    return f"States.Format('{escaped}', {', '.join(paths)})"


__all__ = ["NeuronBatchInference", "NeuronBatchInferenceProps"]


_LOG_DELIVERY_AND_TRACING = frozenset(
    {
        "logs:CreateLogDelivery",
        "logs:GetLogDelivery",
        "logs:UpdateLogDelivery",
        "logs:DeleteLogDelivery",
        "logs:ListLogDeliveries",
        "logs:PutResourcePolicy",
        "logs:DescribeResourcePolicies",
        "logs:DescribeLogGroups",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "xray:GetSamplingRules",
        "xray:GetSamplingTargets",
    }
)
