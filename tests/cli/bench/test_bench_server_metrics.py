"""--server-metrics: the servers' own Prometheus figures, scraped while a step runs."""

from __future__ import annotations

import asyncio

import pytest

from inferfleet.cli.bench.clients import client_for
from inferfleet.cli.bench.clients.base import ClientSettings
from inferfleet.cli.bench.config import Distribution
from inferfleet.cli.bench.engine import StepPlan, StopFlag, Tally, run_step
from inferfleet.cli.bench.metrics import Thresholds, measure_step
from inferfleet.cli.bench.server_metrics import parse_page, server_figures
from inferfleet.cli.bench.workload import Workload
from inferfleet.cli.local.fleet import LocalFleet
from inferfleet.cli.sizing.profile import ServerProfile


def test_the_emulators_queue_and_batch_are_scraped_during_a_step() -> None:
    # 2 emulated servers of 2 slots each, 6 closed-loop users: 4 in the batches, 2 queued.
    profile = ServerProfile(slots=2)
    with LocalFleet(servers=2, profile=profile) as fleet:
        urls = tuple(f"{url}/metrics" for url in fleet.instance_urls)
        plan = StepPlan(users=6, duration=3.2, warmup=0.5, metrics_urls=urls)
        workload = Workload(seed=1, prompt_tokens=Distribution.parse("16"),
                            output_tokens=Distribution.parse("40"))  # fmt: skip

        async def go():  # type: ignore[no-untyped-def]
            async with client_for("openai", ClientSettings(target=fleet.url)) as client:
                return await run_step(plan, client, workload, StopFlag(), Tally())

        outcome = asyncio.run(go())
    window = (outcome.measured_from, outcome.measured_from + 3.2)
    step = measure_step(outcome, open_loop=False, thresholds=Thresholds(1000, 1000),
                        window=window).result  # fmt: skip
    running, queued = step.server_metrics["running_requests"], step.server_metrics["queue_depth"]
    assert running.samples >= 2 and running.series == ["inferfleet_emulator_active_sequences"]
    # The servers count what the client has in flight: batch plus queue.
    assert running.max <= 4 and 3.0 <= running.mean <= 4.0
    assert step.achieved_concurrency is not None
    assert running.mean + queued.mean == pytest.approx(step.achieved_concurrency, abs=0.8)
    assert "kv_cache_usage" not in step.server_metrics  # the emulator exports none


def test_vllm_and_triton_pages_give_their_figures() -> None:
    vllm = parse_page(
        "# TYPE vllm:num_requests_waiting gauge\n"
        'vllm:num_requests_waiting{model_name="m"} 3.0\n'
        'vllm:num_requests_running{model_name="m"} 8\n'
        'vllm:kv_cache_usage_perc{model_name="m"} 0.25\n'
        'vllm:prompt_tokens_total{model_name="m"} 1e6\n'
    )
    assert vllm == {"vllm:num_requests_waiting": 3.0, "vllm:num_requests_running": 8.0,
                    "vllm:kv_cache_usage_perc": 0.25}  # fmt: skip
    triton = [
        (1.0, parse_page('nv_inference_count{model="llm",version="1"} 100\n'
                         'nv_inference_exec_count{model="llm",version="1"} 50\n'
                         'nv_inference_pending_request_count{model="llm"} 2\n')),
        (2.0, parse_page('nv_inference_count{model="llm",version="1"} 400\n'
                         'nv_inference_exec_count{model="llm",version="1"} 100\n'
                         'nv_inference_pending_request_count{model="llm"} 6\n')),
    ]  # fmt: skip
    figures = server_figures([(1.5, vllm), *triton], (0.0, 3.0))
    assert figures["batch_size"].mean == 6.0  # 300 inferences in 50 executions
    assert figures["queue_depth"].mean == pytest.approx((3 + 2 + 6) / 3, abs=1e-3)
    assert figures["kv_cache_usage"].max == 0.25
    assert server_figures(triton, (5.0, 6.0)) == {}
