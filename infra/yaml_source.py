"""YAML loading that remembers where every value came from, with bounded work.

PyYAML silently keeps the last of two equal mapping keys; a fleet file with two
services of the same name must fail instead, so mappings are built by hand from
the composed node tree, which also yields the line of every path. Building by
hand means expanding aliases by hand, so the work is bounded: the file's size,
the values built (each use of an alias builds its values again) and the nesting
depth all have limits, and passing one is an error, not a hang.

Merge keys (``<<: *pool``, ``<<: [*a, *b]``) follow the YAML merge-key type:
the mapping's own keys win over merged ones, and an earlier merged mapping over
a later one; a merged value keeps the line where it is written.
"""

import codecs
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

YamlPath = tuple[str | int, ...]

# A fleet file is a few KiB and a few hundred values.
MAX_DOCUMENT_BYTES = 1 << 20
MAX_NODES = 100_000
MAX_DEPTH = 64

_MERGE_TAG = "tag:yaml.org,2002:merge"
# UTF-32 first: its little-endian mark starts with UTF-16's.
_BYTE_ORDER_MARKS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)
_SAVE_AS_UTF8 = "save it as UTF-8 (e.g. `iconv -t UTF-8`, or your editor's encoding menu)"


class YamlSourceError(ValueError):
    """Malformed YAML, a duplicated key, or a file that cannot be read as YAML;
    ``line`` is 1-based, None when the problem is the whole file."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line

    def located(self, source: str) -> str:
        """The message prefixed with ``source:line`` (or ``source`` alone)."""
        where = f"{source}:{self.line}" if self.line else source
        return f"{where}: {self}"


@dataclass
class YamlDocument:
    data: Any
    lines: dict[YamlPath, int] = field(default_factory=dict)
    # The text ``lines`` count in, for tools that rewrite the file (``inferfleet plan``).
    text: str = ""

    def line_of(self, path: YamlPath) -> int | None:
        """Line of ``path`` or of its nearest ancestor present in the file."""
        for end in range(len(path), -1, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return None


def load_yaml(text: str) -> YamlDocument:
    if len(text) > MAX_DOCUMENT_BYTES:
        raise _too_large()
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark else None
        raise YamlSourceError(f"malformed YAML: {error.problem or error}", line) from None
    except yaml.reader.ReaderError as error:
        line = text.count("\n", 0, error.position) + 1
        raise YamlSourceError(
            f"character {error.character!r} is not allowed in YAML; remove it or {_SAVE_AS_UTF8}",
            line,
        ) from None
    except RecursionError:
        raise _too_deep(None) from None
    document = YamlDocument(data=None, text=text)
    if root is not None:
        document.data = _Builder(document.lines).build(root, ())
    return document


def load_yaml_file(path: Path) -> YamlDocument:
    """Raises FileNotFoundError for a missing file, YamlSourceError for anything else."""
    return load_yaml(_read_text(path))


def _read_text(path: Path) -> str:
    # Opening a pipe waits for a writer, and a device never ends: only regular files are read.
    if path.exists() and not path.is_dir() and not path.is_file():
        raise YamlSourceError(
            "is not a regular file (a device, pipe or socket); pass the fleet file itself", None
        )
    try:
        with path.open("rb") as file:
            content = file.read(MAX_DOCUMENT_BYTES + 1)
    except FileNotFoundError:
        raise
    except IsADirectoryError:
        raise YamlSourceError(
            "is a directory; pass the fleet file itself (e.g. --config DIR/fleet.yaml)", None
        ) from None
    except PermissionError:
        raise YamlSourceError(
            "cannot read it (permission denied); check its permissions", None
        ) from None
    except OSError as error:
        raise YamlSourceError(f"cannot read it ({error.strerror or error})", None) from None
    if len(content) > MAX_DOCUMENT_BYTES:
        raise _too_large()
    for mark, encoding in _BYTE_ORDER_MARKS:
        if content.startswith(mark):
            raise YamlSourceError(
                f"the file is {encoding} (it starts with a byte-order mark); {_SAVE_AS_UTF8}", None
            )
    if b"\x00" in content:
        line = content.count(b"\n", 0, content.index(b"\x00")) + 1
        raise YamlSourceError(
            f"the file holds NUL bytes, so it is not UTF-8 text (UTF-16 without a byte-order "
            f"mark, or not a text file); {_SAVE_AS_UTF8}",
            line,
        )
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line_start = content.rfind(b"\n", 0, error.start) + 1
        line = content.count(b"\n", 0, error.start) + 1
        raise YamlSourceError(
            f"byte 0x{content[error.start]:02x} at line {line}, column "
            f"{error.start - line_start + 1} is not UTF-8; {_SAVE_AS_UTF8}",
            line,
        ) from None


def _too_large() -> YamlSourceError:
    return YamlSourceError(
        f"the file is larger than {MAX_DOCUMENT_BYTES >> 20} MiB; a fleet file is a few KiB: "
        "check that --config names the fleet file",
        None,
    )


def _too_deep(line: int | None) -> YamlSourceError:
    return YamlSourceError(
        f"values are nested more than {MAX_DEPTH} levels deep (or an alias refers to "
        "itself); a fleet file nests a few levels",
        line,
    )


class _Builder:
    """Builds Python values from composed nodes, recording lines and counting the work."""

    def __init__(self, lines: dict[YamlPath, int]) -> None:
        self.lines = lines
        self.built = 0
        self.constructor = yaml.constructor.SafeConstructor()

    def build(self, node: yaml.Node, path: YamlPath) -> Any:
        line = node.start_mark.line + 1
        self._count(1, line)
        if len(path) > MAX_DEPTH:
            raise _too_deep(line)
        self.lines[path] = line
        if isinstance(node, yaml.MappingNode):
            mapping: dict[Any, Any] = {}
            for key_node, value_node in self._pairs(node, frozenset()):
                key = self._key(key_node)
                mapping[key] = self.build(value_node, (*path, key))
                self.lines[(*path, key)] = key_node.start_mark.line + 1
            return mapping
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, index)) for index, item in enumerate(node.value)]
        return self._scalar(node)

    def _count(self, values: int, line: int) -> None:
        self.built += values
        if self.built > MAX_NODES:
            raise YamlSourceError(
                f"the document expands to more than {MAX_NODES} values (each use of an alias "
                "counts its values again); a fleet file has a few hundred: use fewer aliases",
                line,
            )

    def _pairs(
        self, node: yaml.MappingNode, merging: frozenset[int]
    ) -> list[tuple[yaml.Node, yaml.Node]]:
        """The mapping's key/value nodes with merge keys resolved; own keys must be unique."""
        own: list[tuple[yaml.Node, yaml.Node]] = []
        own_lines: dict[Any, int] = {}
        merged: list[tuple[yaml.Node, yaml.Node]] = []
        self._count(len(node.value), node.start_mark.line + 1)
        if len(merging) > MAX_DEPTH:
            raise _too_deep(node.start_mark.line + 1)
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                for source in self._merge_sources(value_node, key_node):
                    if id(source) in merging | {id(node)}:
                        raise YamlSourceError(
                            "a mapping merges itself (<< refers to its own anchor); merge "
                            "another mapping",
                            key_node.start_mark.line + 1,
                        )
                    merged += self._pairs(source, merging | {id(node)})
                continue
            key = self._key(key_node)
            line = key_node.start_mark.line + 1
            if key in own_lines:
                raise YamlSourceError(
                    f"duplicate key {key!r} (first on line {own_lines[key]}); "
                    "each name may appear once",
                    line,
                )
            own_lines[key] = line
            own.append((key_node, value_node))
        seen = set(own_lines)
        for key_node, value_node in merged:
            key = self._key(key_node)
            if key not in seen:
                seen.add(key)
                own.append((key_node, value_node))
        return own

    @staticmethod
    def _merge_sources(value: yaml.Node, key_node: yaml.Node) -> list[yaml.MappingNode]:
        sources = value.value if isinstance(value, yaml.SequenceNode) else [value]
        if not all(isinstance(source, yaml.MappingNode) for source in sources):
            raise YamlSourceError(
                "<< merges a mapping or a list of mappings (e.g. <<: *pool); "
                "give an alias of a mapping",
                key_node.start_mark.line + 1,
            )
        return sources

    def _key(self, node: yaml.Node) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise YamlSourceError(
                "a key must be a plain value (a name), not a list or a mapping",
                node.start_mark.line + 1,
            )
        return self._scalar(node)

    def _scalar(self, node: yaml.Node) -> Any:
        try:
            return self.constructor.construct_object(node, deep=True)
        except yaml.YAMLError as error:
            problem = getattr(error, "problem", None) or str(error)
            if "could not determine a constructor" in problem:
                problem = f"tag {node.tag} is not supported; write the value without it"
            raise YamlSourceError(problem, node.start_mark.line + 1) from None
        except ValueError as error:  # an int of too many digits, a date like 2026-13-45
            raise YamlSourceError(
                f"{node.value[:40]!r} cannot be read as {node.tag.rsplit(':', 1)[-1]} ({error}); "
                "quote it to keep it as text, or fix the value",
                node.start_mark.line + 1,
            ) from None
