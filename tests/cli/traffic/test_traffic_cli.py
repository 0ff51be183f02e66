"""``inferfleet traffic status|drain|undrain|pin`` against moto's server, and a real controller
period reading what the commands wrote."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import boto3
import pytest
from moto_server import MotoServer, moto, moto_server  # noqa: F401
from traffic_world import REGIONS, TrafficWorld, make_world

from inferfleet.cli.main import main
from inferfleet.constructs.traffic_controller import handler as controller_handler
from inferfleet.constructs.traffic_controller.config import parameter_names

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parents[3] / "infra" / "example_fleet.yaml"
OVERRIDES, STATE = parameter_names("shopping-assistant")


@pytest.fixture
def fleet_file(tmp_path: Path) -> Path:
    path = tmp_path / "fleet.yaml"
    shutil.copy(EXAMPLE, path)
    shutil.copy(EXAMPLE.parents[1] / "cdk.context.json", tmp_path / "cdk.context.json")
    return path


@pytest.fixture
def world(moto: MotoServer) -> TrafficWorld:  # noqa: F811
    made = make_world()
    yield made
    controller_handler.client.cache_clear()


def traffic(
    moto: MotoServer,  # noqa: F811
    fleet_file: Path,
    capsys: pytest.CaptureFixture[str],
    *args: str,
) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(["traffic", *args, "--config", str(fleet_file), "--endpoint-url", moto.url])
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


def overrides_stored() -> dict:
    value = boto3.client("ssm").get_parameter(Name=OVERRIDES)["Parameter"]["Value"]
    return json.loads(value)


def test_drain_is_written_read_by_the_controller_and_shown_by_status(
    world: TrafficWorld,
    moto: MotoServer,  # noqa: F811
    fleet_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = traffic(moto, fleet_file, capsys, "status", "--json")
    assert code == 0 and json.loads(out)["controller_ran"] is False

    code, out, err = traffic(
        moto, fleet_file, capsys, "drain", "us-west-2", "--for", "45m", "--reason", "patching",
        "--json",
    )  # fmt: skip
    assert code == 0, err
    written = json.loads(out)
    assert written["override"]["action"] == "drain" and written["parameter"] == OVERRIDES
    stored = overrides_stored()["regions"]["us-west-2"]
    assert stored["action"] == "drain" and stored["reason"] == "patching"
    assert 44 * 60 < stored["expires_at"] - stored["set_at"] <= 45 * 60

    # The controller's next period reads it (at the fixture's clock, inside the 45 minutes).
    world.percentiles.p99 = dict.fromkeys(REGIONS, 0.3)
    for region in REGIONS:
        world.percentiles.install(region)
        world.put(region, healthy=10)
    world.run()
    assert world.weights()["us-west-2"] == 0

    code, out, _ = traffic(moto, fleet_file, capsys, "status", "--json")
    report = json.loads(out)
    west = report["services"]["assistant"]["regions"]["us-west-2"]
    assert (west["weight"], west["status"], west["override"]["action"]) == (0, "drained", "drain")
    assert west["inputs"]["healthy_hosts"] == 10 and "patching" in west["reason"]
    code, out, _ = traffic(moto, fleet_file, capsys, "status")
    assert code == 0 and "us-west-2" in out and "drained" in out

    code, out, _ = traffic(moto, fleet_file, capsys, "undrain", "us-west-2")
    assert code == 0 and "override removed" in out
    assert "us-west-2" not in overrides_stored()["regions"]


def test_a_drain_that_would_leave_no_region_is_refused_and_nothing_is_written(
    moto: MotoServer,  # noqa: F811
    fleet_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert traffic(moto, fleet_file, capsys, "drain", "us-east-1")[0] == 0
    assert traffic(moto, fleet_file, capsys, "pin", "us-west-2", "0", "--for", "2h")[0] == 0
    before = overrides_stored()
    code, _, err = traffic(moto, fleet_file, capsys, "drain", "eu-west-1")
    assert code == 2
    assert "no region taking traffic" in err and "undrain another region first" in err
    assert overrides_stored() == before
    # Only one service drained everywhere is refused the same way.
    code, _, err = traffic(moto, fleet_file, capsys, "drain", "eu-west-1", "--service", "intent")
    assert code == 2 and "intent" in err


def test_pins_past_the_total_are_refused(
    moto: MotoServer,  # noqa: F811
    fleet_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert traffic(moto, fleet_file, capsys, "pin", "eu-west-1", "60")[0] == 0
    code, _, err = traffic(moto, fleet_file, capsys, "pin", "us-east-1", "50")
    assert code == 2 and "add up to 110" in err
    code, out, _ = traffic(moto, fleet_file, capsys, "pin", "us-east-1", "40", "--json")
    assert code == 0 and json.loads(out)["override"]["weight"] == 40


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["drain", "ap-south-1"], "REGION: ap-south-1 is not a region of fleet"),
        (["drain", "us-east-1", "--for", "forever"], "--for: 'forever' is not a duration"),
        (["drain", "us-east-1", "--for", "30d"], "outside 1m..7d"),
        (["pin", "us-east-1", "140"], "WEIGHT: 140 is outside 0..100"),
        (["drain", "us-east-1", "--service", "chat"], "--service: chat is not a service"),
    ],
)
def test_bad_arguments_exit_2_with_the_fix(
    args: list[str],
    message: str,
    moto: MotoServer,  # noqa: F811
    fleet_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = traffic(moto, fleet_file, capsys, *args)
    assert code == 2 and message in err and "Traceback" not in err


def test_a_fleet_without_a_traffic_section_has_nothing_to_steer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    document = yaml.safe_load(EXAMPLE.read_text())
    del document["traffic"]
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(document))
    shutil.copy(EXAMPLE.parents[1] / "cdk.context.json", tmp_path / "cdk.context.json")
    with pytest.raises(SystemExit) as exited:
        main(["traffic", "drain", "us-east-1", "--config", str(path)])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and "has no traffic section" in err and "Traceback" not in err


def test_the_cli_reads_its_home_region_and_parameters_from_the_plan(fleet_file: Path) -> None:
    from inferfleet.cli.commands.traffic import _target
    from inferfleet.infra.plan import load_fleet_plan

    text = fleet_file.read_text().replace("  step: 20", "  step: 20\n  home_region: eu-west-1")
    fleet_file.write_text(text)
    glob = load_fleet_plan(fleet_file).global_plan
    target = _target(fleet_file, None, None, None)
    assert target.home_region == glob.region == "eu-west-1"
    assert (target.override_parameter, target.state_parameter) == glob.props.parameters
    assert target.services == ("assistant", "intent")
