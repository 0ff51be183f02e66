"""``inferfleet synth --out``: what it replaces, what it refuses, and how failures read."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from fleet_documents import fleet_document, new_vpc_region

from inferfleet.cli.errors import UserError
from inferfleet.cli.main import main
from inferfleet.cli.output_folder import MARKER, replace, staging_folder
from inferfleet.cli.synth import (
    ACKNOWLEDGED_RULES,
    OUT_FLAG,
    WRITER,
    _acknowledgments,
    synthesize,
)
from inferfleet.infra.plan import draft_plan
from inferfleet.infra.spec import FleetSpec

REPO_ROOT = Path(__file__).resolve().parents[2]
INFERFLEET = Path(sys.executable).with_name("inferfleet")
SMALL_FLEET = fleet_document("small", [new_vpc_region("us-east-1")])


def run(capsys, *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


def project(tmp_path: Path) -> Path:
    """A project folder as a user has one: the fleet file, own files, a git folder."""
    folder = tmp_path / "project"
    (folder / ".git").mkdir(parents=True)
    (folder / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (folder / "notes.md").write_text("mine")
    (folder / "fleet.yaml").write_text(yaml.safe_dump(SMALL_FLEET, sort_keys=False))
    return folder


def snapshot(folder: Path) -> dict[str, str]:
    return {
        path.relative_to(folder).as_posix(): path.read_text()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def previous_assembly(folder: Path) -> None:
    """What an earlier `inferfleet synth` left: a marked folder."""
    staged = staging_folder(folder, flag=OUT_FLAG)
    (staged / "manifest.json").write_text("{}")
    replace(folder, staged, flag=OUT_FLAG, writer=WRITER)


@pytest.mark.parametrize("out", [".", "..", "notes-folder"])
def test_synth_refuses_a_folder_it_did_not_write_and_deletes_nothing(
    tmp_path: Path, capsys, monkeypatch, out: str
):
    folder = project(tmp_path)
    (folder / "notes-folder").mkdir()
    (folder / "notes-folder" / "keep.txt").write_text("mine")
    monkeypatch.chdir(folder)
    before = snapshot(tmp_path)

    code, stdout, err = run(capsys, "synth", "--out", out)

    assert code == 2 and stdout == ""
    refused = f"--out {(folder / out).resolve()}: the folder was not written by inferfleet synth"
    assert refused in err
    assert "give another folder" in err and "Traceback" not in err
    assert snapshot(tmp_path) == before
    assert not [p for p in tmp_path.rglob("*staging*")]


def test_synth_refuses_a_file_as_out(tmp_path: Path, capsys, monkeypatch):
    folder = project(tmp_path)
    monkeypatch.chdir(folder)
    code, _, err = run(capsys, "synth", "--out", "notes.md")
    assert code == 2
    assert "is a file, not a folder; give a folder path" in err
    assert (folder / "notes.md").read_text() == "mine"


@pytest.mark.parametrize("out", ["/proc/inferfleet/cdk.out", "notes.md/cdk.out"])
def test_synth_refuses_a_path_it_cannot_write(tmp_path: Path, capsys, monkeypatch, out: str):
    folder = project(tmp_path)
    monkeypatch.chdir(folder)
    code, _, err = run(capsys, "synth", "--out", out)
    assert code == 2
    assert "cannot write there" in err and "Traceback" not in err


def test_synth_refuses_a_previous_assembly_that_gained_files_of_the_user(tmp_path: Path, capsys):
    folder = project(tmp_path)
    out = folder / "cdk.out"
    previous_assembly(out)
    (out / "my-review.txt").write_text("mine")
    code, _, err = run(capsys, "synth", "--config", str(folder / "fleet.yaml"), "--out", str(out))
    assert code == 2
    assert "holds my-review.txt, which inferfleet synth did not write" in err
    assert (out / "my-review.txt").read_text() == "mine"


@pytest.mark.slow
def test_synth_replaces_its_own_assembly_whole(tmp_path: Path):
    folder = project(tmp_path)
    out = folder / "cdk.out"
    previous_assembly(out)
    (out / "stale.template.json").write_text("{}")
    marker = json.loads((out / MARKER).read_text())
    marker["entries"].append("stale.template.json")
    (out / MARKER).write_text(json.dumps(marker))

    result = subprocess.run(
        [str(INFERFLEET), "synth", "--out", "cdk.out", "--json"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["passed"] is True
    assert (out / "small-us-east-1.template.json").is_file()
    assert not (out / "stale.template.json").exists()
    written = json.loads((out / MARKER).read_text())
    assert written["writer"] == WRITER and "small-us-east-1.template.json" in written["entries"]
    assert (folder / "notes.md").read_text() == "mine" and (folder / ".git" / "HEAD").exists()
    assert sorted(p.name for p in folder.iterdir()) == [".git", "cdk.out", "fleet.yaml", "notes.md"]


@pytest.mark.slow
def test_a_construct_validation_error_reaches_the_user_in_the_cdks_words(tmp_path: Path):
    # Health-check timeout above the interval: validate refuses it; the plan is drafted past
    # validation to show the construct's own check reaches the user with its path.
    document = yaml.safe_load(_write(tmp_path, SMALL_FLEET).read_text())
    document["services"]["chat"]["health_check"] = {"interval_s": 5, "timeout_s": 10}
    plan, problems = draft_plan(FleetSpec.model_validate(document))
    assert problems
    out = tmp_path / "cdk.out"
    previous_assembly(out)

    with pytest.raises(UserError) as caught:
        synthesize(plan, config_dir=REPO_ROOT, outdir=out)

    message = str(caught.value)
    assert caught.value.exit_code == 1
    assert message.startswith("synth failed: ")
    assert "small-us-east-1/chat" in message and "interval" in message.lower()
    assert "manifest.json" not in message
    assert (out / "manifest.json").read_text() == "{}"
    assert not [p for p in tmp_path.iterdir() if "staging" in p.name]


@pytest.mark.slow
def test_a_broken_context_file_is_refused_before_synth(tmp_path: Path):
    fleet = _write(tmp_path, SMALL_FLEET)
    (tmp_path / "cdk.context.json").write_text("{not json")
    result = subprocess.run(
        [str(INFERFLEET), "synth", "--config", str(fleet), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 2
    assert "cdk.context.json: not readable JSON" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "o").exists()


def _write(folder: Path, document: dict) -> Path:
    path = folder / "fleet.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@pytest.mark.parametrize(
    ("key", "source", "rule"),
    [
        (
            "Annotation::AwsSolutions-IAM5[Resource::*]",
            "Annotation",
            "AwsSolutions-IAM5[Resource::*]",
        ),
        (
            "Annotation::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:<AWS::Region>:"
            "<AWS::AccountId>:log-group:/aws/sagemaker/Endpoints/*:*]",
            "Annotation",
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:<AWS::Region>:"
            "<AWS::AccountId>:log-group:/aws/sagemaker/Endpoints/*:*]",
        ),
        ("CloudFormation-Validate::W3010", "CloudFormation-Validate", "W3010"),
        ("Annotation::AwsSolutions-ECS2", "Annotation", "AwsSolutions-ECS2"),
    ],
)
def test_acknowledgments_split_at_the_namespace_not_inside_the_finding(
    tmp_path: Path, key: str, source: str, rule: str
):
    (tmp_path / "fleet-us-east-1.metadata.json").write_text(
        json.dumps(
            {"/fleet-us-east-1/svc/Role": [{"type": ACKNOWLEDGED_RULES, "data": {key: "why"}}]}
        )
    )
    [acknowledged] = _acknowledgments(tmp_path)
    assert (acknowledged.source, acknowledged.rule, acknowledged.reason) == (source, rule, "why")
