"""Option groups shared by commands, and settings from a TOML file."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import click

from edgeprune.cli.tree_options import tree_option
from edgeprune.errors import InputError
from edgeprune.settings_tree import coerce, field_types


def setting_option(cls: type, name: str, *, default: object = dataclasses.MISSING, **changes):
    """A plain option (its default applied by click) for the setting ``name`` of the settings type ``cls``:
    the flag, type, choices and help come from the field, so a shared option is defined once, on the tree."""
    field = next(f for f in dataclasses.fields(cls) if f.name == name)
    value = field.default if default is dataclasses.MISSING else default
    option = tree_option(field, field_types(cls)[name], (name,), getattr(cls, "SECTION", "General"), value)
    option.update(default=value, **changes)
    decls = option.pop("decls")
    return click.option(*decls, **option)


def run_options(command=None, *, batch_size: int = 64):
    """--batch-size, --seed and --provider, as `optimize` has them."""
    if command is None:
        return lambda decorated: run_options(decorated, batch_size=batch_size)
    from edgeprune.settings import OptimizeSettings

    for name in reversed(("batch_size", "seed", "provider")):
        changes = {"default": batch_size} if name == "batch_size" else {}
        command = setting_option(OptimizeSettings, name, **changes)(command)
    return command


def criterion_option(command):
    from edgeprune.settings import ScoringSettings

    return setting_option(ScoringSettings, "criterion")(command)


def calibration_options(command=None, *, flag: str = "--calib", help: str | None = None):
    """``flag`` (--calib) and its preprocessing, as `optimize` has them; the command receives the path under
    the flag's name (``calib``), ``limit`` and a ``preprocessing`` dict. ``finetune`` uses it as --train-data."""
    if command is None:
        return lambda decorated: calibration_options(decorated, flag=flag, help=help)
    from edgeprune.settings import CalibrationSettings

    keys = ("preset", "resize", "crop", "color", "scale", "mean", "std")
    options = [
        setting_option(
            CalibrationSettings,
            "calib",
            required=True,
            decls=(flag, flag[2:].replace("-", "_")),
            **({"help": help} if help else {}),
        )
    ]
    options += [setting_option(CalibrationSettings, key) for key in (*keys, "limit")]
    for option in reversed(options):
        command = option(command)

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        given = {key: kwargs.pop(key) for key in keys}
        preprocessing = CalibrationSettings(**_checked(given)).preprocessing()
        return command(*args, preprocessing=preprocessing, **kwargs)

    return wrapper


def _checked(given: dict) -> dict:
    """The preprocessing flags as the settings' types (``--mean 0.5,0.5`` as a tuple)."""
    from edgeprune.settings import CalibrationSettings

    fields = {f.name: f for f in dataclasses.fields(CalibrationSettings)}
    hints = field_types(CalibrationSettings)
    return {
        key: coerce(value, hints[key], fields[key], f"--{key}") if value is not None else None
        for key, value in given.items()
    }


def set_pairs(rl_set: tuple[str, ...], finetune_set: tuple[str, ...]) -> dict:
    """``--rl-set KEY=VALUE`` and ``--finetune-set KEY=VALUE`` as settings-tree overrides: a key of
    [selection.rl] (or of its [agent] table) and of [recovery]. Values stay strings: the tree parses them."""
    import dataclasses

    from edgeprune.recovery import RecoverySettings
    from edgeprune.search.settings import AgentSettings, SearchSettings

    def keys(cls) -> set[str]:
        return {f.name.replace("_", "-") for f in dataclasses.fields(cls)} - {"agent"}

    rl: dict[str, str] = {}
    agent: dict[str, str] = {}
    recovery: dict[str, str] = {}
    for option, pairs in (("--rl-set", rl_set), ("--finetune-set", finetune_set)):
        for pair in pairs:
            key, sep, value = str(pair).partition("=")
            key = key.strip().replace("_", "-")
            allowed = keys(SearchSettings) | keys(AgentSettings) if option == "--rl-set" else keys(RecoverySettings)
            if not sep or key not in allowed:
                raise InputError(f"{option} takes KEY=VALUE with KEY one of {', '.join(sorted(allowed))}; got '{pair}'")
            target = recovery if option == "--finetune-set" else rl if key in keys(SearchSettings) else agent
            target[key] = value.strip()
    tree: dict = {}
    if rl or agent:
        tree["selection"] = {"rl": {**rl, **({"agent": agent} if agent else {})}}
    if recovery:
        tree["recovery"] = recovery
    return tree


def load_config(ctx: click.Context, _param, path: Path | None) -> Path | None:
    """Settings from a TOML file become the defaults of this command; flags given still win."""
    if path is None:
        return None
    import tomllib

    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"config file not found: {path}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not valid TOML ({exc})") from None
    section = data.get(ctx.info_name or "", data)
    if not isinstance(section, dict):
        raise InputError(
            f"{path}: '{ctx.info_name}' must be a table of settings ([{ctx.info_name}]), not a {type(section).__name__}"
        )
    known = {p.name for p in ctx.command.params}
    unknown = sorted(k.replace("-", "_") for k in section if k.replace("-", "_") not in known)
    if unknown:
        raise InputError(f"{path}: unknown settings {', '.join(unknown)}; see `edgeprune {ctx.info_name} --help`")
    ctx.default_map = {k.replace("-", "_"): v for k, v in section.items()}
    return path


config_option = click.option(
    "--config",
    type=click.Path(path_type=Path),
    is_eager=True,
    expose_value=False,
    callback=load_config,
    help="TOML file of settings (keys as the long option names); flags override it.",
)
