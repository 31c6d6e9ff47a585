"""`OptimizeSettings`: every setting of `optimize`, one frozen table per stage, one set of keys.

The keys are the long option names nested by table: ``[budget] target-flops = "5x"`` in a TOML file is
``--target-flops 5x`` on the command line, ``settings["budget"]["target-flops"]`` in report.json and
``OptimizeSettings.budget.target_flops`` in Python. ``edgeprune optimize --config out/report.json`` replays
a run; ``--save-config FILE`` writes the tree a run would use. All validation lives in these types.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

from edgeprune.errors import InputError
from edgeprune.recovery import RecoverySettings
from edgeprune.search.settings import SearchSettings
from edgeprune.selection.budget import DEFAULT_FLOOR, Budget, parse_fraction, parse_latency, parse_speedup
from edgeprune.selection.knapsack_settings import LOSS_CRITERIA, KnapsackSettings
from edgeprune.semiotic.settings import DEPTH_MODES, DepthSettings, SemioticSettings
from edgeprune.settings_tree import COMMAND_LINE, from_dict, setting, to_dict, to_toml

SETTINGS_VERSION = 1  # bumped when a key changes meaning; a report of another version is not replayed
CHOSEN_BY_CRITERION = "default"  # the strategy when none is given: resolved by OptimizeSettings (never written)
DEFAULT_GOAL_DROP = 1.0  # points of held-out accuracy (or agreement) the goal mode may lose by default
CALIB_HELP = "Calibration data: a folder of images (class sub-folders give labels) or a .npz/.npy file."


def _strategies() -> tuple[str, ...]:
    from edgeprune.selection.strategies import STRATEGIES

    return tuple(sorted(STRATEGIES))


def _criteria() -> tuple[str, ...]:
    from edgeprune.scoring.registry import criteria

    return tuple(criteria())


@dataclass(frozen=True)
class CalibrationSettings:
    SECTION: ClassVar[str] = "Calibration"

    calib: Path | None = setting(None, help=CALIB_HELP)
    preset: str | None = setting(None, help="Preprocessing preset: imagenet, cifar10, fashion-mnist, raw.")
    resize: int | None = setting(None, help="Resize the shorter image side to this.")
    crop: int | None = setting(None, help="Centre-crop images to this square size.")
    color: str | None = setting(None, choices=("rgb", "bgr", "grey"), help="Colour order of the model input.")
    scale: float | None = setting(None, help="Multiply pixel values by this (e.g. 0.00392 for 1/255).")
    mean: tuple[float, ...] | None = setting(None, help="Per-channel mean to subtract, comma separated.")
    std: tuple[float, ...] | None = setting(None, help="Per-channel std to divide by, comma separated.")
    limit: int | None = setting(None, help="Use at most this many calibration samples (a seeded subset).")
    held_out: float = setting(0.2, help="Fraction of the calibration data kept aside to judge the result.")

    def __post_init__(self) -> None:
        if not 0.0 < self.held_out < 1.0:
            raise InputError(f"held-out must be a fraction in (0, 1), got {self.held_out}")
        if self.limit is not None and self.limit < 1:
            raise InputError(f"limit must be at least 1 sample, got {self.limit}")
        for key in ("resize", "crop"):
            if getattr(self, key) is not None and getattr(self, key) < 1:
                raise InputError(f"{key} must be a positive size in pixels, got {getattr(self, key)}")

    def preprocessing(self) -> dict[str, Any]:
        """The options `load_calibration` takes, only those given."""
        keys = ("preset", "resize", "crop", "color", "scale", "mean", "std")
        return {key: getattr(self, key) for key in keys if getattr(self, key) is not None}


@dataclass(frozen=True)
class BudgetSettings:
    """An explicit budget (any ``target-*``), or none: then the goal mode searches for the fastest plan
    within ``max-acc-drop`` (default 1 point). With a budget, ``max-acc-drop`` is a guard."""

    SECTION: ClassVar[str] = "Goal and budget"

    target_flops: float | None = setting(
        None,
        parse=lambda t: parse_fraction(t, "the value"),
        metavar="R",
        help="FLOPs (MACs) to keep: a fraction (0.2) or a reduction (5x).",
    )
    target_params: float | None = setting(
        None,
        parse=lambda t: parse_fraction(t, "the value"),
        metavar="R",
        help="Parameters to keep: a fraction (0.5) or a reduction (2x).",
    )
    target_latency: float | None = setting(
        None,
        parse=lambda t: parse_latency(t, "the value"),
        metavar="TIME",
        help="Predicted latency on --device at most this: 5ms, 500us (stored in ms).",
    )
    target_speedup: float | None = setting(
        None,
        parse=lambda t: parse_speedup(t, "the value"),
        metavar="FACTOR",
        help="Predicted speed-up on --device at least this: 2x.",
    )
    max_acc_drop: float | None = setting(
        None,
        metavar="POINTS",
        help="Held-out accuracy points (top-1 agreement with the original without "
        "labels) the result may lose. Without a target: the goal, the fastest plan "
        f"on --device within it [default: {DEFAULT_GOAL_DROP:g}]. With one: a guard "
        "(exit 1, nothing written).",
    )
    floor: float = setting(
        DEFAULT_FLOOR,
        help="Keep at least this fraction of every group [default: 0.25, lowered to 0.15 with a warning "
        "when it forbids the budget].",
    )
    align: int | None = setting(
        None,
        help="Kept channel counts are multiples of this [default: the --device's "
        "alignment; without one, this CPU's: 16 with AVX-512F, 8 with AVX2]. --align 1 leaves them free.",
    )

    def __post_init__(self) -> None:
        if self.max_acc_drop is not None and not self.max_acc_drop >= 0.0:
            raise InputError(
                f"max-acc-drop is the most accuracy points the run may lose: zero or positive, got {self.max_acc_drop}"
            )
        if not 0.0 <= self.floor <= 1.0:
            raise InputError(f"floor must be a fraction in [0, 1], got {self.floor}")
        if self.align is not None and self.align < 1:
            raise InputError(f"align must be a positive channel count, got {self.align}")
        for key, check in (
            ("target_flops", lambda v: 0 < v <= 1),
            ("target_params", lambda v: 0 < v <= 1),
            ("target_latency", lambda v: v > 0),
            ("target_speedup", lambda v: v >= 1),
        ):
            value = getattr(self, key)
            if value is not None and not check(value):
                raise InputError(f"{key.replace('_', '-')} is out of range: {value}")

    @property
    def explicit(self) -> bool:
        """True when a target is given; False: the goal mode."""
        return any(
            v is not None for v in (self.target_flops, self.target_params, self.target_latency, self.target_speedup)
        )

    @property
    def goal_drop(self) -> float:
        return DEFAULT_GOAL_DROP if self.max_acc_drop is None else self.max_acc_drop

    def budget(self, alignment: int, **targets: float | None) -> Budget:
        """The `Budget` of these targets (or of ``targets``, which the goal search passes)."""
        chosen = targets or {
            "macs": self.target_flops,
            "params": self.target_params,
            "latency_ms": self.target_latency,
            "speedup": self.target_speedup,
        }
        # the default floor and the device's alignment give way when they forbid the budget (Selector)
        relax = {"relax_floor": self.floor == DEFAULT_FLOOR, "relax_alignment": self.align is None}
        return Budget(floor=self.floor, alignment=alignment, **relax, **chosen)  # type: ignore[arg-type]


@dataclass(frozen=True)
class SelectionSettings:
    SECTION: ClassVar[str] = "Strategy"

    strategy: str = setting(
        CHOSEN_BY_CRITERION,
        choices=_strategies,
        help="knapsack: the counts of least summed refit loss within the budget (needs --criterion "
        "refit-error); mi: global ranking by the criterion; uniform: the same ratio in every layer; rl: "
        "the RL agent; semiotic: greedy, where the superization curve changes least [default: knapsack, "
        "mi with a criterion that gives no refit loss].",
    )
    normalise: str = setting(
        "mean",
        choices=("mean", "max", "none"),
        help="How the mi strategy puts each group's scores on one scale: by the group's "
        "mean, by its best channel, or raw.",
    )
    depth: str = setting(
        "off",
        choices=DEPTH_MODES,
        help="Remove whole residual blocks: on: blocks first, least superization first, each within the guard, "
        "then the strategy's channels if the budget needs more; only: blocks alone; off: channels alone.",
    )
    depth_guard: float = setting(
        1.0,
        metavar="POINTS",
        help="depth: a block goes only if the measure of a part of the calibration data, after the refit, "
        "drops by at most this.",
    )
    depth_stage_keep: int = setting(
        1, help="depth: every stage keeps at least this many of its residual blocks (0: no guard)."
    )
    rl: SearchSettings = setting(default_factory=SearchSettings)
    semiotic: SemioticSettings = setting(default_factory=SemioticSettings)
    knapsack: KnapsackSettings = setting(default_factory=KnapsackSettings)

    def __post_init__(self) -> None:
        depth = DepthSettings(self.depth, self.depth_guard, self.depth_stage_keep)  # checks the values
        # a strategy receives only its own table (selection.strategies.settings_for): the depth keys go with it
        object.__setattr__(self, "semiotic", self.semiotic.with_depth(depth))


@dataclass(frozen=True)
class ScoringSettings:
    SECTION: ClassVar[str] = "Strategy"

    criterion: str = setting(
        "refit-error",
        choices=_criteria,
        help="refit-error (what the least-squares reconstruction loses without the channel), "
        "aura-mi, aura-mi-label, entropy, hist-mi, l1, activation, random.",
    )
    levels: int | None = setting(None, help="Grey levels of the entropy criteria [default: 8, fewer for small maps].")

    def __post_init__(self) -> None:
        if self.levels is not None and not 2 <= self.levels <= 256:
            raise InputError(f"levels must be between 2 and 256, got {self.levels}")


@dataclass(frozen=True)
class ReconstructionSettings:
    SECTION: ClassVar[str] = "Reconstruction and recovery"

    reconstruct: bool = setting(
        True, help="Refit the layers after pruned channels by least squares on calibration activations."
    )
    samples_per_image: int = setting(
        16,
        help="Output positions per calibration image in the least-squares rows "
        "of conv layers (reconstruction and refit-error).",
    )
    ridge: float = setting(
        1e-3, help="Ridge penalty of those least-squares fits, relative to the mean energy of their inputs."
    )

    def __post_init__(self) -> None:
        if self.samples_per_image < 1:
            raise InputError(f"samples-per-image must be positive, got {self.samples_per_image}")
        if not self.ridge >= 0.0:
            raise InputError(f"ridge must be zero or positive, got {self.ridge}")


@dataclass(frozen=True)
class CheckSettings:
    SECTION: ClassVar[str] = "Goal and budget"

    tolerance: float = setting(
        1e-4, help="Largest relative output difference the proof allows against the masked original."
    )
    task: str = setting(
        "auto",
        choices=("auto", "classify", "segment", "detect-map", "sequence", "regress"),
        help="What the outputs are, for the held-out judgement [default: recognised from them].",
    )

    def __post_init__(self) -> None:
        if not self.tolerance > 0:
            raise InputError(f"tolerance must be positive, got {self.tolerance}")


@dataclass(frozen=True)
class LatencySettings:
    SECTION: ClassVar[str] = "Device and latency"

    device: str | None = setting(
        None, help="Target device: a name or alias (`edgeprune devices`) or a profile .toml [default: host]."
    )
    latency_rounds: int = setting(
        20, help="Interleaved runs of the original and the pruned model timed on this machine (0: do not measure)."
    )

    def __post_init__(self) -> None:
        if self.latency_rounds < 0:
            raise InputError(f"latency-rounds must be zero or more, got {self.latency_rounds}")


@dataclass(frozen=True)
class OutputSettings:
    SECTION: ClassVar[str] = "Output"

    out: Path | None = setting(
        None, help="Folder for model.pruned.onnx, plan.json, report.json [default: ./<model stem>.edgeprune/]."
    )
    force: bool = setting(False, help="Write into --out even when it is not empty.")


@dataclass(frozen=True)
class OptimizeSettings:
    """The whole tree. ``model``: the ONNX file (the command's argument); ``seed``, ``batch_size`` and
    ``provider`` are the run's, read by every stage."""

    SECTION: ClassVar[str] = "General"

    model: Path | None = setting(None, cli=False, help="The ONNX model to optimize (the command's MODEL argument).")
    seed: int = setting(0, help="Seed of every random choice: the same inputs and seed give the same plan.")
    batch_size: int = setting(64, help="Images per ONNX Runtime batch.")
    provider: str = setting("auto", choices=("auto", "cpu", "cuda"), help="ONNX Runtime execution provider.")
    calibration: CalibrationSettings = setting(default_factory=CalibrationSettings)
    budget: BudgetSettings = setting(default_factory=BudgetSettings)
    selection: SelectionSettings = setting(default_factory=SelectionSettings)
    scoring: ScoringSettings = setting(default_factory=ScoringSettings)
    reconstruction: ReconstructionSettings = setting(default_factory=ReconstructionSettings)
    recovery: RecoverySettings = setting(default_factory=RecoverySettings)
    checks: CheckSettings = setting(default_factory=CheckSettings)
    latency: LatencySettings = setting(default_factory=LatencySettings)
    output: OutputSettings = setting(default_factory=OutputSettings)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise InputError(f"batch-size must be positive, got {self.batch_size}")
        if self.recovery.finetune_steps > 1 and not self.recovery.enabled:
            raise InputError("finetune-steps needs training between the steps: add finetune-epochs or finetune-time")
        if self.selection.strategy == CHOSEN_BY_CRITERION:  # not given: chosen on a validation split
            chosen = "knapsack" if self.scoring.criterion in LOSS_CRITERIA else "mi"  # (docs/results-search.md)
            object.__setattr__(self, "selection", replace(self.selection, strategy=chosen))
        if self.selection.strategy == "knapsack" and self.scoring.criterion not in LOSS_CRITERIA:
            raise InputError(
                f"--strategy knapsack reads each group's refit loss curve, which --criterion "
                f"{self.scoring.criterion} does not give; use --criterion {' or '.join(LOSS_CRITERIA)}, or "
                "--strategy mi to rank by it"
            )

    # --- the one set of keys -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"version": SETTINGS_VERSION, **to_dict(self)}

    @classmethod
    def from_dict(cls, data: Any, source: str = "settings") -> OptimizeSettings:
        if isinstance(data, dict) and "version" in data:
            data = dict(data)
            version = data.pop("version")
            if version != SETTINGS_VERSION:
                raise InputError(
                    f"{source}: settings version {version!r} is not this edgeprune's "
                    f"({SETTINGS_VERSION}); write the settings again with --save-config"
                )
        return from_dict(cls, data, source)

    @classmethod
    def from_file(cls, path: Path) -> OptimizeSettings:
        """A TOML file (an ``[optimize]`` table or the tree at top level) or a report.json's settings."""
        return cls.from_dict(read_settings_file(path).settings, str(path))

    def to_toml(self) -> str:
        return to_toml(self.to_dict(), defaults=OptimizeSettings().to_dict())

    def save(self, path: Path) -> None:
        """Write the tree as TOML (``--save-config``): whole, or not at all; the folder must exist."""
        from edgeprune.graph.io import write_text_atomic

        path = Path(path)
        if not path.parent.is_dir():
            raise InputError(f"cannot write {path}: the folder {path.parent} does not exist")
        write_text_atomic(path, self.to_toml())

    def with_model(self, model: Path) -> OptimizeSettings:
        return replace(self, model=Path(model))


@dataclass(frozen=True)
class SettingsFile:
    """``settings``: the raw table; ``model_sha256``: the model a report.json was written for (None: TOML)."""

    settings: dict[str, Any]
    model_sha256: str | None = None


def read_settings_file(path: Path) -> SettingsFile:
    """The settings table of a TOML file or of a report.json (its ``settings``), checked to be a table."""
    import tomllib

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the config file {path} ({exc})") from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path} is not valid JSON ({exc})") from None
        if not isinstance(data, dict) or not isinstance(data.get("settings"), dict):
            raise InputError(f"{path}: a JSON config is an edgeprune report.json with a 'settings' table")
        model = data.get("model")
        return SettingsFile(dict(data["settings"]), model.get("sha256") if isinstance(model, dict) else None)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path} is not valid TOML ({exc})") from None
    section = data.get("optimize", data)
    if not isinstance(section, dict):
        raise InputError(f"{path}: 'optimize' must be a table of settings ([optimize]), not {type(section).__name__}")
    return SettingsFile(section)


