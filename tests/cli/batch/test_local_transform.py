"""``batch run --local``'s engine: Batch Transform's feeding of the real pair scorer."""

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inferfleet.cli.batch.local_scorer import LocalPairScorer, ScorerOptions, default_model_dir
from inferfleet.cli.batch.local_transform import (
    Progress,
    TransformError,
    TransformLimits,
    mini_batches,
    output_path,
    run_transform,
)
from inferfleet.cli.errors import UserError
from inferfleet.cli.output_folder import MARKER, claim


def _write(path: Path, records: list[dict], blank_every: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        for number, record in enumerate(records, start=1):
            handle.write(json.dumps(record) + "\n")
            if blank_every and number % blank_every == 0:
                handle.write("\n")


def _records(prefix: str, count: int) -> list[dict]:
    return [
        {"id": f"{prefix}-{n}", "left": f"blue mug {n}", "right": "blue mug", "n": n}
        for n in range(count)
    ]


def test_mini_batches_pack_consecutive_records_up_to_the_payload(tmp_path: Path) -> None:
    source = tmp_path / "a.jsonl"
    _write(source, _records("a", 7), blank_every=3)
    size = len(json.dumps(_records("a", 1)[0])) + 1
    batches = list(mini_batches(source, "a.jsonl", max_payload_bytes=3 * size))
    assert [len(batch.ids) for batch in batches] == [3, 3, 1]
    assert [batch.lines for batch in batches] == [(1, 2, 3), (5, 6, 7), (9,)]  # blanks skipped
    assert all(len(batch.body) <= 3 * size for batch in batches)
    assert [i for batch in batches for i in batch.ids] == [f"a-{n}" for n in range(7)]


def test_a_record_larger_than_a_mini_batch_is_refused_with_its_file_and_line(
    tmp_path: Path,
) -> None:
    source = tmp_path / "a.jsonl"
    _write(source, [*_records("a", 2), {"id": "big", "left": "x" * 500, "right": "y"}])
    with pytest.raises(TransformError, match=r"a.jsonl:3: the record is 5\d\d bytes") as caught:
        list(mini_batches(source, "a.jsonl", max_payload_bytes=200))
    assert caught.value.exit_code == 2


@pytest.mark.parametrize(
    ("line", "message"),
    [("not json", r"x/b.jsonl:2: not a JSON object"), ('{"left": "a"}', r"needs an 'id'")],
)
def test_a_line_without_an_id_is_refused_before_anything_is_sent(
    tmp_path: Path, line: str, message: str
) -> None:
    (tmp_path / "in" / "x").mkdir(parents=True)
    (tmp_path / "in" / "x" / "b.jsonl").write_text('{"id": 1, "left": "a", "right": "b"}\n' + line)
    sent = []
    with pytest.raises(TransformError, match=message):
        run_transform(tmp_path / "in", tmp_path / "out", sent.append, TransformLimits(10**6, 1, 0))
    assert sent == []
    assert [path.name for path in (tmp_path / "out").rglob("*.*")] == [MARKER]


@pytest.mark.parametrize("inside", ["in", "in/results"])
def test_an_output_folder_inside_the_input_is_refused(tmp_path: Path, inside: str) -> None:
    (tmp_path / "in").mkdir()
    with pytest.raises(TransformError, match="inside --input") as caught:
        run_transform(tmp_path / "in", tmp_path / inside, bytes, TransformLimits(100, 1, 0))
    assert caught.value.exit_code == 2


@pytest.mark.parametrize("theirs", ["a.jsonl.out", "notes.txt", "another command's folder"])
def test_an_output_folder_holding_what_the_command_did_not_write_is_refused_untouched(
    tmp_path: Path, theirs: str
) -> None:
    """Their own ``a.jsonl.out`` would be replaced by the run, the rest left mixed in."""
    _write(tmp_path / "in" / "a.jsonl", _records("a", 2))
    out = tmp_path / "out"
    if theirs == "another command's folder":
        claim(out, flag="--out", writer="inferfleet bench")
    else:
        out.mkdir()
        (out / theirs).write_text("mine\n")
    before = {path: path.read_bytes() for path in out.iterdir()}
    sent = []
    with pytest.raises(UserError, match=r"--output .*out: the folder was (not )?written by"):
        run_transform(tmp_path / "in", out, sent.append, TransformLimits(10**6, 1, 0))
    assert sent == []
    assert {path: path.read_bytes() for path in out.iterdir()} == before


def test_an_output_path_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "out").write_text("mine\n")
    with pytest.raises(UserError, match="is a file, not a folder"):
        run_transform(tmp_path / "in", tmp_path / "out", bytes, TransformLimits(100, 1, 0))
    assert (tmp_path / "out").read_text() == "mine\n"


def test_a_missing_input_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TransformError, match=r"--input .*: no such folder"):
        run_transform(tmp_path / "nope", tmp_path / "out", bytes, TransformLimits(100, 1, 0))


