"""The intent model repository under a real Triton server, with its dynamic batcher."""

import json
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from containers_support import INTENT_CONTEXT, INTENT_LABELS, run_bench
from intent_classifier.runtime import IntentRuntime
from triton_http import generate, get_status

from inferfleet.containers.image_tree import image_tree
from inferfleet.containers.local_triton import LocalTriton

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def triton(
    tmp_path_factory: pytest.TempPathFactory, intent_compiled_dir: Path
) -> Iterator[LocalTriton]:
    workdir = tmp_path_factory.mktemp("intent-triton")
    context = image_tree(INTENT_CONTEXT, workdir)
    environment = {
        "INFERFLEET_INTENT_MODEL_DIR": str(intent_compiled_dir),
        "INFERFLEET_INSTANCE_ID": "inf2-intent-0",
        "OMP_NUM_THREADS": "1",
    }
    with LocalTriton(context / "model_repository", workdir, environment) as server:
        yield server


def _statistics(triton: LocalTriton) -> dict:
    with urllib.request.urlopen(f"{triton.url}/v2/models/intent/stats", timeout=10) as reply:
        return json.loads(reply.read())["model_stats"][0]


def test_a_query_gets_a_label_scores_and_the_instance(
    triton: LocalTriton, intent_compiled_dir: Path
) -> None:
    assert get_status(f"{triton.url}/v2/models/intent/ready") == 200
    answer = generate(triton.url, "intent", {"inputs": "where is my order"})
    direct = IntentRuntime(intent_compiled_dir).classify(["where is my order"])[0]
    assert answer["label"] == direct.label
    assert answer["label"] in INTENT_LABELS
    assert answer["scores"] == pytest.approx(direct.scores, abs=1e-5)
    assert answer["instance_id"] == "inf2-intent-0"


def _settled_statistics(triton: LocalTriton, expected_count: int) -> dict:
    """Triton updates its statistics just after the reply; poll until they catch up."""
    deadline = time.monotonic() + 5
    statistics = _statistics(triton)
    while statistics["inference_count"] < expected_count and time.monotonic() < deadline:
        time.sleep(0.05)
        statistics = _statistics(triton)
    return statistics


def test_concurrent_queries_are_batched_dynamically(triton: LocalTriton) -> None:
    before = _statistics(triton)
    queries = [f"blue running shoes size {size}" for size in range(64)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(
            pool.map(lambda query: generate(triton.url, "intent", {"inputs": query}), queries)
        )
    after = _settled_statistics(triton, before["inference_count"] + len(queries))
    assert all(answer["label"] in INTENT_LABELS for answer in answers)
    requests = after["inference_count"] - before["inference_count"]
    executions = after["execution_count"] - before["execution_count"]
    assert requests == 64
    # Sixteen clients at once: the batcher must have merged some of them.
    assert executions < requests


def test_inferfleet_bench_measures_the_classifier(triton: LocalTriton, tmp_path: Path) -> None:
    results = run_bench(
        tmp_path / "bench",
        "--api",
        "classify",
        "--target",
        f"{triton.url}/v2/models/intent/generate",
        "--users",
        "4",
        "--requests",
        "40",
        "--warmup",
        "0.5",
        "--prompt-tokens",
        "12",
    )
    step = results["steps"][0]
    assert (step["succeeded"], step["errors"]) == (40, 0)
    assert step["latency"]["e2e_ms"]["p50"] > 0
