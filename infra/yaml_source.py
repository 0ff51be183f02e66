"""YAML loading that remembers where every value came from.

PyYAML silently keeps the last of two equal mapping keys; a fleet file with two
services of the same name must fail instead, so mappings are built by hand from
the composed node tree, which also yields the line of every path.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

YamlPath = tuple[str | int, ...]


class YamlSourceError(ValueError):
    """Malformed YAML or a duplicated key; ``line`` is 1-based."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


@dataclass
class YamlDocument:
    data: Any
    lines: dict[YamlPath, int] = field(default_factory=dict)

    def line_of(self, path: YamlPath) -> int | None:
        """Line of ``path`` or of its nearest ancestor present in the file."""
        for end in range(len(path), -1, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return None


def load_yaml(text: str) -> YamlDocument:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark else None
        raise YamlSourceError(f"malformed YAML: {error.problem or error}", line) from None
    document = YamlDocument(data=None)
    if root is not None:
        document.data = _build(root, (), document.lines)
    return document


def load_yaml_file(path: Path) -> YamlDocument:
    return load_yaml(path.read_text(encoding="utf-8"))


def _build(node: yaml.Node, path: YamlPath, lines: dict[YamlPath, int]) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        mapping: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node)
            if key in mapping:
                raise YamlSourceError(
                    f"duplicate key {key!r} (first on line {lines[(*path, key)]}); "
                    "each name may appear once",
                    key_node.start_mark.line + 1,
                )
            mapping[key] = _build(value_node, (*path, key), lines)
            lines[(*path, key)] = key_node.start_mark.line + 1
        return mapping
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*path, index), lines) for index, item in enumerate(node.value)]
    return _scalar(node)


def _scalar(node: yaml.Node) -> Any:
    return yaml.constructor.SafeConstructor().construct_object(node, deep=True)
