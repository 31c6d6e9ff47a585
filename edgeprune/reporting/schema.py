"""report.json's schema, and the checker that holds reports to it.

``schema.json`` (package data) is a JSON Schema (draft 2020-12). The checker here implements exactly the
keywords that file uses, so reading a report needs no extra package; a keyword it does not know is refused,
so the schema cannot silently use one it would ignore. The tests check the same reports with the
`jsonschema` package too, where it is installed.

A report's ``schema_version`` is bumped whenever a key changes meaning or goes away; adding an optional
key does not bump it. A report of another version is refused, with what to do.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from edgeprune.errors import InputError

SCHEMA_VERSION = 1
ANNOTATIONS = {"$schema", "$id", "title", "description", "$comment", "$defs", "default", "examples"}
KEYWORDS = {
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "enum",
    "const",
    "minimum",
    "maximum",
    "minItems",
    "$ref",
} | ANNOTATIONS
TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


@lru_cache(maxsize=1)
def schema() -> dict:
    """The shipped schema (read once)."""
    from importlib import resources

    return json.loads(resources.files("edgeprune.reporting").joinpath("schema.json").read_text(encoding="utf-8"))


def errors(data: Any, definition: str | None = None, root: Mapping | None = None) -> list[str]:
    """Every place ``data`` breaks the schema (or its ``$defs`` entry ``definition``, e.g. "sweep_file"),
    as 'path: what is wrong'; an empty list: it conforms."""
    root = schema() if root is None else root
    rule = root if definition is None else root["$defs"][definition]
    return list(_check(data, rule, root, "$"))


def _check(value: Any, rule: Mapping, root: Mapping, path: str) -> Iterator[str]:
    unknown = set(rule) - KEYWORDS
    if unknown:
        raise ValueError(f"schema at {path} uses keywords this checker does not implement: {sorted(unknown)}")
    if "$ref" in rule:
        yield from _check(value, _resolve(rule["$ref"], root), root, path)
    if "type" in rule:
        kinds = [rule["type"]] if isinstance(rule["type"], str) else rule["type"]
        if not any(TYPES[kind](value) for kind in kinds):
            yield f"{path}: expected {' or '.join(kinds)}, got {_kind(value)}"
            return
    if "const" in rule and value != rule["const"]:
        yield f"{path}: expected {rule['const']!r}, got {value!r}"
    if "enum" in rule and value not in rule["enum"]:
        yield f"{path}: {value!r} is not one of {rule['enum']}"
    if TYPES["number"](value):
        if "minimum" in rule and value < rule["minimum"]:
            yield f"{path}: {value} is below the minimum {rule['minimum']}"
        if "maximum" in rule and value > rule["maximum"]:
            yield f"{path}: {value} is above the maximum {rule['maximum']}"
    if isinstance(value, dict):
        yield from _check_object(value, rule, root, path)
    if isinstance(value, list):
        if "minItems" in rule and len(value) < rule["minItems"]:
            yield f"{path}: expected at least {rule['minItems']} items, got {len(value)}"
        if "items" in rule:
            for index, item in enumerate(value):
                yield from _check(item, rule["items"], root, f"{path}[{index}]")


def _check_object(value: dict, rule: Mapping, root: Mapping, path: str) -> Iterator[str]:
    for key in rule.get("required", ()):
        if key not in value:
            yield f"{path}: missing key '{key}'"
    properties = rule.get("properties", {})
    extra = rule.get("additionalProperties", True)
    for key, item in value.items():
        if key in properties:
            yield from _check(item, properties[key], root, f"{path}.{key}")
        elif extra is False:
            yield f"{path}: unexpected key '{key}'"
        elif isinstance(extra, dict):
            yield from _check(item, extra, root, f"{path}.{key}")


def _resolve(reference: str, root: Mapping) -> Mapping:
    if not reference.startswith("#/"):
        raise ValueError(f"only local references (#/...) are supported, not {reference!r}")
    node: Any = root
    for part in reference[2:].split("/"):
        node = node[part]
    return node


def _kind(value: Any) -> str:
    return next((kind for kind, test in TYPES.items() if kind != "number" and test(value)), type(value).__name__)


def plain(value: Any) -> Any:
    """``value`` as strict JSON can hold it: NaN and infinities become null (JSON has neither)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value


def read_report(path: Path) -> dict:
    """A report.json read and checked: one-line errors for a missing, damaged, foreign or other-version file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path} not found: give the folder `edgeprune optimize --out` wrote") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path} ({exc}); is it an edgeprune report.json?") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{path} is damaged: not valid JSON ({exc}); write it again with `edgeprune optimize`"
        ) from None
    check_version(data, path)
    problems = errors(data)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise InputError(f"{path} is damaged: {problems[0]}{more}; write it again with `edgeprune optimize`")
    return data


def check_version(data: Any, path: Path) -> None:
    """A report of another schema version is refused, saying which and what to do."""
    if not isinstance(data, dict) or "settings" not in data:
        raise InputError(f"{path} is not an edgeprune report.json (no 'settings' table)")
    version = data.get("schema_version")
    replay = f"replay the run to write a current one: edgeprune optimize --config {path} --out NEW_FOLDER"
    if version is None:
        raise InputError(
            f"{path} has no schema_version (written by an edgeprune before reports were versioned); {replay}"
        )
    if version != SCHEMA_VERSION:
        writer = data.get("edgeprune_version", "another version")
        newer = isinstance(version, int) and version > SCHEMA_VERSION
        upgrade = "upgrade edgeprune to read it, or " if newer else ""
        raise InputError(
            f"{path} is report schema version {version!r} (edgeprune {writer}); this edgeprune reads version "
            f"{SCHEMA_VERSION}: {upgrade}{replay}"
        )
