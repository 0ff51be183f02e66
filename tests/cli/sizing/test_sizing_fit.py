"""``inferfleet profile fit``: a profile back from a bench run, and the fit's error per step."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from inferfleet.cli.local.fleet import LocalFleet
from inferfleet.cli.sizing.profile import ServerProfile

# A server whose costs dwarf this machine's few milliseconds of client and nginx time.
KNOWN = ServerProfile(
    slots=4, prefill_base_s=0.08, prefill_per_token_s=0.0002, decode_base_s=0.025,
    decode_per_sequence_s=0.003,
)  # fmt: skip
STEPS = ("--users", "1,5,10,20,40", "--prompt-tokens", "lognormal:300:0.5", "--output-tokens", "48")
TIMING = (
    "slots",
    "prefill_base_s",
    "prefill_per_token_s",
    "decode_base_s",
    "decode_per_sequence_s",
)


def inferfleet(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "inferfleet.cli", *args], capture_output=True, text=True, timeout=600
    )


def fitted(results: Path, tmp_path: Path, *extra: str) -> dict:
    done = inferfleet("profile", "fit", str(results), "--out", str(tmp_path / "p.json"), "--json",
                      *extra)  # fmt: skip
    assert done.returncode == 0, done.stderr
    fit = json.loads(done.stdout)
    assert json.loads((tmp_path / "p.json").read_text()) == fit["profile"]
    return fit


def test_recovers_the_profile_of_a_simulated_run(tmp_path: Path) -> None:
    profile = tmp_path / "known.json"
    profile.write_text(KNOWN.model_dump_json())
    simulate = inferfleet(
        "simulate", "--local", *STEPS, "--duration", "20", "--server-profile", str(profile),
        "--network-ms", "1", "--out", str(tmp_path / "sim"),
    )  # fmt: skip
    assert simulate.returncode == 0, simulate.stderr

    fit = fitted(tmp_path / "sim" / "results.json", tmp_path, "--network-ms", "1")

    for field in TIMING:
        assert fit["profile"][field] == pytest.approx(getattr(KNOWN, field), rel=0.02), field
    assert fit["slots_seen"] is True
    for step in fit["steps"]:
        assert all(abs(error) < 0.03 for error in step["errors"].values()), step


@pytest.mark.slow
def test_recovers_the_emulators_parameters_from_a_bench_run_of_the_local_rehearsal(
    tmp_path: Path,
) -> None:
    with LocalFleet(servers=5, profile=KNOWN) as fleet:
        bench = inferfleet(
            "bench", "--target", fleet.url, "--instances", "5", *STEPS, "--duration", "12",
            "--out", str(tmp_path / "bench"),
        )  # fmt: skip
    assert bench.returncode == 0, bench.stderr

    fit = fitted(tmp_path / "bench" / "results.json", tmp_path, "--network-ms", "1")

    print()
    for field in TIMING:
        value, truth = fit["profile"][field], getattr(KNOWN, field)
        print(f"{field}: fitted {value:.6g}, emulator {truth:g} ({value / truth - 1:+.1%})")
    for step in fit["steps"]:
        print(f"step {step['step']} ({step['users']} users): "
              + ", ".join(f"{k} {v:+.1%}" for k, v in step["errors"].items()))  # fmt: skip
    assert fit["profile"]["slots"] == KNOWN.slots
    for field in TIMING[1:]:
        assert fit["profile"][field] == pytest.approx(getattr(KNOWN, field), rel=0.10), field


@pytest.mark.parametrize(
    ("load", "message"),
    [
        (("--rate", "2"), "needs a closed-loop run"),
        (("--users", "4"), "at least two valid steps of different --users"),
    ],
)
def test_a_run_that_cannot_be_fitted_is_refused_with_the_reason(
    tmp_path: Path, load: tuple[str, str], message: str
) -> None:
    simulate = inferfleet("simulate", "--local", *load, "--duration", "3",
                          "--out", str(tmp_path / "sim"))  # fmt: skip
    assert simulate.returncode == 0, simulate.stderr
    done = inferfleet("profile", "fit", str(tmp_path / "sim" / "results.json"),
                      "--out", str(tmp_path / "p.json"))  # fmt: skip
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "p.json").exists()


def test_missing_or_foreign_files_are_named(tmp_path: Path) -> None:
    missing = inferfleet("profile", "fit", str(tmp_path / "none.json"))
    assert missing.returncode == 2 and "RESULTS: cannot read" in missing.stderr
    (tmp_path / "results.json").write_text("[1, 2]")
    foreign = inferfleet("profile", "fit", str(tmp_path / "results.json"))
    assert foreign.returncode == 2 and "not an inferfleet bench results.json" in foreign.stderr
    bad = inferfleet("profile", "fit", str(tmp_path / "results.json"), "--batching", "dynamic")
    assert bad.returncode == 2 and "--batching" in bad.stderr


def test_a_requests_csv_in_another_encoding_is_named_not_a_traceback(tmp_path: Path) -> None:
    from inferfleet.cli.errors import UserError
    from inferfleet.cli.sizing.fit import REQUEST_COLUMNS, read_requests_csv

    requests = tmp_path / "requests.csv"
    requests.write_text(",".join(sorted(REQUEST_COLUMNS)) + "\n", encoding="utf-16")
    with pytest.raises(UserError, match=r"--requests: .* is not UTF-8 text; give the requests.csv"):
        read_requests_csv(requests, flag="--requests", needed=REQUEST_COLUMNS)


def test_a_requests_csv_too_large_to_hold_is_refused_before_it_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from inferfleet.cli.errors import UserError
    from inferfleet.cli.sizing import fit

    requests = tmp_path / "requests.csv"
    requests.write_text(",".join(sorted(fit.REQUEST_COLUMNS)) + "\n" + "x" * 2048)
    monkeypatch.setattr(fit, "MAX_REQUESTS_CSV_BYTES", 1024)
    with pytest.raises(UserError, match=r"--requests: .* its rows are read whole, up to 0 MiB"):
        fit.read_requests_csv(requests, flag="--requests", needed=fit.REQUEST_COLUMNS)


def test_fit_never_writes_over_its_own_input_or_another_file(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    results.write_text('{"steps": []}\n')
    done = inferfleet("profile", "fit", str(results), "--out", str(results))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "holds something other than a server profile" in done.stderr
    assert results.read_text() == '{"steps": []}\n'
