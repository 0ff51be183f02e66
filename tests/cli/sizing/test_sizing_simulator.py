"""The fleet simulator against hand-worked cases and a step-by-step reference of the emulator."""

from __future__ import annotations

from array import array
from collections import Counter

import numpy as np
import pytest
from step_oracle import close, gaps_ms, run_oracle, tokens_in

from inferfleet.cli.bench.engine import StepOutcome
from inferfleet.cli.bench.metrics import Thresholds, measure_step
from inferfleet.cli.bench.records import RequestRecord
from inferfleet.cli.sizing.figures import step_summary, weighted_distribution
from inferfleet.cli.sizing.profile import ServerProfile
from inferfleet.cli.sizing.simulator import Load, Simulation

PROFILE = ServerProfile(
    slots=4, prefill_base_s=0.01, prefill_per_token_s=0.001, decode_base_s=0.02,
    decode_per_sequence_s=0.005,
)  # fmt: skip


def one_replica(profile: ServerProfile = PROFILE, **kwargs: object) -> Simulation:
    return Simulation([profile], **kwargs)  # type: ignore[arg-type]


def test_a_lone_request_pays_its_prefill_then_one_decode_step_per_token() -> None:
    run = one_replica(network_s=0.001).run(
        Load(arrivals=np.array([0.5])), prompt_tokens=np.array([100]), output_tokens=np.array([5])
    )
    prefill, step = PROFILE.prefill_s(100), PROFILE.decode_step_s(1)
    assert run.first_token[0] - run.sent[0] == pytest.approx(prefill + 0.002)
    assert run.end[0] - run.sent[0] == pytest.approx(prefill + 4 * step + 0.002)
    assert run.itl_counts.sum() == 4
    assert np.allclose(run.itl_values_s, step)


def test_a_request_joins_at_the_next_step_boundary_and_stalls_the_batch() -> None:
    # Request 0 decodes alone in 25 ms steps; request 1 arrives 30 ms into them: it
    # waits for the boundary at 50 ms, its prefill stalls request 0 for 10 + 50 ms.
    start = PROFILE.prefill_s(0)
    run = one_replica().run(
        Load(arrivals=np.array([0.0, start + 0.030])),
        prompt_tokens=np.array([0, 50]),
        output_tokens=np.array([10, 3]),
    )
    second_prefill = PROFILE.prefill_s(50)
    boundary = start + 2 * PROFILE.decode_step_s(1)
    assert run.first_token[1] == pytest.approx(boundary + second_prefill)
    stalled = second_prefill + PROFILE.decode_step_s(2)
    assert stalled in [pytest.approx(value) for value in run.itl_values_s]


def test_static_batches_make_late_requests_wait_for_the_whole_batch() -> None:
    static = PROFILE.model_copy(update={"batching": "static", "slots": 2})
    run = one_replica(static).run(
        Load(arrivals=np.array([0.0, 0.001, 0.002])),
        prompt_tokens=np.array([10, 10, 10]),
        output_tokens=np.array([4, 2, 3]),
    )
    first_batch_end = static.prefill_s(10) + 3 * static.decode_step_s(1)
    second_prefill_end = first_batch_end + static.prefill_s(20)
    assert run.first_token[1] == pytest.approx(second_prefill_end)
    assert run.first_token[2] == pytest.approx(second_prefill_end)
    # The batch decodes at its full size until its longest sequence is done.
    assert run.end[1] == pytest.approx(second_prefill_end + static.decode_step_s(2))
    assert run.end[2] == pytest.approx(second_prefill_end + 2 * static.decode_step_s(2))


def test_least_outstanding_requests_takes_ties_in_turn_and_then_the_least_busy() -> None:
    sim = Simulation([PROFILE] * 3)
    run = sim.run(
        Load(arrivals=np.array([0.0, 0.0, 0.0, 0.5])),
        prompt_tokens=np.array([10, 10, 10, 10]),
        output_tokens=np.array([50, 1, 50, 50]),
    )
    assert run.replica.tolist()[:3] == [0, 1, 2]
    # Request 1 answered at once, so replica 1 had nothing outstanding for request 3.
    assert run.replica[3] == 1


