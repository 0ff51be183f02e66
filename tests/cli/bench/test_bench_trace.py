"""Trace replay, the synthetic trace maker, sessions and shared prefixes."""

from __future__ import annotations

import json
import os
import stat
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from test_bench_engine import run

from inferfleet.cli.bench.config import Distribution
from inferfleet.cli.bench.engine import StepPlan
from inferfleet.cli.bench.metrics import Thresholds, measure_step
from inferfleet.cli.bench.trace import TraceArrivals, TraceMakeConfig, load_trace, make_trace
from inferfleet.cli.bench.workload import Workload, schedule_hash
from inferfleet.cli.errors import UserError
from inferfleet.cli.main import main


def write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def server_log(url: str) -> list[dict]:
    with urllib.request.urlopen(f"{url}/_sent_log") as response:
        return json.load(response)


def cli(*args: str) -> int:
    with pytest.raises(SystemExit) as exited:
        main(["bench", *args])
    return int(exited.value.code or 0)


def test_a_replay_sends_each_request_at_its_timestamp(timed_server, tmp_path: Path) -> None:
    url = timed_server(ttft_ms=5, itl_ms=2)
    rng = np.random.default_rng(4)
    stamps = 1000.0 + np.sort(rng.uniform(0, 3.0, size=60))  # only differences count
    rows = [{"timestamp": float(t), "prompt_tokens": 8, "output_tokens": 3} for t in stamps]
    trace = load_trace(write(tmp_path / "t.jsonl", rows[::-1]))  # sorted when read
    arrivals = TraceArrivals(trace.offsets, 2.0, trace.sha256)
    replay = Workload(seed=1, prompt_tokens=Distribution.parse("8"),
                      output_tokens=Distribution.parse("3"), trace=trace)  # fmt: skip
    # A step the client marks valid (dispatch lag p99 within 20 ms) was sent on time; when
    # other processes starve the client it says so instead: measure again.
    for _attempt in range(3):
        outcome = run(url, StepPlan(arrivals=arrivals), requests=replay)
        step = measure_step(outcome, open_loop=True, thresholds=Thresholds(1000.0, 20.0)).result
        if step.valid:
            break
    assert step.valid, step.invalid_reasons
    assert len(outcome.records) == 60 and all(record.ok for record in outcome.records)
    # --trace-speed 2: each request is due at half its offset in the trace.
    due = outcome.started + (stamps - stamps[0]) / 2.0
    sent = np.array([record.sent for record in sorted(outcome.records, key=lambda r: r.index)])
    lag_ms = (sent - due) * 1000.0
    print("replay lag ms p50/p90/max", np.percentile(lag_ms, [50, 90, 100]).round(2))
    assert lag_ms.min() >= 0.0 and np.median(lag_ms) <= 3.0
    # The schedule hash names the trace and its speed.
    real_speed = TraceArrivals(trace.offsets, 1.0, trace.sha256)
    assert schedule_hash(replay, [arrivals]) != schedule_hash(replay, [real_speed])
    assert schedule_hash(replay, [arrivals]) == schedule_hash(replay, [arrivals])
    assert step.client.dispatch_lag_ms is not None and step.client.dispatch_lag_ms.p50 <= 3.0


