"""The dated price table: shipped for the fleet's instance types, replaceable by a file."""

from __future__ import annotations

from pathlib import Path

import pytest

from inferfleet.cli.errors import UserError
from inferfleet.cli.sizing.prices import load_prices
from inferfleet.constructs.neuron_instances import NEURON_INSTANCE_TYPES


def test_the_shipped_table_is_dated_and_prices_every_instance_type_but_trn2() -> None:
    table = load_prices()
    assert table.date and table.region == "us-east-1"
    priced = {name for name in NEURON_INSTANCE_TYPES if table.per_hour(name) is not None}
    assert priced == set(NEURON_INSTANCE_TYPES) - {"trn2.48xlarge"}
    assert all(entry.source for entry in table.instances.values())
    # Bigger instances of a family cost more.
    assert table.per_hour("inf2.xlarge") < table.per_hour("inf2.48xlarge")


def test_a_price_file_replaces_the_table(tmp_path: Path) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text(
        "date: '2026-12-01'\nregion: eu-west-1\n"
        "instances:\n  inf2.48xlarge: {price: 14.2, source: negotiated}\n"
    )
    table = load_prices(prices)
    assert table.region == "eu-west-1" and table.per_hour("inf2.48xlarge") == 14.2
    assert table.per_hour("trn1.32xlarge") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "date: x\nregion: r\ninstances: {inf2.xlarge: {price: -1, source: s}}\n",
            "instances.inf2.xlarge.price",
        ),
        ("region: r\ninstances: {}\n", "date"),
        ("instances: [\n", "not YAML"),
    ],
)
def test_a_bad_price_file_names_the_field(tmp_path: Path, text: str, message: str) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text(text)
    with pytest.raises(UserError, match=message):
        load_prices(prices)
