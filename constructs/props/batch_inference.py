"""Props of :class:`~inferfleet.constructs.neuron_batch_inference.NeuronBatchInference`, CDK-free.

A periodic SageMaker Batch Transform job on Inferentia2 or Trainium: which model, which
instances, when, and the S3 prefixes it reads and writes. The request shaping follows the
pair-neuron image: input split by line, multi-record mini-batches, and as many concurrent
requests per instance as it has NeuronCores (one model copy each), read from the instance
catalog.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from inferfleet.constructs.neuron_instances import NEURON_INSTANCE_TYPES, NeuronInstanceType
from inferfleet.constructs.props.problems import PropsProblem, in_range

SAGEMAKER_PREFIX = "ml."
# Batch Transform offers these Neuron families (ml.inf2.*, ml.trn1.*); Processing offers
# none, and trn1n / trn2 are not transform instance types.
BATCH_TRANSFORM_FAMILIES = ("inf2", "trn1")
BATCH_TRANSFORM_INSTANCE_TYPES: dict[str, NeuronInstanceType] = {
    f"{SAGEMAKER_PREFIX}{name}": instance
    for name, instance in NEURON_INSTANCE_TYPES.items()
    if name.split(".")[0] in BATCH_TRANSFORM_FAMILIES
}
# Transform job names allow 63 characters: the prefix, '-', a 32-character run id and
# '-' with the attempt (one digit).
TRANSFORM_JOB_NAME_LIMIT = 63
RUN_ID_LENGTH = 32
MAX_ATTEMPTS_LIMIT = 9
MAX_NAME_LENGTH = TRANSFORM_JOB_NAME_LIMIT - 1 - RUN_ID_LENGTH - 2

_NAME = re.compile(r"^[a-z][a-z0-9-]*[a-z0-9]$")
_S3_URI = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(?P<key>[^'{}\\\\]*)$")
_RATE = re.compile(r"^rate\((?P<value>\d+) (?P<unit>minutes?|hours?|days?)\)$")
_CRON = re.compile(r"^cron\((?P<fields>[^()]*)\)$")
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*?,/#\-]+$")
_CRON_NAMES = ("minutes", "hours", "day-of-month", "month", "day-of-week", "year")


def split_s3_uri(uri: str) -> tuple[str, str] | None:
    """``(bucket, key)`` of an ``s3://`` URI; None when it is not one."""
    match = _S3_URI.match(uri)
    return (match["bucket"], match["key"]) if match else None


def schedule_problem(expression: str) -> str | None:
    """Why ``expression`` is not an EventBridge Scheduler ``rate(...)`` or ``cron(...)``."""
    rate = _RATE.match(expression)
    if rate:
        value, unit = int(rate["value"]), rate["unit"]
        if value < 1:
            return f"{expression!r}: the rate must be at least 1"
        if (value == 1) != (not unit.endswith("s")):
            fixed = unit.rstrip("s") if value == 1 else f"{unit}s"
            return f"{expression!r}: say rate({value} {fixed}) (singular only for 1)"
        return None
    cron = _CRON.match(expression)
    if cron:
        fields = cron["fields"].split()
        if len(fields) != len(_CRON_NAMES):
            return (
                f"{expression!r}: a cron expression has 6 fields ({' '.join(_CRON_NAMES)}), "
                f"got {len(fields)}; e.g. cron(0 3 ? * MON *) for Mondays 03:00 UTC"
            )
        for name, value in zip(_CRON_NAMES, fields, strict=True):
            if not _CRON_FIELD.match(value):
                return f"{expression!r}: the {name} field {value!r} is not a cron field"
        if (fields[2] == "?") == (fields[4] == "?"):
            return (
                f"{expression!r}: exactly one of day-of-month and day-of-week must be '?', "
                "e.g. cron(0 3 ? * MON *)"
            )
        return None
    return (
        f"{expression!r} does not parse; use rate(N minutes|hours|days) or a 6-field "
        "cron(...) expression, e.g. rate(7 days) or cron(0 3 ? * MON *)"
    )


