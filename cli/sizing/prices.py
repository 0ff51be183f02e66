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
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise UserError(f"{flag}: cannot read {path} ({error.strerror})") from None
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
