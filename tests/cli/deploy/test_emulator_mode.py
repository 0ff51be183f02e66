"""Emulator mode leaves out exactly the documented resources and changes nothing else."""

import json
from collections import Counter
from pathlib import Path

import pytest
from fleet_documents import fleet_document, new_vpc_region

from inferfleet.cli.synth import use_bundled_node
from inferfleet.infra.plan import build_plan
from inferfleet.infra.spec import FleetSpec

pytestmark = pytest.mark.slow

LEFT_OUT = Counter(
    {
        "Custom::VpcRestrictDefaultSG": 1,
        "AWS::Lambda::Function": 1,  # the custom resource's provider
        "AWS::IAM::Role": 1,  # and its role
        "AWS::CloudWatch::Alarm": 3,
        "AWS::CloudWatch::Dashboard": 1,
        "AWS::ApplicationAutoScaling::ScalingPolicy": 1,
    }
)


def _template(spec: FleetSpec, outdir: Path, *, emulator: bool) -> dict:
    from inferfleet.infra.app import build_app

    plan = build_plan(spec, emulator=emulator)
    build_app(plan, outdir=str(outdir), regions=["us-east-1"]).synth()
    return json.loads((outdir / f"{spec.name}-us-east-1.template.json").read_text())


def test_emulator_mode_leaves_out_only_what_moto_cannot_run(tmp_path: Path):
    use_bundled_node()
    spec = FleetSpec.model_validate(fleet_document("emulated", [new_vpc_region("us-east-1")]))
    real = _template(spec, tmp_path / "real", emulator=False)["Resources"]
    emulated = _template(spec, tmp_path / "emulated", emulator=True)["Resources"]

    left_out = set(real) - set(emulated)
    assert set(emulated) <= set(real)
    assert Counter(real[name]["Type"] for name in left_out) == LEFT_OUT
    changed = {name for name in emulated if emulated[name] != real[name]}
    assert {real[name]["Type"] for name in changed} == {"AWS::KMS::Key"}
    for name in changed:
        assert "Tags" in real[name]["Properties"]
        without_tags = {k: v for k, v in real[name]["Properties"].items() if k != "Tags"}
        assert emulated[name]["Properties"] == without_tags
