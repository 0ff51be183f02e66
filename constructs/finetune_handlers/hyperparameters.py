"""What a user's manifest may set as hyperparameters of their training job.

The queue sets the job's identity, the base model and a batch's task list. SageMaker's own
``sagemaker_*`` names would run code the user chose (script mode runs ``sagemaker_program``
from ``sagemaker_submit_directory``), so they are the queue's too. The sizes that drive a
job's cost are bounded by the queue's :class:`~.settings.TrainingLimits`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from .settings import TrainingLimits

# The S3 URI of a batch's task list, read by the fine-tune container.
TASKS_MANIFEST_HYPERPARAMETER = "inferfleet_tasks_manifest"
# What the container packs: "adapter" (LoRA weights alone, for adapter inference components);
# without it, a one-model Triton repository for a multi-model endpoint.
ARTIFACT_HYPERPARAMETER = "inferfleet_artifact"
ADAPTER_ARTIFACT = "adapter"
# Set by the launcher, so the container can label what it trains.
IDENTITY_HYPERPARAMETERS = ("user_id", "model_id")
RESERVED_NAMES = frozenset({"base_model", *IDENTITY_HYPERPARAMETERS})
RESERVED_PREFIXES = ("sagemaker_", "inferfleet_")
MAX_HYPERPARAMETERS = 100
MAX_VALUE_CHARS = 2500
_KEY_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,255}")


class HyperparameterError(ValueError):
    pass


def is_reserved(key: str) -> bool:
    lowered = key.lower()
    return lowered in RESERVED_NAMES or lowered.startswith(RESERVED_PREFIXES)


def bounds(limits: TrainingLimits) -> dict[str, tuple[int, int]]:
    return {
        "epochs": (1, limits.max_epochs),
        "batch_size": (1, limits.max_batch_size),
        "max_seq_len": (8, limits.max_seq_len),
    }


def _as_text(value: object) -> str | None:
    if isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, str | int | float):
        return str(value)
    return None


def check_hyperparameters(values: object, limits: TrainingLimits) -> dict[str, str]:
    """The hyperparameters as SageMaker takes them (strings); every problem in one error."""
    if not isinstance(values, Mapping) or len(values) > MAX_HYPERPARAMETERS:
        raise HyperparameterError(
            f"hyperparameters must be an object of at most {MAX_HYPERPARAMETERS} entries"
        )
    problems, checked = [], {}
    reserved = sorted(key for key in values if isinstance(key, str) and is_reserved(key))
    if reserved:
        problems.append(
            f"hyperparameters {', '.join(reserved)} are set by the queue; leave them out"
        )
    limited = bounds(limits)
    for key, value in values.items():
        if not isinstance(key, str) or not _KEY_PATTERN.fullmatch(key):
            problems.append(
                f"hyperparameter {key!r}: names are 1-256 letters, digits, '_', '.' or '-'"
            )
            continue
        if key in reserved:
            continue
        text = _as_text(value)
        if text is None or len(text) > MAX_VALUE_CHARS:
            problems.append(
                f"hyperparameter {key}: values are strings or numbers of at most "
                f"{MAX_VALUE_CHARS} characters"
            )
            continue
        if key in limited:
            low, high = limited[key]
            if not re.fullmatch(r"[0-9]{1,9}", text) or not low <= int(text) <= high:
                problems.append(
                    f"hyperparameter {key}={text}: this queue allows whole numbers {low}..{high}"
                )
                continue
        checked[key] = text
    if problems:
        raise HyperparameterError("; ".join(problems))
    return checked
