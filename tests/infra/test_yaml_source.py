"""YAML loading: line numbers, duplicate keys, merge keys, encodings, and bounded work."""

import codecs
import os
import resource
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from inferfleet.infra.plan import load_fleet_plan
from inferfleet.infra.spec import FleetSpecError, load_fleet_document, parse_fleet_spec
from inferfleet.infra.yaml_source import (
    MAX_DOCUMENT_BYTES,
    MAX_NODES,
    YamlSourceError,
    load_yaml,
    load_yaml_file,
)

INFERFLEET = Path(sys.executable).with_name("inferfleet")
REPO_ROOT = Path(__file__).resolve().parents[2]

# Nine levels of nine aliases each: 9**9 (387 million) strings once expanded.
ALIAS_BOMB = "\n".join(
    [
        'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]',
        *(
            f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]"
            for previous, name in zip("abcdefgh", "bcdefghi", strict=True)
        ),
    ]
)
# The same fan-out through merge keys: no value grows, but flattening every merge repeats work.
MERGE_BOMB = "\n".join(
    [
        "a: &a {k: 1}",
        *(
            f"{name}: &{name} {{<<: [{', '.join([f'*{previous}'] * 9)}]}}"
            for previous, name in zip("abcdefgh", "bcdefghi", strict=True)
        ),
    ]
)


def error_of(text: str) -> YamlSourceError:
    with pytest.raises(YamlSourceError) as caught:
        load_yaml(text)
    return caught.value


def _limit_memory() -> None:
    one_gib = 1 << 30
    resource.setrlimit(resource.RLIMIT_AS, (one_gib, one_gib))


