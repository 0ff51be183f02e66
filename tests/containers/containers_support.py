"""Paths of the build contexts and helpers shared by the container tests."""

import shutil
import sys
from pathlib import Path

CONTAINERS = Path(__file__).resolve().parents[2] / "containers"
LLM_CONTEXT = CONTAINERS / "llm-neuron"
INTENT_CONTEXT = CONTAINERS / "intent-neuron"
FINETUNE_CONTEXT = CONTAINERS / "finetune"
INTENT_LABELS = ["search", "product_question", "order_status", "chitchat"]


def put_contexts_on_path() -> None:
    """Import image code the way the images do: from the root of each build context."""
    for context in (LLM_CONTEXT, INTENT_CONTEXT, FINETUNE_CONTEXT):
        if str(context) not in sys.path:
            sys.path.insert(0, str(context))


def copy_context(context: Path, parent: Path) -> Path:
    """Copy a build context to where a test can start a server from it, as the image would."""
    target = parent / context.name
    shutil.copytree(context, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target
