"""The LLM model repository under a real Triton server (from the nvidia-pytriton wheel)."""

import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from containers_support import LLM_CONTEXT, run_bench
from triton_http import generate, generate_stream, get_status

from inferfleet.containers.image_tree import image_tree
from inferfleet.containers.local_triton import LocalTriton

pytestmark = pytest.mark.slow

INSTANCE_ID = "inf2-test-0"
INFERFLEET = str(Path(sys.executable).with_name("inferfleet"))


@pytest.fixture(scope="module")
def triton(tmp_path_factory: pytest.TempPathFactory, tiny_lm_dir: Path) -> Iterator[LocalTriton]:
    workdir = tmp_path_factory.mktemp("llm-triton")
    context = image_tree(LLM_CONTEXT, workdir)
    environment = {
        "INFERFLEET_ENGINE": "cpu",
        "INFERFLEET_MODEL": str(tiny_lm_dir),
        "INFERFLEET_INSTANCE_ID": INSTANCE_ID,
        "INFERFLEET_MAX_SEQ_LEN": "256",
        "INFERFLEET_MAX_NUM_SEQS": "4",
        "OMP_NUM_THREADS": "1",
    }
    with LocalTriton(context / "model_repository", workdir, environment) as server:
        yield server


def test_server_and_model_report_ready(triton: LocalTriton) -> None:
    assert get_status(f"{triton.url}/v2/health/ready") == 200
    assert get_status(f"{triton.url}/v2/models/llm/ready") == 200
    assert get_status(f"{triton.url}/v2/models/absent/ready") != 200


def test_tokens_stream_one_event_each_with_the_instance_id(triton: LocalTriton) -> None:
    payload = {"text_input": "what is a good tent", "max_tokens": 16, "stream": True}
    streamed = generate_stream(triton.url, "llm", payload)
    assert len(streamed.events) == 16
    assert {event["instance_id"] for event in streamed.events} == {INSTANCE_ID}
    whole = generate(triton.url, "llm", {**payload, "stream": False})
    assert whole["instance_id"] == INSTANCE_ID
    assert streamed.text == whole["text_output"]
    assert streamed.text.strip()


def test_concurrent_streams_all_complete(triton: LocalTriton) -> None:
    prompts = [f"question number {index}" for index in range(4)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(
            pool.map(
                lambda prompt: generate_stream(
                    triton.url, "llm", {"text_input": prompt, "max_tokens": 8, "stream": True}
                ),
                prompts,
            )
        )
    assert [len(result.events) for result in results] == [8, 8, 8, 8]
    alone = generate_stream(
        triton.url, "llm", {"text_input": prompts[0], "max_tokens": 8, "stream": True}
    )
    assert results[0].text == alone.text


def test_invalid_max_tokens_comes_back_as_an_error(triton: LocalTriton) -> None:
    with pytest.raises(urllib.error.HTTPError) as rejected:
        generate_stream(triton.url, "llm", {"text_input": "hi", "max_tokens": 0, "stream": True})
    assert rejected.value.code == 400
    assert "max_tokens: must be at least 1" in rejected.value.read().decode()


def _metric(text: str, name: str) -> float:
    match = re.search(rf'^{name}\{{[^}}]*instance_id="{INSTANCE_ID}"[^}}]*\}} (\S+)$', text, re.M)
    assert match, f"{name} missing from metrics"
    return float(match.group(1))


def test_metrics_expose_time_to_first_token_and_inter_token_latency(triton: LocalTriton) -> None:
    def scrape() -> str:
        with urllib.request.urlopen(triton.metrics_url, timeout=10) as reply:
            return reply.read().decode()

    before = scrape()
    first_before = _metric(before, "inferfleet_time_to_first_token_seconds_count")
    gaps_before = _metric(before, "inferfleet_inter_token_latency_seconds_count")
    for _ in range(3):
        generate_stream(triton.url, "llm", {"text_input": "x", "max_tokens": 5, "stream": True})
    after = scrape()
    assert _metric(after, "inferfleet_time_to_first_token_seconds_count") - first_before == 3
    assert _metric(after, "inferfleet_inter_token_latency_seconds_count") - gaps_before == 12
    assert "nv_inference_request_success" in after


def test_inferfleet_bench_streams_through_triton(triton: LocalTriton, tmp_path: Path) -> None:
    results = run_bench(
        tmp_path / "bench",
        "--api",
        "triton",
        "--target",
        triton.url,
        "--model",
        "llm",
        "--users",
        "2",
        "--requests",
        "12",
        "--warmup",
        "0.5",
        "--prompt-tokens",
        "16",
        "--output-tokens",
        "8",
    )
    step = results["steps"][0]
    assert (step["succeeded"], step["errors"]) == (12, 0)
    # One event per token: the bench counts exactly the tokens it asked for.
    assert step["output_tokens"] == 12 * 8
    assert step["output_length_mismatches"] == 0
    assert 0 < step["latency"]["ttft_ms"]["p50"] <= step["latency"]["e2e_ms"]["p50"]
    # Triton sets no per-response header: the instance id comes from each streamed event.
    assert step["requests_without_instance"] == 0
    [row] = step["per_instance"]
    assert (row["instance"], row["requests"]) == (INSTANCE_ID, 12)


def test_inferfleet_bench_streams_through_triton_grpc(triton: LocalTriton, tmp_path: Path) -> None:
    results = run_bench(
        tmp_path / "bench",
        "--api",
        "triton-grpc",
        "--target",
        triton.grpc_url,
        "--users",
        "2",
        "--requests",
        "12",
        "--warmup",
        "0.5",
        "--prompt-tokens",
        "16",
        "--output-tokens",
        "8",
    )
    assert results["target"]["api"] == "triton-grpc"
    # No --model: the one ready model of the repository, found over gRPC.
    assert results["target"]["model"] == "llm"
    step = results["steps"][0]
    assert (step["succeeded"], step["errors"]) == (12, 0)
    # One ModelStreamInfer response per token, and each stream ends with its answer.
    assert step["output_tokens"] == 12 * 8
    assert step["output_length_mismatches"] == 0
    latency = step["latency"]
    assert 0 < latency["ttft_ms"]["p50"] <= latency["e2e_ms"]["p50"]
    assert latency["itl_ms"]["count"] == 12 * 7
    # The instance id comes from the instance_id output of every response.
    assert step["requests_without_instance"] == 0
    [row] = step["per_instance"]
    assert (row["instance"], row["requests"]) == (INSTANCE_ID, 12)


def test_bench_over_grpc_at_triton_http_port_says_what_to_fix(
    triton: LocalTriton, tmp_path: Path
) -> None:
    completed = subprocess.run(
        [INFERFLEET, "bench", "--api", "triton-grpc", "--target", triton.url, "--users", "1",
         "--requests", "1", "--out", str(tmp_path / "bench")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert "--target: cannot read the model repository" in completed.stderr
    assert "Traceback" not in completed.stderr
