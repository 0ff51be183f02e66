"""The CDK app: one stack per region of a fleet plan, and the global stack of its traffic.

``cdk synth`` runs this module (see cdk.json; the fleet file comes from the ``config``
context key), and ``inferfleet synth`` calls :func:`build_app` in process, so both give the
same templates.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks

from inferfleet.infra import names
from inferfleet.infra.feature_flags import cdk_feature_flags
from inferfleet.infra.global_stack import GlobalStack
from inferfleet.infra.plan import FleetPlan, load_fleet_plan, zones_context_key
from inferfleet.infra.regional_stack import RegionalStack


def build_app(
    plan: FleetPlan,
    *,
    outdir: str | None = None,
    config_dir: Path = Path("."),
    regions: list[str] | None = None,
    nag: bool = True,
) -> App:
    """An App with the stacks of ``regions`` (default all, and then the global stack of a
    ``traffic`` section too) and, with ``nag``, the AwsSolutions checks."""
    app = App(outdir=outdir, context=_context(plan, config_dir), analytics_reporting=False)
    if nag:
        Validations.of(app).add_plugins(AwsSolutionsChecks())
    for region in plan.regions:
        if regions is None or region.region in regions:
            RegionalStack(app, region)
    if plan.global_plan is not None and regions is None:
        GlobalStack(app, plan.global_plan)
    return app


def _context(plan: FleetPlan, config_dir: Path) -> dict[str, Any]:
    # Path and asset metadata as the CDK CLI enables them, so both synth paths give
    # equal templates.
    context: dict[str, Any] = {
        **cdk_feature_flags(),
        "aws:cdk:enable-path-metadata": True,
        "aws:cdk:enable-asset-metadata": True,
    }
    # The CDK CLI passes cdk.context.json itself; in-process synth reads it here.
    recorded = config_dir / names.CONTEXT_FILE
    if recorded.exists():
        context.update(json.loads(recorded.read_text(encoding="utf-8")))
    # The plan's zones answer the lookup a stack with an account makes.
    for region in plan.regions:
        if region.account and region.availability_zones:
            context[zones_context_key(region.account, region.region)] = list(
                region.availability_zones
            )
    return context


def main() -> None:
    probe = App()
    config = Path(probe.node.try_get_context(names.CONFIG_CONTEXT_KEY) or "fleet.yaml")
    emulator = str(probe.node.try_get_context(names.EMULATOR_CONTEXT_KEY)).lower() == "true"
    plan = load_fleet_plan(config, emulator=emulator)
    build_app(plan, config_dir=config.parent).synth()


if __name__ == "__main__":
    main()