def test_random_spreads_evenly_round_robin_cycles_and_a_replayed_routing_is_followed() -> None:
    arrivals = np.arange(3000) * 0.01
    sizes = {"prompt_tokens": np.array([10]), "output_tokens": np.array([2])}
    spread = Counter(Simulation([PROFILE] * 3, routing="random").run(
        Load(arrivals=arrivals), **sizes).replica.tolist())  # fmt: skip
    assert all(900 < count < 1100 for count in spread.values())
    cycle = Simulation([PROFILE] * 3, routing="round_robin").run(Load(arrivals=arrivals), **sizes)
    assert cycle.replica.tolist()[:6] == [0, 1, 2, 0, 1, 2]
    replayed = Simulation([PROFILE] * 3, routing="random").run(
        Load(arrivals=arrivals[:4]), replayed_routing=[2, 2, 0, 1], **sizes
    )
    assert replayed.replica.tolist() == [2, 2, 0, 1]


@pytest.mark.parametrize("batching", ["continuous", "static"])
@pytest.mark.parametrize("routing", ["least_outstanding_requests", "random", "round_robin"])
@pytest.mark.parametrize("closed_loop", [False, True])
def test_matches_the_step_by_step_reference(batching: str, routing: str, closed_loop: bool) -> None:
    rng = np.random.default_rng(7)
    profiles = [PROFILE.model_copy(update={"batching": batching})] * 3
    prompts = rng.integers(1, 300, size=64)
    outputs = rng.integers(1, 40, size=64)
    warmup, duration, net = 0.5, 4.0, 0.0007
    arrivals = np.sort(rng.uniform(0, warmup + duration, size=150))
    load = Load(users=9, send_until=warmup + duration) if closed_loop else Load(arrivals=arrivals)
    window = (warmup, warmup + duration)
    run = Simulation(profiles, routing=routing, network_s=net, seed=3).run(
        load, prompt_tokens=prompts, output_tokens=outputs, warmup_s=warmup, window=window
    )
    oracle = run_oracle(
        profiles,
        routing=routing,
        prompts=prompts.tolist(),
        outputs=outputs.tolist(),
        arrivals=None if closed_loop else arrivals.tolist(),
        users=9 if closed_loop else None,
        send_until=warmup + duration,
        network_s=net,
        seed=3,
    )

    assert len(run.sent) == len(oracle)
    for index, request in enumerate(oracle):
        assert run.replica[index] == request.replica
        assert close(run.sent[index], request.sent)
        assert close(run.first_token[index], request.tokens[0]), index
        assert close(run.end[index], request.tokens[-1]), index
    measured = [r for r in oracle if r.sent >= warmup]
    expected_gaps = sorted(gap for r in measured for gap in gaps_ms(r))
    simulated_gaps = np.repeat(run.itl_values_s * 1000.0, run.itl_counts)
    assert np.allclose(np.sort(simulated_gaps), expected_gaps)
    assert run.tokens_in_window.sum() == pytest.approx(tokens_in(oracle, *window))


