"""On-demand instance prices: a dated table shipped as data, or the user's own file.

``data/prices.yaml`` (us-east-1, with its date and each price's source) is the
default; ``--prices FILE`` gives another of the same shape, e.g. for another region
or a negotiated rate.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from inferfleet.cli.errors import UserError
from inferfleet.cli.user_files import read_user_file

# A price table lists a few hundred instance types: a few KiB.
MAX_PRICES_BYTES = 1 * 2**20


class InstancePrice(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    price: float = Field(gt=0, le=10_000, description="USD per instance-hour.")
    source: str = Field(min_length=1, description="Where the price comes from.")


class PriceTable(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    date: str = Field(min_length=1, description="When the prices were read.")
    region: str = Field(min_length=1)
    currency: str = "USD"
    instances: dict[str, InstancePrice]

    def per_hour(self, instance_type: str) -> float | None:
        entry = self.instances.get(instance_type)
        return entry.price if entry else None


def load_prices(path: Path | None = None, *, flag: str = "--prices") -> PriceTable:
    """The shipped table, or ``path``; a bad file is a ``UserError`` naming the field."""
    if path is None:
        text = resources.files("inferfleet.cli.sizing").joinpath("data/prices.yaml").read_text()
        return PriceTable.model_validate(yaml.safe_load(text))
    content = read_user_file(path, flag=flag, what="a price table (YAML)", limit=MAX_PRICES_BYTES)
    try:
        document = yaml.safe_load(content.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise UserError(f"{flag} {path}: not UTF-8 ({error.reason}); fix the file") from None
    except yaml.YAMLError as error:
        raise UserError(f"{flag} {path}: not YAML ({error}); fix the file") from None
    try:
        return PriceTable.model_validate(document)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "file"
        raise UserError(
            f"{flag} {path}: {field}: {first['msg']}; write date, region and "
            "instances: {TYPE: {price: USD_PER_HOUR, source: ...}}"
        ) from None


# The Pricing API answers in a few regions only; us-east-1 lists every region's prices.
PRICING_API_REGION = "us-east-1"


class PriceLookup:
    """Price per hour of an instance type in a region: the table's, or with ``access`` (an
    :class:`inferfleet.cli.aws.AwsAccess`) today's from the AWS Pricing API, asked once each."""

    def __init__(self, table: PriceTable, access=None) -> None:  # type: ignore[no-untyped-def]
        self.table = table
        self.access = access
        self._fetched: dict[tuple[str, str], float | None] = {}

    def __call__(self, region: str, instance_type: str) -> float | None:
        if self.access is None:
            return self.table.per_hour(instance_type)
        key = (region, instance_type)
        if key not in self._fetched:
            self._fetched[key] = fetch_price(self.access, region, instance_type)
        return self._fetched[key]

    def describe(self) -> dict:
        if self.access is None:
            return {
                "date": self.table.date,
                "region": self.table.region,
                "currency": self.table.currency,
                "source": "shipped table",
            }
        from inferfleet.cli.bench.results import now_iso

        return {
            "date": now_iso(),
            "region": "each region's own",
            "currency": "USD",
            "source": "AWS Pricing API",
        }


def fetch_price(access, region: str, instance_type: str) -> float | None:  # type: ignore[no-untyped-def]
    """Today's on-demand Linux price of ``instance_type`` in ``region`` (AWS Pricing API)."""
    from botocore.exceptions import BotoCoreError, ClientError

    client = access.client("pricing", PRICING_API_REGION)
    try:
        answer = client.get_products(
            ServiceCode="AmazonEC2",
            Filters=[
                {"Type": "TERM_MATCH", "Field": field, "Value": value}
                for field, value in (
                    ("instanceType", instance_type),
                    ("regionCode", region),
                    ("operatingSystem", "Linux"),
                    ("tenancy", "Shared"),
                    ("preInstalledSw", "NA"),
                    ("capacitystatus", "Used"),
                )
            ],
            MaxResults=10,
        )
    except (BotoCoreError, ClientError) as error:
        raise UserError(
            f"--refresh-prices: the AWS Pricing API refused ({error}); check the credentials "
            "(pricing:GetProducts), or drop --refresh-prices to use the shipped table",
            exit_code=1,
        ) from None
    return _on_demand_price(answer.get("PriceList", []))


def _on_demand_price(price_list: list[str]) -> float | None:
    """The hourly USD price in a GetProducts answer (each entry a JSON document)."""
    import json

    for document in price_list:
        product = json.loads(document)
        for term in product.get("terms", {}).get("OnDemand", {}).values():
            for dimension in term.get("priceDimensions", {}).values():
                usd = dimension.get("pricePerUnit", {}).get("USD")
                if usd and float(usd) > 0 and dimension.get("unit") == "Hrs":
                    return float(usd)
    return None
