"""The multi-region rehearsal: regional fleets behind real nginx, a weighted front, a controller."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from processes import process_alive

from inferfleet.cli.errors import UserError
from inferfleet.cli.local import nginx
from inferfleet.cli.local.emulator import TTFT_BUCKETS_S
from inferfleet.cli.local.regions import (
    MultiRegionFleet,
    RegionsConfig,
    build_regions_config,
    local_region_names,
)
from inferfleet.cli.local.regions_host import (
    InstanceSample,
    histogram_quantile,
    parse_metrics,
    region_signals,
)
from inferfleet.cli.sizing.profile import ServerProfile
from inferfleet.constructs.traffic_controller.weights import WeightPolicy

BUCKETS = len(TTFT_BUCKETS_S) + 1


def counts_at(**seconds: int) -> tuple[int, ...]:
    """Per-bucket counts with ``n`` observations at each bucket bound named like ``s0_2``."""
    counts = [0] * BUCKETS
    for name, count in seconds.items():
        counts[TTFT_BUCKETS_S.index(float(name[1:].replace("_", ".")))] += count
    return tuple(counts)


def test_p99_is_interpolated_in_its_bucket_and_none_without_samples() -> None:
    counts = list(counts_at(s0_04=99, s0_4=1))
    # Rank 99 of 100 is the last sample of the 0.02..0.04 bucket.
    assert histogram_quantile(counts, 0.99) == pytest.approx(0.04)
    counts = list(counts_at(s0_04=98, s0_4=2))
    assert 0.3 < histogram_quantile(counts, 0.99) <= 0.4
    overflow = [0] * BUCKETS
    overflow[-1] = 5
    assert histogram_quantile(overflow, 0.99) == TTFT_BUCKETS_S[-1]
    assert histogram_quantile([0] * BUCKETS, 0.99) is None


def test_region_signals_use_the_period_deltas_and_count_restarted_servers_from_zero() -> None:
    before = [
        InstanceSample(True, counts_at(s0_04=500), served=500),
        InstanceSample(True, counts_at(s0_04=300), served=300),
        InstanceSample(True, counts_at(s0_04=10), served=10),
    ]
    after = [
        InstanceSample(True, counts_at(s0_04=500, s1_0=10), served=510),
        InstanceSample(False),
        InstanceSample(True, counts_at(s0_04=5), served=5),  # restarted
    ]
    signals = region_signals(before, after, period_s=2.0)
    assert signals.healthy_hosts == 2 and signals.desired_hosts == 3
    # 15 new samples, 10 of them at ~1 s: the old 500 do not dilute the P99.
    assert 0.8 < signals.ttft_p99_s <= 1.0
    assert signals.requests_per_target == pytest.approx(15 / 2 / 2.0 * 60)


def test_the_emulator_metrics_page_parses_into_its_histogram() -> None:
    lines = [
        f'inferfleet_emulator_time_to_first_token_seconds_bucket{{instance="x",le="{b:g}"}} {i}'
        for i, b in enumerate(TTFT_BUCKETS_S)
    ]
    lines.append(
        f'inferfleet_emulator_time_to_first_token_seconds_bucket{{instance="x",le="+Inf"}} '
        f"{len(TTFT_BUCKETS_S)}"
    )
    lines.append('inferfleet_emulator_served_requests_total{instance="x"} 7')
    counts, served = parse_metrics("\n".join(lines))
    assert counts == (0, *([1] * len(TTFT_BUCKETS_S)))
    assert served == 7
    with pytest.raises(ValueError, match="histogram"):
        parse_metrics("nothing here")


def test_weighted_upstreams_render_weights_and_mark_zero_down(tmp_path: Path) -> None:
    paths = nginx.NginxPaths(tmp_path)
    config = nginx.NginxConfig(
        listen_port=18080,
        upstream_ports=(18081, 18082),
        upstream_weights=(70, 0),
        routing="round_robin",
    )
    text = nginx.render(config, paths)
    assert "server 127.0.0.1:18081 weight=70 max_fails=0;" in text
    assert "server 127.0.0.1:18082 down max_fails=0;" in text


def test_bad_rehearsal_settings_name_the_flag() -> None:
    with pytest.raises(UserError, match="--period"):
        build_regions_config(regions=local_region_names(2), period_s=0.01)
    with pytest.raises(UserError, match="--step"):
        build_regions_config(regions=local_region_names(2), policy=WeightPolicy(step=0))


def _instances_behind(url: str, requests: int) -> Counter[str]:
    body = json.dumps({"prompt": "hello", "max_tokens": 4, "stream": True}).encode()

    def one(_: int) -> str:
        request = urllib.request.Request(
            f"{url}/v1/completions", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
            return response.headers["X-Inferfleet-Instance"].split("/")[0]

    with ThreadPoolExecutor(8) as pool:
        return Counter(pool.map(one, range(requests)))


@pytest.mark.slow
def test_a_slowed_region_loses_weight_and_gets_it_back_after_the_brownout() -> None:
    profile = ServerProfile(decode_base_s=0.01, decode_per_sequence_s=0.001)
    config = RegionsConfig(
        regions=local_region_names(2),
        servers=2,
        profile=profile,
        period_s=0.5,
        policy=WeightPolicy(objective_s=0.1, recover_periods=2),
    )
    with MultiRegionFleet(config) as fleet:
        assert set(_instances_behind(fleet.url, 40)) == {"local-0", "local-1"}
        began = time.perf_counter()
        fleet.schedule(region="local-1", at=began + 0.6, until=began + 3.5, slowdown=20)
        deadline = began + 7.0
        while time.perf_counter() < deadline:
            _instances_behind(fleet.url, 16)
        timeline = fleet.timeline()
        state = fleet.state()
    periods = [entry for entry in timeline if entry["kind"] == "period"]
    during = [e for e in periods if began + 1.2 < e["t"] < began + 3.5]
    assert min(entry["weights"]["local-1"] for entry in during) == config.policy.floor
    breaching = [e for e in during if e["decision"]["regions"]["local-1"]["status"] == "breaching"]
    assert breaching, [e["decision"]["regions"]["local-1"] for e in during]
    assert periods[-1]["weights"]["local-1"] > config.policy.floor  # ramping back up
    assert {e["kind"] for e in timeline} >= {"brownout", "restored"}
    assert state["emulated"] is True and set(state["weights"]) == {"local-0", "local-1"}


@pytest.mark.slow
def test_killing_a_region_drains_it_at_once_and_the_front_stops_sending_there() -> None:
    config = RegionsConfig(regions=local_region_names(2), servers=2, period_s=0.5)
    with MultiRegionFleet(config) as fleet:
        began = time.perf_counter()
        fleet.schedule(region="local-0", at=began, until=began + 30, kill=1.0)
        deadline = began + 10
        while fleet.state()["weights"]["local-0"] != 0:
            assert time.perf_counter() < deadline, fleet.timeline()
            time.sleep(0.1)
        assert _instances_behind(fleet.url, 30) == Counter({"local-1": 30})
        drained = next(
            e for e in fleet.timeline() if e["kind"] == "period" and e["weights"]["local-0"] == 0
        )
    assert drained["decision"]["regions"]["local-0"]["reason"].startswith("health drain")
    assert drained["signals"]["local-0"]["healthy_hosts"] == 0


@pytest.mark.slow
def test_local_up_regions_status_and_down_through_the_command(tmp_path: Path) -> None:
    command = str(Path(sys.executable).with_name("inferfleet"))
    state = ["--state-dir", str(tmp_path / "state")]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [command, "local", *args], capture_output=True, text=True, timeout=60, check=False
        )

    try:
        up = run("up", "--regions", "3", "--servers", "1", "--period", "0.5", "--json", *state)
        assert up.returncode == 0, up.stderr
        started = json.loads(up.stdout)
        assert [region["name"] for region in started["regions"]] == list(local_region_names(3))
        assert sum(started["weights"].values()) == 100
        assert _instances_behind(started["url"], 9).keys() == set(local_region_names(3))
        again = run("up", "--regions", "2", *state)
        assert again.returncode == 1 and "already running" in again.stderr
        status = run("status", "--json", *state)
        assert status.returncode == 0, status.stderr
        report = json.loads(status.stdout)
        assert report["controller"] is True and report["period_s"] == 0.5
        assert report["last_period"]["kind"] == "period"
    finally:
        down = run("down", *state)
    assert down.returncode == 0 and "stopped local regions" in down.stdout
    assert not process_alive(started["pid"])
    assert run("status", *state).returncode == 1
    bad = run("up", "--regions", "3", "--period", "0", *state)
    assert bad.returncode == 2 and "--period" in bad.stderr and "Traceback" not in bad.stderr
