"""Loading a policy: read the file and its bases, merge, validate, cross-check, lint.

``extends`` merges a variant onto its base like this: mappings merge key by key, recursively; any
other value in the variant (a scalar or a list) replaces the base's whole; a key set to ``null`` in
the variant removes that key from the base. ``name`` and ``description`` are never inherited (a
variant without a name takes its file name). A base may itself extend another; a cycle is an error.
A relative ``extends`` path is read from the extending file's folder.
"""

from __future__ import annotations

import re
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, TypeAdapter, ValidationError

from keypolicy.policy.errors import Issue, Location, PolicyError
from keypolicy.policy.lint import lint_policy
from keypolicy.policy.model import Policy
from keypolicy.policy.references import Sections, check_references, did_you_mean
from keypolicy.policy.source import FieldPath, SourceDoc, parse_source, read_source

__all__ = ["LoadedPolicy", "load_policy", "load_policy_text"]

_NOT_INHERITED = ("name", "description", "extends")


@dataclass(frozen=True)
class LoadedPolicy:
    """A validated policy, where it came from, and its lint warnings."""

    policy: Policy
    files: tuple[str, ...]
    warnings: list[Issue] = field(default_factory=list)
    source: SourceDoc | None = None


def load_policy(path: str | Path, *, strict: bool = False) -> LoadedPolicy:
    """Load and validate a policy file (and the bases it extends).

    Raises :class:`PolicyError` listing every problem found; with ``strict``, lint warnings are
    errors too.
    """
    doc, files = _read_with_bases(Path(path), ())
    return _finish(doc, files, strict)


def load_policy_text(text: str, name: str = "<policy>", *, strict: bool = False) -> LoadedPolicy:
    """Load a policy from YAML text; ``extends`` is resolved from the current folder."""
    doc = parse_source(text, name)
    files: tuple[str, ...] = (name,)
    if isinstance(doc.data, dict) and doc.data.get("extends"):
        base, base_files = _read_with_bases(Path(str(doc.data["extends"])), (name,))
        doc, files = _merge(base, doc), (*base_files, name)
    return _finish(doc, files, strict)


def _finish(doc: SourceDoc, files: tuple[str, ...], strict: bool) -> LoadedPolicy:
    policy, issues = _validate(doc)
    if policy is None:
        raise PolicyError(sorted(issues + _secret_warnings(doc), key=Issue.sort_key))
    warnings = [_place(doc, f.path, f.message, f.hint, "warning") for f in lint_policy(policy)]
    warnings += _secret_warnings(doc)
    warnings.sort(key=Issue.sort_key)
    if strict and warnings:
        raise PolicyError([Issue(w.location, w.path, w.message, w.hint, "error") for w in warnings])
    return LoadedPolicy(policy, files, warnings, doc)


def _read_with_bases(path: Path, chain: tuple[str, ...]) -> tuple[SourceDoc, tuple[str, ...]]:
    resolved = str(path.resolve())
    if resolved in chain:
        names = " -> ".join(Path(p).name for p in (*chain, resolved))
        raise PolicyError(
            [
                Issue(
                    None,
                    "extends",
                    f"policies extend each other in a cycle: {names}",
                    "remove one of the extends",
                )
            ]
        )
    doc = read_source(path, str(path))
    data = doc.data
    base_ref = data.get("extends") if isinstance(data, dict) else None
    if base_ref is None:
        return doc, (str(path),)
    if not isinstance(base_ref, str):
        raise PolicyError(
            [
                Issue(
                    doc.locate(("extends",)), "extends", "extends takes the path of one base policy"
                )
            ]
        )
    base_path = path.parent / base_ref
    if not base_path.exists():
        raise PolicyError(
            [
                Issue(
                    doc.locate(("extends",)),
                    "extends",
                    f"base policy '{base_ref}' not found",
                    f"looked for {base_path}",
                )
            ]
        )
    base, files = _read_with_bases(base_path, (*chain, resolved))
    return _merge(base, doc), (*files, str(path))


def _merge(base: SourceDoc, top: SourceDoc) -> SourceDoc:
    base_data = dict(base.data) if isinstance(base.data, dict) else {}
    for key in _NOT_INHERITED:
        base_data.pop(key, None)
    if "name" not in top.data:
        stem = Path(next(iter(top.locations.values())).file).stem if top.locations else "policy"
        top.data["name"] = stem
    merged = _merge_data(base_data, top.data)
    locations = {**_drop_removed(base.locations, merged), **top.locations}
    keys = {**_drop_removed(base.key_locations, merged), **top.key_locations}
    scalars = {p for p in base.scalars | top.scalars if _exists(merged, p)}
    return SourceDoc(merged, locations, keys, top.text, scalars)


def _merge_data(base: Any, top: Any) -> Any:
    if not (isinstance(base, dict) and isinstance(top, dict)):
        return top
    out = dict(base)
    for key, value in top.items():
        if value is None:
            out.pop(key, None)
        elif key in out:
            out[key] = _merge_data(out[key], value)
        else:
            out[key] = value
    return out


def _exists(data: Any, path: FieldPath) -> bool:
    return not _data_path(data, path)[1]


def _drop_removed(locations: dict[FieldPath, Any], merged: Any) -> dict[FieldPath, Any]:
    return {p: loc for p, loc in locations.items() if _exists(merged, p)}


# ---------------------------------------------------------------------------------------------
# Validation and error placement


