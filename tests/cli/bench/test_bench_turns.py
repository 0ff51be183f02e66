"""``--turns``: closed-loop users hold conversations whose context grows turn by turn.

Against the local rehearsal (emulated servers behind a real nginx), the server's own
prompt count of turn k is checked against the history the workload says it carries,
and ``simulate --local`` with the same flags is checked to predict the same sizes.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from inferfleet.cli.bench.config import BenchConfig, Distribution
from inferfleet.cli.bench.workload import Workload, schedule_hash
from inferfleet.cli.local.emulator import parse_request
from inferfleet.cli.main import main
from inferfleet.cli.sizing.profile import ServerProfile

LENIENT_CLIENT = ("--max-loop-lag-ms", "1000", "--max-dispatch-lag-ms", "1000")


def cli(*args: str) -> int:
    with pytest.raises(SystemExit) as exited:
        main(["bench", *args])
    return int(exited.value.code or 0)


def conversation_workload(**extra: object) -> Workload:
    settings: dict = {"seed": 3, "prompt_tokens": Distribution.parse("uniform:5:9"),
                      "output_tokens": Distribution.parse("uniform:3:6"),
                      "turns": Distribution.parse("uniform:1:5", maximum=1000)}  # fmt: skip
    return Workload(**{**settings, **extra})


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def by_turn(rows: list[dict]) -> dict[int, list[dict]]:
    conversations: dict[int, list[dict]] = defaultdict(list)
    for row in rows:
        conversations[row["conversation"]].append(row)
    for turns in conversations.values():
        turns.sort(key=lambda row: row["turn"])
    return conversations


def test_turn_k_carries_the_turns_before_it_and_their_answers() -> None:
    workload = conversation_workload()
    assert int(workload.conversation_turns.sum()) == len(workload)
    assert set(workload.conversation_turns[:-1].tolist()) == {1, 2, 3, 4, 5}
    for number in range(40):
        indices = workload.conversation(number)
        specs = [workload.spec(index) for index in indices]
        for turn, spec in enumerate(specs):
            roles = [role for role, _ in spec.messages]
            if turn == 0:
                assert not spec.messages and spec.prompt_tokens == len(spec.prompt.split())
                continue
            before = specs[turn - 1]
            new_text = spec.messages[-1][1]
            answer = spec.messages[-2][1]
            # The previous prompt, the answer it asked for, then this turn's new text.
            assert spec.prompt_tokens == (
                before.prompt_tokens + before.output_tokens + len(new_text.split())
            )
            assert len(answer.split()) == before.output_tokens
            assert roles == ["user", "assistant"] * turn + ["user"]
            assert [content for _, content in spec.messages[:-2]] == [
                content for _, content in (before.messages or (("user", before.prompt),))
            ]
    # The pool repeats, conversations with it: conversation n + count is conversation n.
    count = len(workload.conversation_turns)
    again = workload.conversation(count + 7)
    assert [workload.spec(i).prompt for i in again] == [
        workload.spec(i).prompt for i in workload.conversation(7)
    ]
    assert again.start == len(workload) + workload.conversation(7).start


def test_a_conversation_keeps_its_shared_prefix_and_the_hash_names_the_turns() -> None:
    workload = conversation_workload(prefix_tokens=12, prefix_fraction=0.5)
    for number in range(60):
        specs = [workload.spec(index) for index in workload.conversation(number)]
        shared = {bool(spec.messages) and spec.messages[0][0] == "system" for spec in specs}
        assert len(shared) == 1  # every turn of a conversation, or none, has the prefix
    single = Workload(seed=3, prompt_tokens=Distribution.parse("uniform:5:9"),
                      output_tokens=Distribution.parse("uniform:3:6"))  # fmt: skip
    hashes = {
        schedule_hash(single, []),
        schedule_hash(conversation_workload(), []),
        schedule_hash(conversation_workload(think_time_s=1.0), []),
        schedule_hash(conversation_workload(turns=Distribution.parse("4")), []),
    }
    assert len(hashes) == 4
    assert schedule_hash(conversation_workload(), []) == schedule_hash(conversation_workload(), [])
    described = conversation_workload(think_time_s=0.5).describe()
    assert described["turns"] == "uniform:1:5" and described["think_time_s"] == 0.5
    assert 2.5 < described["mean_turns"] < 3.5
    assert described["mean_context_tokens"] > described["mean_prompt_tokens"]
    assert single.describe()["turns"] is None


@pytest.mark.parametrize(
    ("args", "flag", "phrase"),
    [
        (("--users", "2", "--turns", "0"), "--turns", "number of turns"),
        (("--users", "2", "--turns", "1001"), "--turns", "from 1 to 1000"),
        (("--rate", "2", "--turns", "3"), "--turns", "--trace"),
        (("--users", "2", "--think-time", "1s"), "--think-time", "add --turns N"),
        (("--users", "2", "--turns", "3", "--think-time", "soon"), "--think-time", "duration"),
        (("--users", "2", "--turns", "3", "--think-time", "2h"), "--think-time", "3600 s"),
    ],
)
def test_bad_turn_flags_name_the_flag_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], flag: str,
    phrase: str,
) -> None:  # fmt: skip
    assert cli("--target", "http://127.0.0.1:9", "--out", str(tmp_path / "o"), *args) == 2
    error = capsys.readouterr().err
    assert f"error: {flag}: " in error and phrase in error and "Traceback" not in error
    assert not (tmp_path / "o").exists()


def test_a_trace_refuses_turns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = tmp_path / "t.jsonl"
    trace.write_text('{"timestamp": 0, "prompt_tokens": 4, "output_tokens": 2}\n')
    assert cli("--target", "http://127.0.0.1:9", "--trace", str(trace), "--turns", "3") == 2
    assert "drop --turns" in capsys.readouterr().err


def test_users_send_their_turns_in_order_after_the_think_time(timed_server, tmp_path) -> None:
    url = timed_server(ttft_ms=5, itl_ms=2)
    out = tmp_path / "run"
    assert cli("--target", url, "--endpoint", "chat", "--users", "4", "--workers", "2",
               "--turns", "3", "--think-time", "150ms", "--duration", "2", "--warmup", "0",
               "--output-tokens", "4", "--out", str(out), *LENIENT_CLIENT) == 0  # fmt: skip
    rows = jsonl(out / "requests.jsonl")
    conversations = by_turn(rows)
    assert len(conversations) >= 4
    # Both worker processes took conversations of their own (interleaved numbers).
    assert {number % 2 for number in conversations} == {0, 1}
    gaps = []
    for turns in conversations.values():
        assert [row["turn"] for row in turns] == list(range(len(turns)))
        for before, after in itertools.pairwise(turns):
            gaps.append(after["sent_ms"] - before["end_ms"])
    assert gaps and min(gaps) >= 150.0 and np.median(gaps) < 200.0
    results = json.loads((out / "results.json").read_text())
    assert results["workload"]["turns"] == "3" and results["workload"]["think_time_s"] == 0.15
    # Users wait while they think: fewer requests in flight than users.
    assert results["steps"][0]["achieved_concurrency"] < 3.5


@pytest.mark.slow
def test_local_fleet_sees_the_context_grow_and_simulate_predicts_it(tmp_path: Path) -> None:
    flags = ("--local", "--servers", "3", "--users", "6", "--turns", "uniform:2:4",
             "--think-time", "50ms", "--endpoint", "chat", "--prompt-tokens", "uniform:20:40",
             "--output-tokens", "12", "--prefix-tokens", "30", "--prefix-fraction", "0.5",
             "--duration", "4", "--warmup", "0", "--seed", "5")  # fmt: skip
    out = tmp_path / "bench"
    assert cli(*flags, "--out", str(out), *LENIENT_CLIENT) == 0
    rows = jsonl(out / "requests.jsonl")
    assert all(row["error"] is None for row in rows)
    config = BenchConfig.model_validate({
        "local": True, "users": [6], "turns": "uniform:2:4", "think_time": "50ms",
        "prompt_tokens": "uniform:20:40", "output_tokens": 12, "prefix_tokens": 30,
        "prefix_fraction": 0.5, "seed": 5,
    })  # fmt: skip
    workload = Workload.from_config(config)
    profile = ServerProfile()
    multi = 0
    same_instance = []
    for number, turns in by_turn(rows).items():
        expected = list(workload.conversation(number))[: len(turns)]
        assert [row["index"] for row in turns] == expected
        for row in turns:
            spec = workload.spec(row["index"])
            # What the emulated server counted (its usage report) is what the history
            # the workload built should cost it, turn by turn.
            served = parse_request(
                {"messages": spec.chat_messages(), "max_tokens": 12},
                chat=True,
                profile=profile,
                model="m",
            ).prompt_tokens
            assert row["prompt_tokens"] == served
        sizes = [row["prompt_tokens"] for row in turns]
        assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)
        multi += len(turns) > 1
        same_instance += [a["instance"] == b["instance"] for a, b in itertools.pairwise(turns)]
    assert multi >= 6
    # The balancer routes each turn on its own (least_conn): no stickiness is promised.
    print(f"turns on the previous turn's server: {np.mean(same_instance):.0%} of "
          f"{len(same_instance)}")  # fmt: skip

    simulated = tmp_path / "sim"
    command = [sys.executable, "-m", "inferfleet.cli", "simulate", *flags, "--out", str(simulated)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    predicted = {(row["conversation"], row["turn"]): row["prompt_tokens"]
                 for row in jsonl(simulated / "requests.jsonl")}  # fmt: skip
    measured = {(row["conversation"], row["turn"]): row["prompt_tokens"] for row in rows}
    common = predicted.keys() & measured.keys()
    assert len(common) >= 0.8 * len(measured)
    assert all(predicted[key] == measured[key] for key in common)
    bench_results = json.loads((out / "results.json").read_text())
    sim_results = json.loads((simulated / "results.json").read_text())
    assert sim_results["workload"]["hash"] == bench_results["workload"]["hash"]
    assert sim_results["workload"]["turns"] == "uniform:2:4"