def test_sessions_carry_their_history_and_prefixes_are_shared(timed_server, tmp_path: Path) -> None:
    url = timed_server(ttft_ms=2, itl_ms=1)
    rows = [
        {"timestamp": 0.0, "prompt": "what shoes fit trail running", "output_tokens": 4,
         "session_id": "a", "prefix_id": "shop"},
        {"timestamp": 0.1, "prompt": "hello", "output_tokens": 2, "prefix_id": "shop"},
        {"timestamp": 0.2, "prompt_tokens": 6, "output_tokens": 3, "session_id": "a",
         "prefix_id": "shop"},
        {"timestamp": 0.3, "prompt": "and in blue", "output_tokens": 2, "session_id": "a",
         "prefix_id": "shop"},
        {"timestamp": 0.4, "prompt": "unrelated", "output_tokens": 2},
    ]  # fmt: skip
    trace = write(tmp_path / "chat.jsonl", rows)
    server_log(url)
    out = tmp_path / "run"
    assert cli("--target", url, "--trace", str(trace), "--endpoint", "chat", "--warmup", "0",
               "--prefix-tokens", "40", "--out", str(out), "--max-loop-lag-ms", "1000",
               "--max-dispatch-lag-ms", "1000") == 0  # fmt: skip
    seen = sorted(
        (entry for entry in server_log(url) if entry["messages"][-1]["content"] != "Say hello."),
        key=lambda entry: entry["received"],
    )  # the preflight request left out
    assert [len(entry["messages"]) for entry in seen if entry["messages"]] == [2, 2, 4, 6, 1]
    system = [m[0]["content"] for m in (e["messages"] for e in seen) if m[0]["role"] == "system"]
    assert len(system) == 4 and len(set(system)) == 1 and len(system[0].split()) == 40
    last = seen[3]["messages"]
    assert [m["role"] for m in last] == ["system", "user", "assistant", "user", "assistant",
                                         "user"]  # fmt: skip
    # The third turn sends both earlier turns and the answers they asked for, then its own.
    assert last[1]["content"] == "what shoes fit trail running"
    assert len(last[2]["content"].split()) == 4 and len(last[4]["content"].split()) == 3
    assert last[5]["content"] == "and in blue"
    assert seen[2]["messages"][3]["content"] == last[3]["content"]
    results = json.loads((out / "results.json").read_text())
    assert results["load"]["arrival"] == "trace" and results["workload"]["trace_sessions"] == 1
    assert results["steps"][0]["requests"] == 5
    lines = (out / "requests.jsonl").read_text().splitlines()
    # Prompt tokens count the prefix and the history the request carried.
    assert [json.loads(line)["prompt_tokens"] for line in lines][3] == 40 + 5 + 4 + 6 + 3 + 3


def test_a_shared_prefix_goes_to_its_fraction_of_requests() -> None:
    workload = Workload(seed=2, prompt_tokens=Distribution.parse("10"),
                        output_tokens=Distribution.parse("5"), prefix_tokens=50,
                        prefix_fraction=0.3)  # fmt: skip
    specs = [workload.spec(i) for i in range(2000)]
    shared = [spec for spec in specs if spec.messages]
    assert abs(len(shared) / len(specs) - 0.3) < 0.04
    assert len({spec.messages[0][1] for spec in shared}) == 1
    assert all(spec.prompt.startswith(shared[0].messages[0][1]) for spec in shared)
    assert all(spec.prompt_tokens == 60 for spec in shared)
    assert all(spec.prompt_tokens == 10 for spec in specs if not spec.messages)


def test_the_trace_maker_is_seeded_and_shaped_like_traffic() -> None:
    config = TraceMakeConfig(duration=600, rate=5, bursts=0, seed=3)
    rows = make_trace(config)
    assert rows == make_trace(config) and rows != make_trace(config.model_copy(update={"seed": 4}))
    stamps = np.array([row["timestamp"] for row in rows])
    assert np.all(np.diff(stamps) >= 0) and stamps.max() < 600
    # The daily swing: the busiest quarter (mid-trace) sees about three times the quietest.
    quarters = np.histogram(stamps, bins=[0, 75, 225, 375, 525, 600])[0]
    assert quarters[2] > 2.0 * (quarters[0] + quarters[4])
    sessions = {row["session_id"] for row in rows if "session_id" in row}
    turns = [sum(1 for row in rows if row.get("session_id") == s) for s in sessions]
    assert len(sessions) > 100 and 3.0 <= np.mean(turns) <= 4.5
    prefixed = [row["prefix_id"] for row in rows if "prefix_id" in row]
    assert set(prefixed) == {"p0", "p1", "p2", "p3"} and 0.35 < len(prefixed) / len(rows) < 0.65
    burst = make_trace(TraceMakeConfig(duration=600, rate=5, diurnal=0, bursts=1,
                                       burst_seconds=30, seed=3))  # fmt: skip
    per_30s = np.histogram([row["timestamp"] for row in burst], bins=20, range=(0, 600))[0]
    assert per_30s.max() > 2.5 * np.median(per_30s)


