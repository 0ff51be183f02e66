"""Paths of the build contexts and helpers shared by the container tests."""

import json
import subprocess
import sys
from pathlib import Path

CONTAINERS = Path(__file__).resolve().parents[2] / "containers"
LLM_CONTEXT = CONTAINERS / "llm-neuron"
INTENT_CONTEXT = CONTAINERS / "intent-neuron"
FINETUNE_CONTEXT = CONTAINERS / "finetune"
PAIR_CONTEXT = CONTAINERS / "pair-neuron"
COMMON = CONTAINERS / "common"
INTENT_LABELS = ["search", "product_question", "order_status", "chitchat"]


def put_contexts_on_path() -> None:
    """Import image code the way the images do: from the root of each build context."""
    # In the images serving_env.py sits next to each image's packages (copied from common/).
    for context in (LLM_CONTEXT, INTENT_CONTEXT, FINETUNE_CONTEXT, PAIR_CONTEXT, COMMON):
        if str(context) not in sys.path:
            sys.path.insert(0, str(context))


def run_bench(out: Path, *arguments: str) -> dict:
    """Run the real ``inferfleet bench`` CLI with ``--out out``; return its results.json.

    The client's lag limits are relaxed: these tests check the servers' answers, and a
    busy 2-core box must not turn their steps invalid.
    """
    lenient = ("--max-loop-lag-ms", "1000", "--max-dispatch-lag-ms", "1000")
    command = [str(Path(sys.executable).parent / "inferfleet"), "bench", *arguments, *lenient]
    completed = subprocess.run(
        [*command, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return json.loads((out / "results.json").read_text())
