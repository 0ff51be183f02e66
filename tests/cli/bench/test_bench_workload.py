"""The seeded schedule: determinism, the hash, Poisson arrivals, datasets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from inferfleet.cli.bench.config import Distribution
from inferfleet.cli.bench.workload import (
    Arrivals,
    RateSchedule,
    Workload,
    load_dataset,
    schedule_hash,
)
from inferfleet.cli.errors import UserError


def workload(seed: int = 7, output: str = "uniform:10:500", **extra: object) -> Workload:
    return Workload(
        seed=seed,
        prompt_tokens=Distribution.parse("lognormal:300:0.5"),
        output_tokens=Distribution.parse(output),
        **extra,
    )


def test_same_seed_same_requests_and_hash() -> None:
    first, second = workload(), workload()
    assert [first.spec(i) for i in range(50)] == [second.spec(i) for i in range(50)]
    assert schedule_hash(first, []) == schedule_hash(second, [])


def test_hash_changes_with_seed_lengths_and_arrivals() -> None:
    base = schedule_hash(workload(), [])
    assert schedule_hash(workload(seed=8), []) != base
    assert schedule_hash(workload(output="uniform:10:501"), []) != base
    arrivals = Arrivals(5.0, 1, horizon_s=10)
    assert schedule_hash(workload(), [arrivals]) != base
    assert schedule_hash(workload(), [Arrivals(5.0, 1, horizon_s=11)]) != schedule_hash(
        workload(), [arrivals]
    )


def test_prompt_length_is_the_drawn_word_count() -> None:
    spec = workload().spec(3)
    assert len(spec.prompt.split()) == spec.prompt_tokens
    assert 10 <= spec.output_tokens <= 500


def test_poisson_arrivals_match_the_rate() -> None:
    rate, horizon = 50.0, 400.0
    offsets = np.fromiter(Arrivals(rate, 11, horizon_s=horizon), dtype=float)
    expected = rate * horizon
    assert abs(offsets.size - expected) < 4 * np.sqrt(expected)
    assert offsets.max() < horizon
    gaps = np.diff(np.concatenate(([0.0], offsets)))
    assert abs(gaps.mean() * rate - 1) < 0.03
    # Exponential gaps: coefficient of variation 1, and a Kolmogorov-Smirnov
    # distance below the 1% critical value.
    assert abs(gaps.std() / gaps.mean() - 1) < 0.05
    ordered = np.sort(gaps)
    empirical = np.arange(1, ordered.size + 1) / ordered.size
    distance = np.max(np.abs(empirical - (1 - np.exp(-rate * ordered))))
    assert distance < 1.63 / np.sqrt(ordered.size)


@pytest.mark.parametrize(("kind", "burstiness", "cv"), [("constant", 1.0, 0.0),
                         ("gamma", 0.25, 2.0), ("gamma", 4.0, 0.5)])  # fmt: skip
def test_constant_and_gamma_arrivals_have_their_mean_and_dispersion(
    kind: str, burstiness: float, cv: float
) -> None:
    rate = 40.0
    process = Arrivals(rate, 3, horizon_s=500.0, kind=kind, burstiness=burstiness)  # type: ignore[arg-type]
    gaps = np.diff(np.concatenate(([0.0], np.fromiter(process, dtype=float))))
    assert abs(gaps.mean() * rate - 1) < 0.03
    # Coefficient of variation of gamma gaps: 1/sqrt(shape); constant gaps: none.
    assert abs(gaps.std() / gaps.mean() - cv) < 0.05 * max(cv, 1.0)
    # A gamma of shape 1 is the Poisson process, and only its hash is unchanged.
    same = Arrivals(rate, 3, horizon_s=500.0, kind="gamma", burstiness=1.0)
    assert process.describe() != Arrivals(rate, 3, horizon_s=500.0).describe()
    assert same.describe() != Arrivals(rate, 3, horizon_s=500.0).describe()


def test_poisson_arrivals_by_count_are_a_prefix_of_the_same_process() -> None:
    by_count = np.fromiter(Arrivals(8.0, 2, measured=40, warmup=1.0), dtype=float)
    warm = np.count_nonzero(by_count < 1.0)
    assert by_count.size == 40 + warm
    assert np.all(np.diff(by_count) > 0)
    by_time = np.fromiter(Arrivals(8.0, 2, horizon_s=by_count[-1] + 1e-9), dtype=float)
    assert np.array_equal(by_count, by_time)
    other_seed = np.fromiter(Arrivals(8.0, 3, measured=40), dtype=float)
    assert not np.array_equal(by_count[:40], other_seed)


def test_arrivals_are_lazy_and_shared_between_workers() -> None:
    import itertools
    import tracemalloc

    # 1e5 req/s for a day would be 8.6e9 offsets; drawing the first million holds one chunk.
    endless = Arrivals(100_000.0, 4, horizon_s=86_400.0)
    tracemalloc.start()
    for _ in itertools.islice(endless, 1_000_000):
        pass
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 5_000_000
    process = Arrivals(50.0, 7, horizon_s=4.0)
    together = sorted(pair for slot in range(3) for pair in process.share(slot, 3))
    assert together == list(enumerate(process))


@pytest.mark.parametrize("shape", ["ramp", "step"])
def test_a_rate_schedule_inverts_its_own_count(shape: str) -> None:
    schedule = RateSchedule(((60.0, 2.0), (600.0, 20.0), (900.0, 0.5)), shape)  # type: ignore[arg-type]
    # Before the first point its rate holds; after the last, the last one does.
    assert schedule.rate_at(0.0) == 2.0 and schedule.rate_at(5000.0) == 0.5
    assert schedule.cumulative(60.0) == pytest.approx(120.0)
    if shape == "ramp":
        assert schedule.rate_at(330.0) == pytest.approx(11.0)
        assert schedule.cumulative(600.0) == pytest.approx(120.0 + 540 * 11.0)
    else:
        assert schedule.rate_at(599.0) == 2.0 and schedule.rate_at(600.0) == 20.0
    moments = np.linspace(0.0, 2000.0, 401)
    counts = np.array([schedule.cumulative(moment) for moment in moments])
    assert np.allclose(schedule.inverse(counts), moments, atol=1e-6)
    assert np.isinf(RateSchedule(((0.0, 1.0), (10.0, 0.0)), "step").inverse(np.array([11.0])))


def test_arrivals_follow_a_ramp_minute_by_minute() -> None:
    schedule = RateSchedule(((0.0, 1.0), (600.0, 10.0), (1200.0, 1.0)))
    process = Arrivals(2.0, 3, horizon_s=1200.0, schedule=schedule)
    offsets = np.fromiter(process, dtype=float)
    per_minute = np.histogram(offsets, bins=20, range=(0.0, 1200.0))[0]
    expected = [2.0 * (schedule.cumulative(60.0 * (m + 1)) - schedule.cumulative(60.0 * m))
                for m in range(20)]  # fmt: skip
    # Poisson counts: within 4 standard deviations of their mean, and the ramp's shape.
    assert all(abs(n - e) <= 4 * np.sqrt(e) for n, e in zip(per_minute, expected, strict=True))
    assert per_minute[9] > 5 * per_minute[0] and per_minute[10] > 5 * per_minute[19]
    assert len(offsets) == pytest.approx(process.expected_count, rel=0.05)
    # Constant arrivals under a schedule come evenly in expected arrivals.
    even = np.fromiter(Arrivals(1.0, 0, horizon_s=1200.0, kind="constant", schedule=schedule),
                       dtype=float)  # fmt: skip
    counted = np.array([schedule.cumulative(moment) for moment in even])
    assert np.allclose(np.diff(counted), 1.0)
    held = Arrivals(2.0, 3, horizon_s=1200.0)
    assert process.describe() != held.describe() and "schedule=ramp:" in process.describe()


def test_dataset_prompts_are_replayed_with_their_lengths(tmp_path: Path) -> None:
    path = tmp_path / "prompts.jsonl"
    rows = [{"prompt": f"question number {i}", "output_tokens": 5 + i} for i in range(4)]
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n\n")
    replay = workload(dataset=load_dataset(path))
    specs = {replay.spec(i).prompt: replay.spec(i).output_tokens for i in range(4)}
    assert specs == {row["prompt"]: row["output_tokens"] for row in rows}
    assert replay.describe()["dataset_sha256"]


@pytest.mark.parametrize(
    ("content", "phrase"),
    [
        ('{"prompt": "a"}\nnot json\n', "line 2 is not JSON"),
        ('{"text": "a"}\n', "line 1 needs a string field 'prompt'"),
        ('{"prompt": "a", "output_tokens": 0}\n', "must be an integer from 1 to"),
        ("\n\n", "holds no prompts"),
    ],
)
def test_bad_datasets_are_explained(tmp_path: Path, content: str, phrase: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(UserError, match=phrase) as caught:
        load_dataset(path)
    assert str(caught.value).startswith("--dataset: ")
