"""The CDK app: one stack per region of the fleet file.

``cdk synth`` runs this module (see cdk.json; the fleet file comes from the
``config`` context key), and ``inferfleet synth`` calls :func:`build_app` in
process, so both give the same templates.
"""

import json
from pathlib import Path
from typing import Any

from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks

from inferfleet.infra.feature_flags import cdk_feature_flags
from inferfleet.infra.regional_stack import RegionalStack
from inferfleet.infra.spec import FleetSpec, load_fleet_spec

# Context key that turns on emulator mode (see RegionalStack); `-c inferfleet:emulator=true`.
EMULATOR_CONTEXT_KEY = "inferfleet:emulator"


def build_app(
    spec: FleetSpec,
    *,
    outdir: str | None = None,
    config_dir: Path = Path("."),
    regions: list[str] | None = None,
    emulator: bool = False,
) -> App:
    """An App with the stacks of ``regions`` (default all) and the AwsSolutions checks.

    ``emulator`` leaves out what an AWS emulator cannot run (listed in regional_stack).
    """
    app = App(outdir=outdir, context=_context(spec, config_dir), analytics_reporting=False)
    Validations.of(app).add_plugins(AwsSolutionsChecks())
    for region in spec.regions:
        if regions is None or region.name in regions:
            RegionalStack(app, spec, region, config_dir=str(config_dir), emulator=emulator)
    return app


def _context(spec: FleetSpec, config_dir: Path) -> dict[str, Any]:
    # Path and asset metadata as the CDK CLI enables them, so both synth paths give
    # equal templates.
    context: dict[str, Any] = {
        **cdk_feature_flags(),
        "aws:cdk:enable-path-metadata": True,
        "aws:cdk:enable-asset-metadata": True,
    }
    # The CDK CLI passes cdk.context.json itself; in-process synth reads it here.
    recorded = config_dir / "cdk.context.json"
    if recorded.exists():
        context.update(json.loads(recorded.read_text()))
    # Zones given in the spec answer the lookup a stack with an account would make.
    for region in spec.regions:
        account = spec.account_of(region)
        zones = region.vpc.availability_zones if region.vpc else region.availability_zones
        if account and zones:
            context[f"availability-zones:account={account}:region={region.name}"] = zones
    return context


def main() -> None:
    probe = App()
    config = Path(probe.node.try_get_context("config") or "fleet.yaml")
    emulator = str(probe.node.try_get_context(EMULATOR_CONTEXT_KEY)).lower() == "true"
    app = build_app(load_fleet_spec(config), config_dir=config.parent, emulator=emulator)
    app.synth()


if __name__ == "__main__":
    main()