@pytest.fixture(scope="module")
def scorer(trace_cache: Path) -> Iterator[LocalPairScorer]:
    """The image's scorer with one copy and one small bucket; its graphs cached in tmp."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(trace_cache))
        with LocalPairScorer(ScorerOptions(default_model_dir(), copies=1, buckets="16")) as running:
            yield running


def _outputs(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


file_sizes = st.lists(st.integers(min_value=0, max_value=12), min_size=1, max_size=4)


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sizes=file_sizes,
    records_per_batch=st.integers(min_value=1, max_value=6),
    concurrency=st.integers(min_value=1, max_value=3),
    interrupt_at=st.integers(min_value=0, max_value=12),
)
def test_every_record_gets_exactly_one_output_across_an_interrupted_run(
    scorer: LocalPairScorer,
    sizes: list[int],
    records_per_batch: int,
    concurrency: int,
    interrupt_at: int,
) -> None:
    """Ctrl-C after ``interrupt_at`` written mini-batches (0: never), then run again."""
    with tempfile.TemporaryDirectory() as scratch:
        source, target = Path(scratch) / "in", Path(scratch) / "out"
        expected = {}
        for index, size in enumerate(sizes):
            relative = Path(f"part-{index}.jsonl") if index % 2 else Path(f"d/{index}.jsonl")
            records = _records(f"f{index}", size)
            _write(source / relative, records, blank_every=4)
            expected[relative] = [record["id"] for record in records]
        record_bytes = max(len(json.dumps(r)) + 1 for r in _records("f9", 12))
        limits = TransformLimits(record_bytes * records_per_batch, concurrency, 0)
        written = []

        def interrupt(progress: Progress) -> None:
            if not progress.skipped:
                written.append(progress)
            if interrupt_at and len(written) == interrupt_at:
                raise KeyboardInterrupt

        first = run_transform(source, target, scorer.invoke, limits, interrupt)
        assert not list(target.rglob("*.partial"))
        finished = {Path(result.input) for result in first.files}
        for relative, ids in expected.items():
            out = output_path(target, relative)
            assert out.exists() == (relative in finished)
            if out.exists():
                assert [line["id"] for line in _outputs(out)] == ids
        before = {relative: output_path(target, relative).read_bytes() for relative in finished}

        second = run_transform(source, target, scorer.invoke, limits)
        assert not second.interrupted
        assert {Path(r.input) for r in second.files if r.skipped} == finished
        for relative, ids in expected.items():
            out = output_path(target, relative)
            lines = _outputs(out)
            assert [line["id"] for line in lines] == ids
            assert [line["n"] for line in lines] == list(range(len(ids)))  # carried through
            assert all(0.0 <= line["score"] <= 1.0 for line in lines)
            if relative in before:
                assert out.read_bytes() == before[relative]
        assert sorted(p.relative_to(target) for p in target.rglob("*") if p.is_file()) == sorted(
            [Path(MARKER)] + [output_path(Path(), relative) for relative in expected]
        )


@pytest.mark.slow
def test_a_record_the_scorer_refuses_is_reported_with_its_file_and_line(
    scorer: LocalPairScorer, tmp_path: Path
) -> None:
    records = _records("a", 5)
    records[3]["left"] = 7  # the fourth record: line 5, after one blank line
    _write(tmp_path / "in" / "a.jsonl", records, blank_every=2)
    with pytest.raises(TransformError, match=r"^a.jsonl:5: 'left' must be a string$") as caught:
        run_transform(
            tmp_path / "in", tmp_path / "out", scorer.invoke, TransformLimits(10**6, 2, 3)
        )
    assert caught.value.exit_code == 2
    assert [path.name for path in (tmp_path / "out").rglob("*.*")] == [MARKER]


@pytest.mark.slow
def test_transient_failures_are_retried_and_a_short_answer_fails_the_file(
    scorer: LocalPairScorer, tmp_path: Path
) -> None:
    _write(tmp_path / "in" / "a.jsonl", _records("a", 4))
    calls = []

    def flaky(body: bytes) -> bytes:
        calls.append(body)
        if len(calls) == 1:
            raise ConnectionResetError("the scorer restarted")
        return scorer.invoke(body)

    report = run_transform(tmp_path / "in", tmp_path / "out", flaky, TransformLimits(10**6, 1, 1))
    assert len(calls) == 2 and report.records_scored == 4
    assert len(_outputs(tmp_path / "out" / "a.jsonl.out")) == 4

    def drops_a_line(body: bytes) -> bytes:
        return b"\n".join(scorer.invoke(body).splitlines()[:-1])

    _write(tmp_path / "in" / "b.jsonl", _records("b", 3))
    with pytest.raises(TransformError, match="answered 2 lines for the 3 records") as caught:
        run_transform(tmp_path / "in", tmp_path / "out", drops_a_line, TransformLimits(10**6, 1, 0))
    assert caught.value.exit_code == 1
    assert not (tmp_path / "out" / "b.jsonl.out").exists()
    assert (tmp_path / "out" / "a.jsonl.out").exists()  # finished before, skipped now
