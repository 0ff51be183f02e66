"""Steps become events: one JSON line each, failures included."""

import io
import json

import pytest
from rich.console import Console

from inferfleet.cli.deploy.events import Event, EventStream, JsonLinesSink, RichView, StepFailed


def _stream() -> tuple[EventStream, io.StringIO]:
    out = io.StringIO()
    return EventStream([JsonLinesSink(out)]), out


def test_each_step_is_one_json_line_with_its_fields():
    events, out = _stream()
    with events.step("deploy", region="us-east-1", stack="f-us-east-1") as step:
        step.outputs = {"ChatEndpoint": "http://lb"}
    with events.step("wait", region="us-east-1", stack="f-us-east-1") as step:
        step.skip("skipped: --no-wait")

    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(e["phase"], e["status"]) for e in lines] == [
        ("deploy", "succeeded"),
        ("wait", "skipped"),
    ]
    assert lines[0]["outputs"] == {"ChatEndpoint": "http://lb"}
    assert lines[0]["region"] == "us-east-1" and lines[0]["stack"] == "f-us-east-1"
    assert lines[0]["duration_s"] >= 0
    assert lines[1]["message"] == "skipped: --no-wait"


def test_a_failing_step_ends_with_its_event_and_stops_the_caller():
    events, out = _stream()
    with (
        pytest.raises(StepFailed, match="not bootstrapped"),
        events.step("preflight", region="eu-west-1"),
    ):
        raise StepFailed("not bootstrapped")
    (line,) = [json.loads(line) for line in out.getvalue().splitlines()]
    assert (line["phase"], line["status"], line["message"]) == (
        "preflight",
        "failed",
        "not bootstrapped",
    )


def test_an_unexpected_error_is_reported_as_the_steps_failure():
    events, out = _stream()
    with (
        pytest.raises(StepFailed, match="KeyError: 'ClusterName'"),
        events.step("wait", region="us-east-1"),
    ):
        raise KeyError("ClusterName")
    assert json.loads(out.getvalue())["status"] == "failed"


def test_the_rich_view_prints_a_line_per_step_and_only_a_successful_summary():
    out = io.StringIO()
    view = RichView(Console(file=out, width=200, no_color=True))
    events = EventStream([view])
    with events.step("deploy", region="us-east-1") as step:
        events.progress("12/57 resources")
    with events.step("smoke", region="us-east-1") as step:
        step.skip("skipped: --no-wait")
    events.emit(Event("summary", "succeeded", message="deploy finished: us-east-1"))
    events.emit(Event("summary", "failed", message="deploy stopped at us-west-2"))

    lines = out.getvalue().splitlines()
    assert lines[0].startswith("✓ deploy us-east-1 (")
    assert lines[1].startswith("- smoke us-east-1 (") and "skipped: --no-wait" in lines[1]
    assert lines[2:] == ["deploy finished: us-east-1"]


def test_ctrl_c_ends_the_stream_with_the_interrupted_step():
    events, out = _stream()
    with pytest.raises(KeyboardInterrupt), events.step("deploy", region="us-east-1"):
        raise KeyboardInterrupt
    line = json.loads(out.getvalue())
    assert (line["phase"], line["status"]) == ("deploy", "failed")
    assert line["message"].startswith("interrupted; an operation CloudFormation already started")
