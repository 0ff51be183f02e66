"""Every handler, fed foreign and malformed events (hypothesis), against moto.

Events are random JSON, or real events (an S3 upload, a stream batch, a state change, the
schedule's input) with parts deleted, replaced or retyped. A handler logs and skips what is
not its own and never raises on it, and an upload delivered next to garbage is still
registered.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
from finetune_world import FakeLambdaContext, FinetuneWorld, lambda_stream_event
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inferfleet.constructs.finetune_handlers import launcher, publisher, register
from inferfleet.constructs.finetune_handlers.jobs import JobStore
from inferfleet.constructs.finetune_handlers.schema import JobStatus

pytestmark = pytest.mark.slow

FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


def _paths(value: Any, path: tuple = ()) -> Iterator[tuple]:
    """The path of every part of ``value`` below its root."""
    if isinstance(value, dict | list):
        for key, child in value.items() if isinstance(value, dict) else enumerate(value):
            yield (*path, key)
            yield from _paths(child, (*path, key))


def _mutate(value: Any, path: tuple, replacement: Any, delete: bool) -> Any:
    mutated = copy.deepcopy(value)
    parent = mutated
    for key in path[:-1]:
        parent = parent[key]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = replacement
    return mutated


def spoiled(data: st.DataObject, event: Any) -> Any:
    """``event`` with one to three parts deleted, replaced by random JSON, or made a string."""
    for _ in range(data.draw(st.integers(1, 3))):
        paths = list(_paths(event))
        if not paths:
            return data.draw(json_values)
        path = data.draw(st.sampled_from(paths))
        how = data.draw(st.sampled_from(["delete", "replace", "stringify"]))
        replacement = data.draw(json_values) if how == "replace" else None
        if how == "stringify":
            parent = event
            for key in path:
                parent = parent[key]
            replacement = json.dumps(parent)
        event = _mutate(event, path, replacement, delete=how == "delete")
    return event


def _store(world: FinetuneWorld) -> JobStore:
    return JobStore(world.client("dynamodb"), world.jobs_table, world.models_table)


@FUZZ
@given(data=st.data())
def test_register_skips_what_is_not_an_upload_and_never_loses_one(
    world: FinetuneWorld, data: st.DataObject
) -> None:
    job_id, upload = world.upload("ann")
    event = spoiled(data, upload) if data.draw(st.booleans()) else data.draw(json_values)

    register.handler(event, FakeLambdaContext())
    # The same upload, delivered next to a spoiled record.
    garbage = spoiled(data, upload["Records"][0])
    register.handler({"Records": [garbage, *upload["Records"]]}, FakeLambdaContext())

    assert _store(world).get("ann", job_id) is not None, "the upload was lost"


@FUZZ
@given(data=st.data())
def test_the_launcher_skips_what_is_neither_a_stream_batch_nor_a_sweep(
    world: FinetuneWorld, data: st.DataObject
) -> None:
    reader = world.stream_reader()
    _, upload = world.upload("bea")
    register.handler(upload, FakeLambdaContext())
    new_record = reader.read()[-1:]  # this example's job; earlier examples' are read already
    real = data.draw(
        st.sampled_from(
            [lambda_stream_event(new_record), {"sweep": True}, {"source": "aws.events"}]
        )
    )
    event = spoiled(data, real) if data.draw(st.booleans()) else data.draw(json_values)

    launcher.handler(event, FakeLambdaContext())


@FUZZ
@given(data=st.data())
def test_the_publisher_skips_what_is_not_a_state_change_of_its_jobs(
    world: FinetuneWorld, data: st.DataObject
) -> None:
    job_id, upload = world.upload("cat")
    register.handler(upload, FakeLambdaContext())
    launcher.handler({"sweep": True}, FakeLambdaContext())
    name = _store(world).get("cat", job_id).training_job_name
    real = data.draw(st.sampled_from([world.training_job_event(name), {"reconcile": True}]))
    event = spoiled(data, real) if data.draw(st.booleans()) else data.draw(json_values)

    publisher.handler(event, FakeLambdaContext())

    # Whatever the event did, no job is left holding a slot it cannot give back: the ended
    # ones are terminal and the counter counts the rest.
    training = _store(world).with_status(JobStatus.TRAINING)
    assert _store(world).running_count() == len({job.training_job_name for job in training})