@dataclass(frozen=True)
class NeuronBatchInferenceProps:
    """A Batch Transform job on Neuron instances, started by a state machine on a schedule.

    :param name: prefix of the transform jobs' names (and of the state machine's and the
        schedule's); lowercase letters, digits and hyphens, up to 28 characters.
    :param model_artifact: S3 URI of the model's ``.tar.gz`` (an encoder folder, or graphs
        traced with ``pair_scorer.compile``).
    :param input_prefix: S3 prefix (``s3://bucket/prefix/``) of the JSON Lines input files.
    :param output_prefix: S3 prefix the runs write to; each run writes
        ``<output_prefix><transform job name>/<input key>.out`` and a summary object
        ``_SUMMARY.json`` next to them. Must not overlap the input prefix.
    :param instance_type: a Batch Transform Neuron type. Default: ``ml.inf2.xlarge``.
    :param instance_count: instances per run (files are shared out by key). Default: 1.
    :param schedule: ``rate(...)`` or ``cron(...)`` (EventBridge Scheduler, UTC). Default:
        none, the job runs only when started (``inferfleet batch run``).
    :param image_uri: the serving image. Default: the built-in ``pair-neuron`` image.
    :param environment: extra container environment. Default: none.
    :param max_concurrent_transforms: requests in flight per instance. Default: the
        instance's NeuronCores (one per model copy).
    :param max_payload_mb: mini-batch size limit (MaxPayloadInMB). Default: 6.
    :param invocations_max_retries: retries of a failed mini-batch request. Default: 3.
    :param invocations_timeout_s: time a mini-batch may take. Default: 600.
    :param max_attempts: runs of the transform job when it fails for a transient reason
        (capacity, internal error). Default: 3.
    :param late_after_hours: a run taking longer than this raises the Late alarm.
        Default: 6.
    :param max_run_hours: a run still going after this is stopped and failed. Default: 24.
    :param price_per_instance_hour: USD, for the summary's cost estimate. Default: none,
        the summary gives instance-hours only.
    :param powertools_layer_version: public Powertools for AWS Lambda (Python) v3 layer of
        the summary function. Default: 27.
    """

    name: str
    model_artifact: str
    input_prefix: str
    output_prefix: str
    instance_type: str = "ml.inf2.xlarge"
    instance_count: int = 1
    schedule: str | None = None
    image_uri: str | None = None
    environment: Mapping[str, str] = field(default_factory=dict)
    max_concurrent_transforms: int | None = None
    max_payload_mb: int = 6
    invocations_max_retries: int = 3
    invocations_timeout_s: int = 600
    max_attempts: int = 3
    late_after_hours: float = 6
    max_run_hours: float = 24
    price_per_instance_hour: float | None = None
    powertools_layer_version: int = 27

    @property
    def run_pattern(self) -> str:
        """An IAM pattern of this job's transform job names, and of no other job's: the name,
        the run id and the attempt, one ``?`` per character (a ``*`` after ``shop-dupes-``
        would also match a job named ``dupes-weekly``)."""
        return f"{self.name}-{'?' * RUN_ID_LENGTH}-?"

    @property
    def instance(self) -> NeuronInstanceType:
        return BATCH_TRANSFORM_INSTANCE_TYPES[self.instance_type]

    @property
    def concurrency(self) -> int:
        """Requests in flight per instance: one per NeuronCore unless given."""
        return self.max_concurrent_transforms or self.instance.neuron_cores

    @property
    def input_location(self) -> tuple[str, str]:
        return split_s3_uri(self.input_prefix)  # type: ignore[return-value]

    @property
    def output_location(self) -> tuple[str, str]:
        return split_s3_uri(self.output_prefix)  # type: ignore[return-value]

    @property
    def model_location(self) -> tuple[str, str]:
        return split_s3_uri(self.model_artifact)  # type: ignore[return-value]

    def problems(self) -> list[PropsProblem]:
        found = self._name_problems()
        found += self._instance_problems()
        found += self._location_problems()
        if self.schedule is not None:
            why = schedule_problem(self.schedule)
            if why:
                found.append(PropsProblem("schedule", why))
        found += in_range("instance_count", self.instance_count, 1, 100)
        found += in_range("max_payload_mb", self.max_payload_mb, 1, 100, "MB")
        found += in_range("invocations_max_retries", self.invocations_max_retries, 0, 3)
        found += in_range("invocations_timeout_s", self.invocations_timeout_s, 1, 3600, "s")
        found += in_range("max_attempts", self.max_attempts, 1, MAX_ATTEMPTS_LIMIT)
        found += in_range("max_run_hours", self.max_run_hours, 1, 24 * 7, "h")
        if not 0 < self.late_after_hours <= self.max_run_hours:
            found.append(
                PropsProblem(
                    "late_after_hours",
                    f"{self.late_after_hours:g} h must be above 0 and at most max_run_hours "
                    f"({self.max_run_hours:g} h)",
                )
            )
        if self.price_per_instance_hour is not None and self.price_per_instance_hour <= 0:
            found.append(PropsProblem("price_per_instance_hour", "must be above 0 USD"))
        return found

    def _name_problems(self) -> list[PropsProblem]:
        if not _NAME.match(self.name):
            return [
                PropsProblem(
                    "name",
                    f"{self.name!r}: use lowercase letters, digits and hyphens, starting with "
                    "a letter",
                )
            ]
        if len(self.name) > MAX_NAME_LENGTH:
            return [
                PropsProblem(
                    "name",
                    f"{self.name!r} is {len(self.name)} characters; transform job names built "
                    f"from it (name, a {RUN_ID_LENGTH}-character run id, the attempt) allow "
                    f"{MAX_NAME_LENGTH}; shorten it",
                )
            ]
        return []

    def _instance_problems(self) -> list[PropsProblem]:
        found = []
        if self.instance_type not in BATCH_TRANSFORM_INSTANCE_TYPES:
            known = ", ".join(BATCH_TRANSFORM_INSTANCE_TYPES)
            if f"{SAGEMAKER_PREFIX}{self.instance_type}" in BATCH_TRANSFORM_INSTANCE_TYPES:
                hint = f"SageMaker names it {SAGEMAKER_PREFIX}{self.instance_type}"
            else:
                hint = f"Batch Transform on Neuron offers {known}"
            found.append(
                PropsProblem(
                    "instance_type",
                    f"{self.instance_type!r} is not a Batch Transform Neuron instance type; {hint}",
                )
            )
        elif self.max_concurrent_transforms is not None:
            found += in_range(
                "max_concurrent_transforms",
                self.max_concurrent_transforms,
                1,
                self.instance.neuron_cores,
            )
        return found

    def _location_problems(self) -> list[PropsProblem]:
        found = []
        model = split_s3_uri(self.model_artifact)
        if model is None or not model[1].endswith(".tar.gz"):
            found.append(
                PropsProblem(
                    "model_artifact",
                    f"{self.model_artifact!r}: give the S3 URI of the model's .tar.gz, like "
                    "s3://my-bucket/models/pair-scorer/model.tar.gz",
                )
            )
        locations = {}
        for name in ("input_prefix", "output_prefix"):
            uri = getattr(self, name)
            location = split_s3_uri(uri)
            if location is None or (location[1] and not location[1].endswith("/")):
                found.append(
                    PropsProblem(
                        name,
                        f"{uri!r}: give an S3 prefix ending in '/', like s3://my-bucket/pairs/",
                    )
                )
            else:
                locations[name] = location
        if len(locations) == 2:
            (in_bucket, in_key), (out_bucket, out_key) = (
                locations["input_prefix"],
                locations["output_prefix"],
            )
            if in_bucket == out_bucket and out_key.startswith(in_key):
                found.append(
                    PropsProblem(
                        "output_prefix",
                        f"{self.output_prefix!r} is inside input_prefix {self.input_prefix!r}: "
                        "the next run would read the outputs as input; use a prefix outside it",
                    )
                )
            elif in_bucket == out_bucket and in_key.startswith(out_key):
                found.append(
                    PropsProblem(
                        "input_prefix",
                        f"{self.input_prefix!r} is inside output_prefix {self.output_prefix!r}: "
                        "runs would write among the inputs; use separate prefixes",
                    )
                )
        return found