def _validate(doc: SourceDoc) -> tuple[Policy | None, list[Issue]]:
    data = doc.data
    if not isinstance(data, dict):
        return None, [
            Issue(
                doc.locate(()),
                "",
                "a policy is a mapping of sections (version, name, projects, ...)",
            )
        ]
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        issues = [_issue_from_error(doc, err) for err in exc.errors(include_url=False)]
        sections = _sections_that_validate(data)
        issues += [_place(doc, f.path, f.message, f.hint) for f in check_references(sections)]
        return None, issues
    names = {
        "projects": set(policy.projects),
        "keys": set(policy.keys),
        "pools": set(policy.pools),
        "domains": set(policy.domains),
        "priorities": {p.name for p in policy.priorities},
    }
    sections = Sections(
        policy.projects,
        policy.keys,
        policy.pools,
        policy.priorities,
        policy.domains,
        policy.budgets,
        policy.pricing,
        names,
    )
    issues = [_place(doc, f.path, f.message, f.hint) for f in check_references(sections)]
    return (None if issues else policy), issues


def _sections_that_validate(data: dict[str, Any]) -> Sections:
    """Each section with the entries that validate on their own, so references can be checked."""
    values: dict[str, Any] = {}
    names: dict[str, set[str]] = {}
    for name in ("projects", "keys", "pools", "priorities", "domains", "budgets", "pricing"):
        annotation: Any = Policy.model_fields[name].annotation
        raw = data.get(name)
        origin = get_origin(annotation)
        names[name] = set(raw) if isinstance(raw, dict) else set()
        if origin is dict and isinstance(raw, dict):
            item = TypeAdapter(get_args(annotation)[1])
            values[name] = {k: v for k, v in ((k, _try(item, v)) for k, v in raw.items()) if v}
        elif origin is list and isinstance(raw, list):
            item = TypeAdapter(get_args(annotation)[0])
            values[name] = [v for v in (_try(item, v) for v in raw) if v]
            names[name] = {str(p.get("name")) for p in raw if isinstance(p, dict)}
        else:
            values[name] = _try(TypeAdapter(annotation), raw) if raw is not None else None
    return Sections(**values, names=names)


def _try(adapter: TypeAdapter[Any], raw: Any) -> Any:
    try:
        return adapter.validate_python(raw)
    except ValidationError:
        return None


def _place(
    doc: SourceDoc, path: FieldPath, message: str, hint: str = "", severity: str = "error"
) -> Issue:
    return Issue(doc.locate(path), _dotted(path), message, hint, severity)


def _dotted(path: FieldPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _data_path(data: Any, loc: tuple[Any, ...]) -> tuple[FieldPath, tuple[Any, ...]]:
    """Split pydantic's ``loc`` into the part that exists in the data and the rest."""
    path: list[str | int] = []
    for i, part in enumerate(loc):
        in_dict = isinstance(data, dict) and part in data
        in_list = isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data)
        if in_dict or in_list:
            data = data[part]
        else:
            return tuple(path), loc[i:]
        path.append(part)
    return tuple(path), ()


def _issue_from_error(doc: SourceDoc, err: Any) -> Issue:
    kind, msg, loc = err["type"], err["msg"], tuple(err["loc"])
    path, rest = _data_path(doc.data, loc)
    hint = ""
    if kind == "missing":
        field_name = str(rest[0]) if rest else str(loc[-1])
        return Issue(
            doc.locate(path, key=True),
            _dotted((*path, field_name)),
            f"'{field_name}' is required",
            "add it here",
        )
    if kind == "extra_forbidden":
        allowed = _fields_at(Policy, path[:-1])
        hint = did_you_mean(str(path[-1]), allowed) if allowed else "remove it"
        return Issue(doc.locate(path, key=True), _dotted(path), f"unknown field '{path[-1]}'", hint)
    if kind in ("value_error", "assertion_error"):
        msg = re.sub(r"^(Value|Assertion) error, ", "", msg)
    elif kind == "literal_error":
        expected = re.findall(r"'([^']*)'", str(err.get("ctx", {}).get("expected", "")))
        got = err.get("input")
        msg = f"{_show(got)} is not one of: {', '.join(expected)}" if expected else msg
        close = did_you_mean(str(got), expected) if expected else ""
        hint = close if close.startswith("did you mean") else ""
    elif kind in (
        "int_parsing",
        "float_parsing",
        "bool_parsing",
        "string_type",
        "int_type",
        "float_type",
        "dict_type",
        "list_type",
        "model_type",
        "bool_type",
    ):
        msg = f"{msg}, not {_show(err.get('input'))}"
    return Issue(doc.locate(path), _dotted(path), msg, hint)


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) < 40 else text[:37] + "..."


def _fields_at(model: type[BaseModel], path: FieldPath) -> list[str]:
    """Field names of the model found at ``path`` under ``model`` (for 'did you mean')."""
    current: Any = model
    for part in path:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            info = current.model_fields.get(str(part))
            if info is None:
                return []
            current = info.annotation
        elif get_origin(current) in (dict, list):
            current = get_args(current)[-1]
        else:
            return []
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _unwrap(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        inner = [a for a in get_args(annotation) if a is not type(None)]
        return inner[0] if len(inner) == 1 else annotation
    return annotation


_SECRET = re.compile(r"sk-[A-Za-z0-9_\-]{8,}")


def _secret_warnings(doc: SourceDoc) -> list[Issue]:
    """Flag text that looks like a literal API key anywhere in the files (comments included)."""
    found = []
    files = {loc.file for loc in doc.locations.values()}
    for name in sorted(files):
        try:
            text = Path(name).read_text(encoding="utf-8") if Path(name).exists() else doc.text
        except OSError:
            continue
        for lineno, line in enumerate(text.splitlines(), start=1):
            for match in _SECRET.finditer(line):
                found.append(
                    Issue(
                        Location(name, lineno, match.start() + 1),
                        "",
                        "this looks like a literal API key (sk-...)",
                        "never write a secret in a policy: put it in an environment "
                        "variable and name the variable with 'env'",
                        "warning",
                    )
                )
    return found