def test_trace_make_writes_the_file_bench_replays(tmp_path: Path) -> None:
    out = tmp_path / "made.jsonl"
    assert cli("trace", "make", "--out", str(out), "--duration", "30", "--seed", "1") == 0
    trace = load_trace(out)
    assert len(trace) > 20 and any(trace.sessions) and any(trace.prefixes)


def test_trace_make_never_replaces_a_pipe_or_a_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    for out in (pipe, tmp_path):
        assert cli("trace", "make", "--out", str(out), "--duration", "5") == 2
        assert "--out" in capsys.readouterr().err
    assert stat.S_ISFIFO(pipe.stat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]


def test_trace_make_replaces_an_earlier_trace_but_no_other_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "made.jsonl"
    assert cli("trace", "make", "--out", str(out), "--duration", "5", "--seed", "1") == 0
    assert cli("trace", "make", "--out", str(out), "--duration", "5", "--seed", "2") == 0
    capsys.readouterr()
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text("name: mine\n")
    assert cli("trace", "make", "--out", str(fleet), "--duration", "5") == 2
    assert "holds something other than a trace" in capsys.readouterr().err
    assert fleet.read_text() == "name: mine\n"


BAD_TRACES = [
    ('{"timestamp": 0, "prompt_tokens": 4, "output_tokens": 2}\nnope\n', "line 2 is not JSON"),
    ('{"prompt_tokens": 4, "output_tokens": 2}\n', "line 1: 'timestamp' must be a number"),
    ('{"timestamp": "noon", "prompt_tokens": 4, "output_tokens": 2}\n', "line 1: 'timestamp'"),
    ('{"timestamp": 0, "output_tokens": 2}\n', "line 1: give one of 'prompt'"),
    ('{"timestamp": 0, "prompt": "a", "prompt_tokens": 2, "output_tokens": 2}\n',
     "line 1: give one of 'prompt'"),
    ('{"timestamp": 0, "prompt": "a"}\n', "line 1: 'output_tokens' must be an integer"),
    ('\n{"timestamp": 0, "prompt": "a", "output_tokens": 0}\n', "line 2: 'output_tokens'"),
    ('{"timestamp": 0, "prompt": "a", "output_tokens": 2, "session_id": [1]}\n',
     "line 1: 'session_id' must be a string"),
    ("[1, 2]\n", "line 1 is not a JSON object"),
    ("\n", "holds no requests"),
]  # fmt: skip


@pytest.mark.parametrize(("content", "phrase"), BAD_TRACES)
def test_bad_traces_name_the_line(tmp_path: Path, content: str, phrase: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(UserError, match=phrase) as caught:
        load_trace(path)
    assert str(caught.value).startswith(f"--trace: {path}")


def test_a_bad_trace_exits_2_before_any_request(
    timed_server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = timed_server()
    path = write(tmp_path / "bad.jsonl", [{"timestamp": 0, "prompt": "a", "output_tokens": 2},
                                          {"timestamp": 1, "prompt": "b"}])  # fmt: skip
    server_log(url)
    assert cli("--target", url, "--trace", str(path), "--out", str(tmp_path / "o")) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: --trace: {path} line 2: 'output_tokens'"), error
    assert "Traceback" not in error and not (tmp_path / "o").exists()
    assert server_log(url) == []
    assert cli("--target", url, "--trace", str(path), "--users", "2") == 2
    assert "drop --users" in capsys.readouterr().err
