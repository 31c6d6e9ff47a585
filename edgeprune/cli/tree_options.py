"""Click options made from a settings tree, so each setting is defined once (its type, default, choices,
help and help section live on its field), and a command whose ``--help`` lists them by section.

A command decorated with `tree_options` receives one ``overrides`` dict: the settings given on the command
line, nested by table, already checked against their types, ready to be merged over a ``--config`` file.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from edgeprune.settings_tree import choices_of, coerce, field_types, is_table, key_of

SECTIONS = (
    "Calibration",
    "Goal and budget",
    "Strategy",
    "Reconstruction and recovery",
    "Device and latency",
    "Output",
    "General",
)


class SectionedCommand(click.Command):
    """``--help`` lists options under the section their setting belongs to (Polygraphy's argument groups)."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        groups: dict[str, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is not None:
                groups.setdefault(getattr(param, "section", "General"), []).append(record)
        for section in sorted(groups, key=lambda s: SECTIONS.index(s) if s in SECTIONS else len(SECTIONS)):
            with formatter.section(section):
                formatter.write_dl(groups[section])


class TreeOption(click.Option):
    """An option that knows which setting it sets (``path``: field names from the root) and its section."""

    def __init__(self, *args: Any, path: tuple[str, ...] = (), section: str = "General", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.path, self.section = path, section


def section_option(*decls: str, section: str, **kwargs: Any) -> Callable:
    """A plain option (not a setting) shown under ``section``."""
    return click.option(*decls, cls=TreeOption, section=section, **kwargs)


def tree_options(root: type, *, only: tuple[str, ...] | None = None) -> Callable:
    """One option per setting of ``root`` that has help text (``only``: just the tables or keys named)."""

    def decorate(command: Callable) -> Callable:
        options = list(_options(root, (), getattr(root, "SECTION", "General"), root(), only))
        for option in reversed(options):
            command = option(command)

        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            ctx = click.get_current_context()
            overrides: dict[str, Any] = kwargs.pop("overrides", {})
            for param in ctx.command.params:
                if not isinstance(param, TreeOption) or not param.path or param.name not in kwargs:
                    continue
                value = kwargs.pop(param.name)
                if ctx.get_parameter_source(param.name) in (ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP):
                    continue
                _set(overrides, param.path, _checked(root, param, value))
            kwargs["overrides"] = overrides
            return command(*args, **kwargs)

        return wrapper

    return decorate


def _options(cls: type, path: tuple[str, ...], section: str, defaults: Any, only) -> Any:
    hints = field_types(cls)
    for field in dataclasses.fields(cls):
        kind = hints[field.name]
        here = (*path, field.name)
        if is_table(kind):
            if only is None or field.name in only or any(p in only for p in path):
                yield from _options(kind, here, getattr(kind, "SECTION", section), getattr(defaults, field.name), None)
            continue
        if not field.metadata.get("cli", True) or not field.metadata.get("help"):
            continue
        if only is not None and not path and field.name not in only:
            continue
        yield _option(field, kind, here, section, getattr(defaults, field.name))


def _option(field: dataclasses.Field, kind: Any, path: tuple[str, ...], section: str, default: Any) -> Callable:
    options = tree_option(field, kind, path, section, default)
    return click.option(*options.pop("decls"), cls=TreeOption, path=path, section=section, **options)


def tree_option(field: dataclasses.Field, kind: Any, path: tuple[str, ...], section: str, default: Any) -> dict:
    """The click option of one setting, as keyword arguments (``decls``: its flag(s) and parameter name)."""
    flag = field.metadata.get("flag") or f"--{key_of(field)}"
    text = field.metadata["help"]
    if default is not None and "[default:" not in text:
        text += f" [default: {_shown(default)}]"
    options: dict[str, Any] = {"help": text, "default": None}
    if kind is bool:
        if "/" not in flag and default is False:
            options["is_flag"] = True
        elif "/" not in flag:
            flag = f"{flag}/--no-{flag[2:]}"
    else:
        choices = choices_of(field)
        options["type"] = click.Choice(choices) if choices else _click_type(kind, field)
        options["metavar"] = field.metadata.get("metavar")
    options["decls"] = (flag, "__".join(path))
    return options


def _click_type(kind: Any, field: dataclasses.Field) -> Any:
    if field.metadata.get("parse") is not None:
        return click.STRING
    base = next((k for k in (int, float, str) if kind in (k, k | None)), None)
    if base is not None:
        return base
    if kind in (Path, Path | None):
        return click.Path(path_type=Path)
    return click.STRING  # tuples: comma-separated, checked by `coerce`


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _checked(root: type, param: TreeOption, value: Any) -> Any:
    """The value as its field's type (a flag's string parsed: ``5x``, ``5ms``, ``0.5,0.5``)."""
    cls = root
    for name in param.path[:-1]:
        cls = field_types(cls)[name]
    field = next(f for f in dataclasses.fields(cls) if f.name == param.path[-1])
    return coerce(value, field_types(cls)[field.name], field, param.opts[0])


def _set(tree: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    """Put ``value`` at ``path`` (field names), as the tree's keys (dashes)."""
    for name in path[:-1]:
        tree = tree.setdefault(name.replace("_", "-"), {})
    tree[path[-1].replace("_", "-")] = value