def load_settings(
    model: Path | None = None, config: Path | None = None, overrides: dict[str, Any] | None = None
) -> OptimizeSettings:
    """The settings of one run: the defaults, then ``config`` (a TOML file or a report.json to replay),
    then ``overrides`` (the command line's, nested by table), then ``model``. Replaying a report with
    another model than the one it was written for is refused."""
    from edgeprune.settings_tree import merge

    data: dict[str, Any] = {}
    source, sha = COMMAND_LINE, None
    if config is not None:
        read = read_settings_file(Path(config))
        data, source, sha = read.settings, str(config), read.model_sha256
        OptimizeSettings.from_dict(data, source)  # the file alone must be valid, whatever the flags change
    data = merge(data, overrides or {})
    if model is not None:
        data["model"] = str(model)
    settings = OptimizeSettings.from_dict(data, source)
    if sha and settings.model is not None and Path(settings.model).is_file():
        from edgeprune.graph.io import sha256_file

        if sha256_file(settings.model) != sha:
            raise InputError(
                f"{config} was written for another model (sha256 {sha[:12]}...) than {settings.model}; "
                "give that model, or settings from a TOML file"
            )
    return settings


def reference_markdown() -> str:
    """docs/settings.md: every table and key of `OptimizeSettings` with its default, option and meaning."""
    from edgeprune.settings_tree import reference

    return reference(
        OptimizeSettings, "Settings of `edgeprune optimize`", {"selection.rl": "--rl-set", "recovery": "--finetune-set"}
    )
