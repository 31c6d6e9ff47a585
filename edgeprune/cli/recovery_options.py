"""The recovery options of `optimize`; the command receives them as one ``recovery`` settings object."""

from __future__ import annotations

import functools
from pathlib import Path

import click

from edgeprune.errors import InputError


def recovery_options(command):
    """--finetune-epochs / --finetune-time (distil after reconstruction), --finetune-steps (progressive cuts),
    --train-data, --finetune-lr, --train-device, and --finetune-set KEY=VALUE for any other distillation setting."""
    options = [
        click.option("--finetune-epochs", type=float,
                     help="Distil the pruned model from the original for this many epochs of --train-data after "
                     "reconstruction (needs torch)."),
        click.option("--finetune-time", type=float, metavar="SECONDS",
                     help="Distil for at most this many seconds (alone or with --finetune-epochs)."),
        click.option("--finetune-steps", type=int, default=1, show_default=True,
                     help="Reach the budget in this many cuts, reconstructing and distilling after each "
                     "(10x in 3 cuts keeps 46%, 22%, then 10% of the MACs)."),
        click.option("--train-data", type=click.Path(path_type=Path),
                     help="Data to distil on, in the formats of --calib and with its preprocessing "
                     "[default: the calibration data's fit split]."),
        click.option("--finetune-lr", type=float, default=0.01, show_default=True, help="Peak learning rate."),
        click.option("--train-device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True),
        click.option("--finetune-set", multiple=True, metavar="KEY=VALUE",
                     help="Any other distillation setting: optimizer=adamw, batch_size=128, temperature=4, "
                     "label_weight=1, feature_weight=0.5, augment=false, clip_norm=1, weight_decay=5e-4, batchnorm=false."),
    ]
    for option in reversed(options):
        command = option(command)

    @functools.wraps(command)
    def wrapper(*args, finetune_epochs, finetune_time, finetune_steps, train_data, finetune_lr, train_device,
                finetune_set, **kwargs):
        from edgeprune.recovery import RecoverySettings
        from edgeprune.train.settings import DistillSettings

        distill = None
        if finetune_epochs is not None or finetune_time is not None or finetune_steps > 1:
            if finetune_epochs is None and finetune_time is None:
                finetune_epochs = 1.0
            distill = DistillSettings(epochs=finetune_epochs, time_budget=finetune_time, lr=finetune_lr,
                                      train_device=train_device, seed=kwargs.get("seed", 0),
                                      **_pairs(finetune_set))
        elif finetune_set or train_data is not None:
            raise InputError("--train-data and --finetune-set need --finetune-epochs or --finetune-time")
        kwargs["recovery"] = RecoverySettings(distill=distill, steps=finetune_steps, train_data=train_data)
        return command(*args, **kwargs)

    return wrapper


_TYPES = {"optimizer": str, "schedule": str, "batch_size": int, "shift": int, "evals_per_epoch": int, "steps": int,
          "temperature": float, "label_weight": float, "feature_weight": float, "clip_norm": float,
          "weight_decay": float, "momentum": float, "augment": bool, "batchnorm": bool}


def _pairs(pairs: tuple[str, ...]) -> dict:
    settings = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in _TYPES:
            raise InputError(f"--finetune-set takes KEY=VALUE with KEY one of {', '.join(sorted(_TYPES))}; got '{pair}'")
        kind = _TYPES[key]
        try:
            if kind is bool:
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                settings[key] = value.lower() in ("true", "1", "yes")
            else:
                settings[key] = kind(value)
        except ValueError:
            raise InputError(f"--finetune-set {key} takes a {kind.__name__}, got '{value}'") from None
    return settings
