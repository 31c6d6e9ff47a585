"""One settings tree: frozen dataclasses whose fields are the settings and whose dataclass-typed fields are
tables. One set of keys everywhere: a field ``max_acc_drop`` is the key ``max-acc-drop`` in a TOML file, in
report.json's ``settings`` and in ``--save-config``, and (unless its metadata names another) the flag
``--max-acc-drop``. This module knows nothing of any stage: it reads, checks and writes such trees.

``from_dict`` is the one place where a value from outside is checked against its field's type; the
settings types then check what a type cannot say (ranges, choices) in ``__post_init__``. Every error names
the file, the key and what is allowed.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from edgeprune.errors import InputError

NONE_WORDS = ("none", "off", "null")
COMMAND_LINE = "the command line"  # the source of settings given as flags: errors name the flag alone


def setting(
    default: Any = dataclasses.MISSING,
    *,
    help: str = "",
    flag: str | None = None,
    choices: Callable[[], tuple[str, ...]] | tuple[str, ...] | None = None,
    parse: Callable[[str], Any] | None = None,
    metavar: str | None = None,
    cli: bool = True,
    default_factory: Any = dataclasses.MISSING,
) -> Any:
    """A field of a settings tree. ``flag``: the option's name when it is not ``--<key>``; ``cli=False``: no
    option of its own (set through a ``--*-set KEY=VALUE`` option or the file). ``parse`` turns a string
    (from a flag or a file) into the value, for values with units (``5x``, ``5ms``). ``choices`` may be a
    callable so a registry is read only when asked."""
    metadata = {"help": help, "flag": flag, "choices": choices, "parse": parse, "metavar": metavar, "cli": cli}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def key_of(field: dataclasses.Field) -> str:
    return field.name.replace("_", "-")


def choices_of(field: dataclasses.Field) -> tuple[str, ...] | None:
    choices = field.metadata.get("choices")
    return tuple(choices()) if callable(choices) else choices


def is_table(kind: Any) -> bool:
    return isinstance(kind, type) and dataclasses.is_dataclass(kind)


def field_types(cls: type) -> dict[str, Any]:
    """The resolved annotation of every field (the modules use postponed annotations)."""
    return typing.get_type_hints(cls)


def to_dict(node: Any) -> dict[str, Any]:
    """The tree as plain data: tables as dicts, paths as strings, tuples as lists, None kept."""
    data: dict[str, Any] = {}
    for field in dataclasses.fields(node):
        value = getattr(node, field.name)
        data[key_of(field)] = to_dict(value) if dataclasses.is_dataclass(value) else _plain(value)
    return data


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def from_dict(cls: type, data: Any, source: str, where: str = "") -> Any:
    """Build ``cls`` from plain data (a TOML table, JSON object): missing keys take their defaults."""
    if not isinstance(data, Mapping):
        table = f"'{where}'" if where else "the settings"
        raise InputError(f"{source}: {table} must be a table of settings, not {_kind(data)}")
    fields = {key_of(f): f for f in dataclasses.fields(cls)}
    unknown = sorted(str(k) for k in data if str(k).replace("_", "-") not in fields)
    if unknown:
        place = f" in [{where}]" if where else ""
        raise InputError(
            f"{source}: unknown setting '{_join(where, unknown[0])}'{place}; allowed: {', '.join(sorted(fields))}"
        )
    hints = field_types(cls)
    values: dict[str, Any] = {}
    for raw_key, raw in data.items():
        field = fields[str(raw_key).replace("_", "-")]
        path = _join(where, key_of(field))
        kind = hints[field.name]
        if is_table(kind):
            values[field.name] = from_dict(kind, raw, source, path)
        else:
            values[field.name] = coerce(raw, kind, field, f"{source}: {path}")
    try:
        return cls(**values)
    except InputError as exc:  # the type's own check: say where, unless the values came from flags
        place = f"[{where}] " if where and source != COMMAND_LINE else ""
        raise InputError(f"{place}{exc}" if source == COMMAND_LINE else f"{source}: {place}{exc}") from None


def coerce(value: Any, kind: Any, field: dataclasses.Field, where: str) -> Any:
    """``value`` as ``kind`` (bool, int, float, str, Path, tuple[float, ...], or one of those or None)."""
    optional, base = _unwrap(kind)
    parse = field.metadata.get("parse")
    if value is None or (optional and isinstance(value, str) and value.strip().lower() in NONE_WORDS):
        if optional:
            return None
        raise InputError(f"{where} cannot be empty; give {_describe(base)}")
    if parse is not None and isinstance(value, str):
        try:
            return parse(value)
        except InputError as exc:
            raise InputError(f"{where}: {exc}") from None
    result = _as(value, base)
    if result is _WRONG:
        raise InputError(f"{where} takes {_describe(base)}{' or none' if optional else ''}, got {value!r}")
    choices = choices_of(field)
    if choices is not None and result not in choices:
        raise InputError(f"{where} is one of {', '.join(choices)}, got {value!r}")
    return result


_WRONG = object()


def _as(value: Any, base: Any) -> Any:
    if base is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false", "yes", "no", "1", "0", "on", "off"):
            return value.strip().lower() in ("true", "yes", "1", "on")
        return _WRONG
    if base is int:
        if isinstance(value, bool):
            return _WRONG
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return _number(value, int)
    if base is float:
        if isinstance(value, bool):
            return _WRONG
        return float(value) if isinstance(value, (int, float)) else _number(value, float)
    if base is str:
        return value if isinstance(value, str) else _WRONG
    if base is Path:
        return Path(value) if isinstance(value, (str, Path)) and str(value) else _WRONG
    if typing.get_origin(base) is tuple:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)) or not items:
            return _WRONG
        numbers = [_as(v, float) for v in items]
        return _WRONG if any(n is _WRONG for n in numbers) else tuple(numbers)
    raise TypeError(f"settings of type {base} are not supported")


def _number(value: Any, kind: type) -> Any:
    if not isinstance(value, str):
        return _WRONG
    try:
        return kind(value.strip())
    except ValueError:
        return _WRONG


def _unwrap(kind: Any) -> tuple[bool, Any]:
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        return len(args) < len(typing.get_args(kind)), args[0]
    return False, kind


def _describe(base: Any) -> str:
    if typing.get_origin(base) is tuple:
        return "comma-separated numbers"
    return {bool: "true or false", int: "a whole number", float: "a number", str: "a string", Path: "a path"}.get(
        base, str(base)
    )


def _kind(value: Any) -> str:
    return {
        dict: "a table",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
    }.get(type(value), type(value).__name__)


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where and key else where or key


def flatten(data: Mapping[str, Any], where: str = "") -> dict[str, Any]:
    """``{"budget": {"floor": 0.3}}`` as ``{"budget.floor": 0.3}``."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        path = _join(where, key)
        flat.update(flatten(value, path) if isinstance(value, Mapping) else {path: value})
    return flat


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``, table by table."""
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def to_toml(data: Mapping[str, Any], defaults: Mapping[str, Any] | None = None) -> str:
    """A settings dict as TOML: keys first, then tables. TOML has no null: a None whose default is None
    too is written as a comment (so the file lists every key), any other None as the string "none", which
    ``from_dict`` reads back as None."""
    lines: list[str] = []
    _write_table(data, defaults or {}, "", lines)
    return "\n".join(lines).lstrip("\n") + "\n"


def _write_table(data: Mapping[str, Any], defaults: Mapping[str, Any], where: str, lines: list[str]) -> None:
    scalars = {k: v for k, v in data.items() if not isinstance(v, Mapping)}
    tables = {k: v for k, v in data.items() if isinstance(v, Mapping)}
    if where and scalars:
        lines += ["", f"[{where}]"]
    for key, value in scalars.items():
        unset = value is None and key in defaults and defaults[key] is None
        lines.append(f"# {key} =" if unset else f"{key} = {_toml_value(value)}")
    for key, table in tables.items():
        default = defaults.get(key)
        _write_table(table, default if isinstance(default, Mapping) else {}, _join(where, key), lines)


def _toml_value(value: Any) -> str:
    import json

    if value is None:
        return '"none"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def reference(root: type, title: str, set_options: Mapping[str, str] | None = None) -> str:
    """Markdown tables of every key of the tree under ``root``: key, default, option, meaning.
    ``set_options``: per table (and the tables under it), the ``KEY=VALUE`` option that sets its keys
    without an option of their own."""
    lines = [f"# {title}", "", "<!-- generated from the settings types; tests/test_settings_tree.py checks it -->", ""]
    _reference(root, root(), "", lines, dict(set_options or {}))
    return "\n".join(lines).rstrip() + "\n"


def _reference(cls: type, defaults: Any, where: str, lines: list[str], set_options: dict[str, str]) -> None:
    hints = field_types(cls)
    rows, tables = [], []
    for field in dataclasses.fields(cls):
        value = getattr(defaults, field.name)
        if is_table(hints[field.name]):
            tables.append((field, value))
            continue
        flag = field.metadata.get("flag") or f"--{key_of(field)}"
        has_flag = field.metadata.get("cli", True) and field.metadata.get("help")
        shown = "(none)" if value is None else _toml_value(_plain(value))
        text = " ".join(str(field.metadata.get("help", "")).split()).replace("|", "\\|")
        setter = next((option for table, option in set_options.items() if where.startswith(table)), None)
        option = f"`{flag}`" if has_flag else f"`{setter} {key_of(field)}=...`" if setter else "file only"
        rows.append(f"| `{key_of(field)}` | `{shown}` | {option} | {text} |")
    if rows:
        lines += [
            f"## [{where}]" if where else "## top level",
            "",
            "| key | default | option | meaning |",
            "|---|---|---|---|",
            *rows,
            "",
        ]
    for field, value in tables:
        _reference(hints[field.name], value, _join(where, key_of(field)), lines, set_options)
