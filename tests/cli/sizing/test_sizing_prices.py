"""The dated price table: shipped for the fleet's instance types, replaceable by a file."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from inferfleet.cli.errors import UserError
from inferfleet.cli.sizing.prices import PriceLookup, load_prices
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


def _product(instance_type: str, region: str, usd: str) -> str:
    """One GetProducts PriceList entry, shaped as the Pricing API returns it."""
    return json.dumps({
        "product": {"productFamily": "Compute Instance",
                    "attributes": {"instanceType": instance_type, "regionCode": region}},
        "serviceCode": "AmazonEC2",
        "terms": {"OnDemand": {"ABC.JRTCKXETXF": {
            "priceDimensions": {"ABC.JRTCKXETXF.6YS6EN2CT7": {
                "unit": "Hrs", "pricePerUnit": {"USD": usd},
                "description": f"${usd} per On Demand Linux {instance_type} Instance Hour"}},
            "sku": "ABC", "effectiveDate": "2026-11-01T00:00:00Z"}}},
    })  # fmt: skip


class StubbedAccess:
    """What fetch_prices needs of AwsAccess: a client, here one whose answers are stubbed."""

    def __init__(self) -> None:
        self.pricing = boto3.client(
            "pricing", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y"
        )

    def client(self, service: str, region: str) -> object:
        assert (service, region) == ("pricing", "us-east-1")
        return self.pricing


def test_prices_refresh_from_the_pricing_api_per_region() -> None:
    access = StubbedAccess()
    with Stubber(access.pricing) as stub:
        for region, usd in (("eu-west-1", "14.1100"), ("us-east-1", "12.9813")):
            stub.add_response(
                "get_products",
                {"PriceList": [_product("inf2.48xlarge", region, usd)], "FormatVersion": "aws_v1"},
                {
                    "ServiceCode": "AmazonEC2",
                    "Filters": [
                        {"Type": "TERM_MATCH", "Field": field, "Value": value}
                        for field, value in (
                            ("instanceType", "inf2.48xlarge"), ("regionCode", region),
                            ("operatingSystem", "Linux"), ("tenancy", "Shared"),
                            ("preInstalledSw", "NA"), ("capacitystatus", "Used"),
                        )
                    ],
                    "MaxResults": 10,
                },
            )  # fmt: skip
        price = PriceLookup(load_prices(), access)
        assert price("eu-west-1", "inf2.48xlarge") == 14.11
        assert price("us-east-1", "inf2.48xlarge") == 12.9813
        # Asked once: a second lookup needs no answer of its own.
        assert price("eu-west-1", "inf2.48xlarge") == 14.11
        stub.assert_no_pending_responses()
    assert price.describe()["source"] == "AWS Pricing API"


def test_a_refused_pricing_call_is_a_clear_failure() -> None:
    access = StubbedAccess()
    with Stubber(access.pricing) as stub:
        stub.add_client_error("get_products", "AccessDeniedException", "not allowed")
        with pytest.raises(UserError, match="pricing:GetProducts") as refused:
            PriceLookup(load_prices(), access)("us-east-1", "inf2.48xlarge")
    assert refused.value.exit_code == 1
