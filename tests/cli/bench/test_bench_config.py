"""Config parsing: distributions, comparisons, flag-naming errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from inferfleet.cli.bench.config import (
    BenchConfig,
    Distribution,
    describe_validation_error,
    parse_compare,
)
from inferfleet.constructs.routing import Routing


def config_error(**fields: object) -> str:
    with pytest.raises(ValidationError) as caught:
        BenchConfig.model_validate(fields)
    return describe_validation_error(caught.value)


BASE = {"target": "http://127.0.0.1:1", "users": "4", "duration": 1}


def test_fixed_count_is_exact() -> None:
    assert Distribution.parse("128").sample(np.random.default_rng(1), 5).tolist() == [128] * 5


@given(low=st.integers(1, 500), width=st.integers(0, 500), seed=st.integers(0, 2**32))
def test_uniform_stays_within_bounds_inclusive(low: int, width: int, seed: int) -> None:
    drawn = Distribution.parse(f"uniform:{low}:{low + width}").sample(
        np.random.default_rng(seed), 200
    )
    assert drawn.min() >= low
    assert drawn.max() <= low + width


def test_lognormal_median_matches_and_never_below_one() -> None:
    drawn = Distribution.parse("lognormal:200:0.8").sample(np.random.default_rng(3), 20_000)
    assert abs(np.median(drawn) - 200) < 8
    assert drawn.min() >= 1
    assert str(Distribution.parse("lognormal:200:0.8")) == "lognormal:200:0.8"


@pytest.mark.parametrize(
    "text", ["0", "-3", "abc", "uniform:5", "uniform:9:2", "uniform:1.5:3", "lognormal:0:1",
             "normal:3:1", "lognormal:10:-1", ""],
)  # fmt: skip
def test_bad_distributions_name_the_flag_and_the_forms(text: str) -> None:
    message = config_error(**BASE, output_tokens=text)
    assert message.startswith("--output-tokens: ")
    assert "uniform:MIN:MAX" in message


def test_compare_parses_variants_in_order() -> None:
    variants = parse_compare("routing=random,least_outstanding_requests")
    assert [variant.name for variant in variants] == [
        "routing=random",
        "routing=least_outstanding_requests",
    ]
    # One vocabulary with the fleet file and the constructs: their aliases too.
    aliased = parse_compare("routing=least_conn,weighted_random")
    assert [variant.value for variant in aliased] == [
        Routing.LEAST_OUTSTANDING_REQUESTS,
        Routing.RANDOM,
    ]
    with pytest.raises(ValueError, match="distinct"):
        parse_compare("routing=random,weighted_random")


@pytest.mark.parametrize(
    "text", ["routing=random", "routing=random,random", "routing=random,fastest", "weights=1,2"]
)
def test_bad_compare_is_rejected(text: str) -> None:
    message = config_error(**{**BASE, "compare": text, "local": True, "target": None})
    assert message.startswith("--compare: ")


@pytest.mark.parametrize(
    ("fields", "flag", "phrase"),
    [
        ({"users": "0"}, "--users", "at least one user"),
        ({"users": "4,x"}, "--users", "comma-separated"),
        ({"users": [], "rate": "0"}, "--rate", "above 0"),
        ({"users": []}, "--users", "--rate"),
        ({"rate": "3"}, "--rate", "exclusive"),
        ({"requests": 5}, "--duration", "not both"),
        ({"target": None}, "--target", "--local"),
        ({"target": "localhost:8000"}, "--target", "http"),
        ({"compare": "routing=random,round_robin"}, "--compare", "--target-group-arn"),
        ({"workers": 8}, "--workers", "users"),
        ({"repeat": 0}, "--repeat", "greater than or equal"),
        ({"api": "grpc"}, "--api", "openai"),
    ],
)
def test_incoherent_flags_are_named(fields: dict, flag: str, phrase: str) -> None:
    message = config_error(**{**BASE, **fields})
    assert message.startswith(f"{flag}: "), message
    assert phrase in message


def test_steps_default_to_thirty_seconds() -> None:
    assert BenchConfig.model_validate({**BASE, "duration": None}).duration == 30.0
    by_count = BenchConfig.model_validate({**BASE, "duration": None, "requests": 9})
    assert (by_count.duration, by_count.requests) == (None, 9)


def test_local_fleet_counts_its_servers_as_instances() -> None:
    config = BenchConfig.model_validate({**BASE, "target": None, "local": True, "servers": 7})
    assert config.instance_count == 7
    assert config.loads == [4.0]
    assert not config.open_loop


def test_a_ramp_spaces_the_users_of_each_step() -> None:
    config = BenchConfig.model_validate({**BASE, "users": "4,8", "ramp_up": "2s"})
    assert (config.start_spacing(4), config.start_spacing(8)) == (0.5, 0.25)
    staggered = BenchConfig.model_validate({**BASE, "stagger": "10ms"})
    assert staggered.start_spacing(4) == pytest.approx(0.01)
    assert BenchConfig.model_validate({**BASE, "ramp_up": "1.5m"}).ramp_up == 90.0