def run_bounded(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Under 1 GiB of address space and 60 s: today's hand expansion hits either."""
    return subprocess.run(
        argv,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=_limit_memory,
        check=False,
    )


@pytest.mark.parametrize("bomb", [ALIAS_BOMB, MERGE_BOMB], ids=["aliases", "merge-keys"])
def test_an_alias_bomb_is_refused_quickly_in_bounded_memory(tmp_path: Path, bomb: str):
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(bomb)
    result = run_bounded([str(INFERFLEET), "validate", "--config", str(fleet)], tmp_path)
    assert result.returncode == 2, result.stderr
    assert f"more than {MAX_NODES} values" in result.stderr
    assert "aliases" in result.stderr and "Traceback" not in result.stderr


def test_a_document_past_the_size_limit_is_refused_before_parsing(tmp_path: Path):
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text("# padding\n" * (MAX_DOCUMENT_BYTES // 10 + 1))
    with pytest.raises(YamlSourceError, match=r"larger than 1 MiB"):
        load_yaml_file(fleet)
    with pytest.raises(YamlSourceError, match=r"larger than 1 MiB"):
        load_yaml(fleet.read_text())


def test_deep_nesting_is_an_error_not_a_recursion_crash():
    assert "nested more than" in str(error_of("a: " + "[" * 5000 + "]" * 5000))
    assert "nested more than" in str(error_of("a: " + "[" * 80 + "]" * 80))


def test_a_recursive_alias_is_refused():
    assert "nested more than" in str(error_of("a: &a [*a]"))
    assert "merges itself" in str(error_of("a: &a {<<: *a}"))


def test_merge_keys_take_explicit_keys_first_and_keep_the_source_lines():
    document = load_yaml(
        textwrap.dedent(
            """\
            pools:
              - &pool
                instance_type: inf2.48xlarge
                tensor_parallel: 24
                max: 2
              - <<: *pool
                instance_type: trn1.32xlarge
            extra:
              <<: [{a: 1, b: 1}, {b: 2, c: 2}]
            """
        )
    )
    assert document.data["pools"][1] == {
        "instance_type": "trn1.32xlarge",
        "tensor_parallel": 24,
        "max": 2,
    }
    assert document.data["extra"] == {"a": 1, "b": 1, "c": 2}
    # A merged key is where it is written; the explicit one where it overrides.
    assert document.line_of(("pools", 1, "tensor_parallel")) == 4
    assert document.line_of(("pools", 1, "instance_type")) == 7


def test_duplicate_keys_are_caught_next_to_merge_keys():
    message = str(error_of("base: &b {x: 1}\nuse:\n  <<: *b\n  y: 1\n  y: 2\n"))
    assert "duplicate key 'y' (first on line 4)" in message
    assert error_of("base: &b {x: 1}\nuse:\n  <<: *b\n  y: 1\n  y: 2\n").line == 5


def test_a_merge_of_something_else_than_a_mapping_says_what_it_takes():
    message = str(error_of("a: &a [1, 2]\nb: {<<: *a}\n"))
    assert "<< merges a mapping or a list of mappings" in message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("? [a, b]\n: 1\n", "a key must be a plain value"),
        ("a: !Ref thing\n", "tag !Ref"),
        ("a: b\x00c\n", "not allowed in YAML"),
        ("a: 1\n---\nb: 2\n", "malformed YAML"),
        ("a: " + "9" * 5000 + "\n", "cannot be read as int"),
        ("a: 2026-13-45\n", "cannot be read as timestamp"),
        ("a: !!float nanx\n", "cannot be read as float"),
    ],
)
def test_odd_documents_are_errors_with_a_line(text: str, message: str):
    error = error_of(text)
    assert message in str(error)
    assert error.line is not None


def test_fleet_file_with_merge_keys_validates_and_reports_merged_fields_at_their_lines(
    tmp_path: Path,
):
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(
        textwrap.dedent(
            """\
            name: merged
            regions: [us-east-1]
            services:
              chat:
                kind: llm
                model: {parameters_b: 1}
                pools:
                  - &pool {instance_type: inf2.xlarge, tensor_parallel: 2, min: 1, max: 2}
                  - <<: *pool
                    instance_type: inf2.8xlarge
            """
        )
    )
    pools = load_fleet_plan(fleet).region("us-east-1").service("chat").props.pools
    assert [p.instance_type for p in pools] == ["inf2.xlarge", "inf2.8xlarge"]
    assert pools[1].max_capacity == 2

    fleet.write_text(fleet.read_text().replace("tensor_parallel: 2", "tensor_parallel: 3"))
    with pytest.raises(FleetSpecError) as caught:
        load_fleet_plan(fleet)
    assert f"{fleet}:8: services.chat.pools[1].tensor_parallel: 3 " in str(caught.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (codecs.BOM_UTF16_LE + "name: x\n".encode("utf-16-le"), "UTF-16"),
        (codecs.BOM_UTF16_BE + "name: x\n".encode("utf-16-be"), "UTF-16"),
        (codecs.BOM_UTF32_LE + "name: x\n".encode("utf-32-le"), "UTF-32"),
        ("name: x\n".encode("utf-16-le"), "NUL bytes"),
        (b"name: shop\nregion: caf\xe9\n", "line 2, column 12"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "not UTF-8"),
    ],
)
def test_a_file_that_is_not_utf8_names_its_encoding_and_the_fix(
    tmp_path: Path, content: bytes, message: str
):
    fleet = tmp_path / "fleet.yaml"
    fleet.write_bytes(content)
    with pytest.raises(FleetSpecError) as caught:
        load_fleet_plan(fleet)
    text = str(caught.value)
    assert message in text and "save it as UTF-8" in text
    assert text.startswith(str(fleet)) and ":None" not in text


def test_a_utf8_byte_order_mark_is_accepted(tmp_path: Path):
    fleet = tmp_path / "fleet.yaml"
    fleet.write_bytes(codecs.BOM_UTF8 + (REPO_ROOT / "fleet.yaml").read_bytes())
    assert parse_fleet_spec(load_fleet_document(fleet), str(fleet)).name == "shopping-assistant"


def test_a_pipe_as_config_is_refused_not_waited_on(tmp_path: Path):
    pipe = tmp_path / "fleet.yaml"
    os.mkfifo(pipe)  # opening it for reading waited for a writer forever
    with pytest.raises(FleetSpecError, match=r"is not a regular file \(a device, pipe or socket\)"):
        load_fleet_plan(pipe)


def test_a_directory_as_config_is_a_clear_error(tmp_path: Path):
    with pytest.raises(FleetSpecError, match=r"is a directory; pass the fleet file itself"):
        load_fleet_plan(tmp_path)