def test_figures_equal_the_bench_metrics_of_the_same_requests() -> None:
    rng = np.random.default_rng(11)
    prompts, outputs = rng.integers(1, 200, size=40), rng.integers(1, 60, size=40)
    # Not a round number: a token landing exactly on the window's edge would count on
    # either side by rounding alone.
    warmup, duration = 1.0, 6.0137
    profiles = [PROFILE] * 2
    names = ["emulator-0", "emulator-1"]
    run = Simulation(profiles, replica_names=names, network_s=0.0005).run(
        Load(users=6, send_until=warmup + duration),
        prompt_tokens=prompts,
        output_tokens=outputs,
        warmup_s=warmup,
        window=(warmup, warmup + duration),
    )
    oracle = run_oracle(
        profiles, routing="least_outstanding_requests", prompts=prompts.tolist(),
        outputs=outputs.tolist(), users=6, send_until=warmup + duration, network_s=0.0005,
    )  # fmt: skip
    records = []
    clock = 100.0  # the client's perf_counter when the step started
    for index, request in enumerate(oracle):
        record = RequestRecord(index, request.prompt, request.output, warmup=request.sent < warmup)
        record.sent, record.first_token = clock + request.sent, clock + request.tokens[0]
        record.last_token = record.end = clock + request.tokens[-1]
        record.chunks = record.usage_tokens = request.output
        record.itl_ms = array("d", gaps_ms(request))
        record.instance = names[request.replica]
        records.append(record)
    outcome = StepOutcome(
        records, started=clock, measured_from=clock + warmup, finished=records[-1].end
    )
    bench = measure_step(
        outcome, open_loop=False, thresholds=Thresholds(20, 20),
        window=(clock + warmup, clock + warmup + duration),
    ).summary  # fmt: skip
    simulated = step_summary(run, open_loop=False).model_dump(mode="json")

    assert set(simulated["latency"]) == set(bench["latency"])
    for key in ("ttft_ms", "itl_ms", "tpot_ms", "e2e_ms"):
        for point, value in bench["latency"][key].items():
            assert simulated["latency"][key][point] == pytest.approx(value, abs=0.002), (key, point)
    for key in ("requests", "output_tokens_per_min", "requests_per_s", "measured_seconds",
                "achieved_concurrency"):  # fmt: skip
        assert simulated[key] == pytest.approx(bench[key], rel=1e-3), key
    assert [row["instance"] for row in simulated["per_instance"]] == names
    for mine, theirs in zip(simulated["per_instance"], bench["per_instance"], strict=True):
        assert mine["requests"] == theirs["requests"]
        assert mine["output_tokens_per_min"] == pytest.approx(theirs["output_tokens_per_min"])
        assert mine["ttft_ms"] == pytest.approx(theirs["ttft_ms"], abs=0.002)


def test_weighted_distribution_is_numpy_percentile_of_the_expanded_values() -> None:
    rng = np.random.default_rng(5)
    values, counts = rng.uniform(1, 100, size=50), rng.integers(1, 30, size=50)
    expanded = np.repeat(values, counts)
    summary = weighted_distribution(values, counts)
    for name, quantile in (("p50", 50), ("p90", 90), ("p99", 99), ("p999", 99.9)):
        expected = float(np.percentile(expanded, quantile))
        assert getattr(summary, name) == pytest.approx(expected, abs=1e-3)
    assert summary.count == expanded.size
    assert weighted_distribution(np.empty(0), np.empty(0, dtype=int)).p50 is None


def test_bad_simulations_are_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="routing"):
        Simulation([PROFILE], routing="fastest")
    with pytest.raises(ValueError, match="at least one replica"):
        Simulation([])
    with pytest.raises(ValueError, match="closed loop"):
        Load()
    with pytest.raises(ValueError, match="replica the simulation does not have"):
        one_replica().run(
            Load(arrivals=np.array([0.0])), prompt_tokens=np.array([1]),
            output_tokens=np.array([1]), replayed_routing=[3],
        )  # fmt: skip


@pytest.mark.parametrize("batching", ["continuous", "static"])
def test_saturated_throughput_formula_matches_a_simulated_queue(batching: str) -> None:
    profile = PROFILE.model_copy(update={"batching": batching})
    run = one_replica(profile).run(
        Load(users=40, send_until=120.0),
        prompt_tokens=np.array([200]),
        output_tokens=np.array([30]),
        window=(10.0, 120.0),
    )
    simulated = run.tokens_in_window.sum() / 110.0
    assert simulated == pytest.approx(profile.saturated_tokens_per_s(200, 30), rel=0.02)
