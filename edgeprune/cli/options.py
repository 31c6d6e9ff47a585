"""Option groups shared by commands, and settings from a TOML file."""

from __future__ import annotations

import functools
from pathlib import Path

import click

from edgeprune.errors import InputError


CALIB_HELP = "Calibration data: a folder of images (class sub-folders give labels) or a .npz/.npy file."


def calibration_options(command=None, *, flag: str = "--calib", help: str = CALIB_HELP):
    """``flag`` (--calib) and its preprocessing; the command receives the path under the flag's name
    (``calib``) and a ``preprocessing`` dict. ``finetune`` uses it as --train-data."""
    if command is None:
        return lambda decorated: calibration_options(decorated, flag=flag, help=help)
    options = [
        click.option(flag, type=click.Path(path_type=Path), required=True, help=help),
        click.option("--preset", help="Preprocessing preset: imagenet, cifar10, fashion-mnist, raw."),
        click.option("--resize", type=int, help="Resize the shorter image side to this."),
        click.option("--crop", type=int, help="Centre-crop images to this square size."),
        click.option("--color", type=click.Choice(["rgb", "bgr", "grey"]), help="Colour order of the model input."),
        click.option("--scale", type=float, help="Multiply pixel values by this (e.g. 0.00392 for 1/255)."),
        click.option("--mean", help="Per-channel mean to subtract, comma separated."),
        click.option("--std", help="Per-channel std to divide by, comma separated."),
        click.option("--limit", type=int, help="Use at most this many calibration samples (a seeded subset)."),
    ]
    for option in reversed(options):
        command = option(command)

    @functools.wraps(command)
    def wrapper(*args, preset, resize, crop, color, scale, mean, std, **kwargs):
        kwargs["preprocessing"] = {
            key: value for key, value in (
                ("preset", preset), ("resize", resize), ("crop", crop), ("color", color), ("scale", scale),
                ("mean", _floats(mean, "--mean")), ("std", _floats(std, "--std")),
            ) if value is not None
        }
        return command(*args, **kwargs)

    return wrapper


def set_pairs(rl_set: tuple[str, ...], finetune_set: tuple[str, ...]) -> dict:
    """``--rl-set KEY=VALUE`` and ``--finetune-set KEY=VALUE`` as settings-tree overrides: a key of
    [selection.rl] (or of its [agent] table) and of [recovery]. Values stay strings: the tree parses them."""
    import dataclasses

    from edgeprune.recovery import RecoverySettings
    from edgeprune.search.settings import AgentSettings, SearchSettings

    def keys(cls) -> set[str]:
        return {f.name.replace("_", "-") for f in dataclasses.fields(cls)} - {"agent"}

    rl, agent, recovery = {}, {}, {}
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


def _floats(text: str | None, option: str) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        return tuple(float(v) for v in str(text).split(","))
    except ValueError:
        raise InputError(f"{option} takes comma-separated numbers, got '{text}'") from None


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
    section = data.get(ctx.info_name, data)
    if not isinstance(section, dict):
        raise InputError(f"{path}: '{ctx.info_name}' must be a table of settings ([{ctx.info_name}]), "
                         f"not a {type(section).__name__}")
    known = {p.name for p in ctx.command.params}
    unknown = sorted(k.replace("-", "_") for k in section if k.replace("-", "_") not in known)
    if unknown:
        raise InputError(f"{path}: unknown settings {', '.join(unknown)}; see `edgeprune {ctx.info_name} --help`")
    ctx.default_map = {k.replace("-", "_"): v for k, v in section.items()}
    return path


config_option = click.option(
    "--config", type=click.Path(path_type=Path), is_eager=True, expose_value=False, callback=load_config,
    help="TOML file of settings (keys as the long option names); flags override it.",
)
