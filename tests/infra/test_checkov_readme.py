"""The README's table of accepted checkov findings, as scripts/checkov_templates.py reads it."""

import importlib.util
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "checkov_templates", REPO_ROOT / "scripts" / "checkov_templates.py"
)
checkov_templates = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(checkov_templates)


def test_every_accepted_check_in_the_readme_has_a_reason() -> None:
    accepted = checkov_templates.accepted_checks(REPO_ROOT / "README.md")
    assert {"CKV_AWS_2", "CKV_AWS_103", "CKV_AWS_158"} <= set(accepted)
    assert all(len(reason) > 20 for reason in accepted.values())


def test_a_check_listed_without_a_reason_is_refused(tmp_path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(
        f"{checkov_templates.TABLE_START}\n| check | what | reason |\n|---|---|---|\n"
        f"| CKV_AWS_18 | a bucket |  |\n{checkov_templates.TABLE_END}\n"
    )
    with pytest.raises(ValueError, match="CKV_AWS_18 is listed without a reason"):
        checkov_templates.accepted_checks(readme)


def test_an_assembly_without_templates_is_bad_input(tmp_path, capsys) -> None:
    assert checkov_templates.main([str(tmp_path)]) == 2
    assert "holds no *.template.json" in capsys.readouterr().err
