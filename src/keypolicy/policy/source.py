"""Reading policy YAML while remembering where every value came from.

PyYAML's composer gives nodes with marks; we build plain Python data from them and, beside it, a
map from each field path to its file, line and column, so that every later error can point at the
place a person has to edit. Duplicate keys, which PyYAML silently lets the last one win, are
errors here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from keypolicy.policy.errors import Issue, Location, PolicyError
from keypolicy.policy.yaml_errors import yaml_syntax_issue

__all__ = ["FieldPath", "SourceDoc", "read_source"]

FieldPath = tuple[str | int, ...]


@dataclass
class SourceDoc:
    """Plain data of one YAML document and the location of every path in it."""

    data: Any
    locations: dict[FieldPath, Location] = field(default_factory=dict)
    key_locations: dict[FieldPath, Location] = field(default_factory=dict)
    text: str = ""

    def locate(self, path: FieldPath, *, key: bool = False) -> Location | None:
        """Where ``path`` is written, or its nearest ancestor that is written.

        A scalar value is located at the value itself (that is what a person fixes); a mapping
        or list, or any path when ``key`` is set, at its key.
        """
        for end in range(len(path), -1, -1):
            sub = path[:end]
            if key or end < len(path) or sub not in self.scalars:
                loc = self.key_locations.get(sub) or self.locations.get(sub)
            else:
                loc = self.locations.get(sub)
            if loc is not None:
                return loc
        return None

    scalars: set[FieldPath] = field(default_factory=set)


def _loc(name: str, node: yaml.Node) -> Location:
    mark = node.start_mark
    return Location(name, mark.line + 1, mark.column + 1)


class _Builder:
    def __init__(self, name: str) -> None:
        self.name = name
        self.locations: dict[FieldPath, Location] = {}
        self.key_locations: dict[FieldPath, Location] = {}
        self.scalars: set[FieldPath] = set()
        self.issues: list[Issue] = []
        self._constructor = yaml.SafeLoader("")

    def build(self, node: yaml.Node, path: FieldPath) -> Any:
        self.locations[path] = _loc(self.name, node)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        self.scalars.add(path)
        return self._constructor.construct_object(node, deep=True)

    def _mapping(self, node: yaml.MappingNode, path: FieldPath) -> dict[str, Any]:
        self._constructor.flatten_mapping(node)  # resolves YAML merge keys (<<)
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = self._constructor.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                key = str(key)
            child = (*path, key)
            if key in result:
                first = self.key_locations.get(child)
                self.issues.append(
                    Issue(
                        _loc(self.name, key_node),
                        ".".join(str(p) for p in child),
                        f"duplicate key '{key}'",
                        f"it is already set at line {first.line}; keep one" if first else "",
                    )
                )
                continue
            self.key_locations[child] = _loc(self.name, key_node)
            result[key] = self.build(value_node, child)
        return result


def read_source(path: Path, display_name: str | None = None) -> SourceDoc:
    """Read one policy file; raise :class:`PolicyError` for unreadable files or YAML errors."""
    name = display_name or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError([Issue(None, "", f"{name}: no such file", "check the path")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise PolicyError([Issue(None, "", f"{name}: cannot read: {reason}")]) from None
    return parse_source(text, name)


def parse_source(text: str, name: str) -> SourceDoc:
    """Parse YAML ``text`` that came from ``name``; see :func:`read_source`."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        raise PolicyError([yaml_syntax_issue(text, name, exc)]) from None
    except yaml.YAMLError as exc:
        raise PolicyError([Issue(None, "", f"{name}: YAML syntax: {exc}")]) from None
    if node is None:
        raise PolicyError([Issue(Location(name, 1, 1), "", "the file is empty")])
    builder = _Builder(name)
    try:
        data = builder.build(node, ())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        loc = Location(name, mark.line + 1, mark.column + 1) if mark else None
        raise PolicyError([Issue(loc, "", f"YAML: {exc.problem or exc}")]) from None
    if builder.issues:
        raise PolicyError(builder.issues)
    return SourceDoc(data, builder.locations, builder.key_locations, text, builder.scalars)
