"""What the user asks for: how much of the model's cost to keep, and what may never be pruned."""

from __future__ import annotations

from dataclasses import dataclass

from edgeprune.errors import InputError


def parse_fraction(text: str | float, option: str) -> float:
    """``0.2`` keeps 20%; ``5x`` means a 5x reduction, the same thing."""
    raw = str(text).strip().lower()
    try:
        value = 1.0 / float(raw[:-1]) if raw.endswith("x") else float(raw)
    except (ValueError, ZeroDivisionError):
        raise InputError(f"{option} takes a fraction to keep (0.2) or a reduction factor (5x), got '{text}'") from None
    if not 0.0 < value <= 1.0:
        raise InputError(f"{option} must keep a fraction in (0, 1] (or a factor >= 1x), got '{text}'")
    return value


_TIME_UNITS = (("us", 1e-3), ("µs", 1e-3), ("ms", 1.0), ("s", 1000.0))


def parse_latency(text: str | float, option: str = "--target-latency") -> float:
    """Milliseconds from ``5ms``, ``500us``, ``0.005s`` or a bare number of milliseconds."""
    raw = str(text).strip().lower()
    unit = next(((suffix, scale) for suffix, scale in _TIME_UNITS if raw.endswith(suffix)), ("", 1.0))
    try:
        value = float(raw[: len(raw) - len(unit[0])]) * unit[1]
    except ValueError:
        raise InputError(f"{option} takes a time such as 5ms, 500us or 0.005s, got '{text}'") from None
    if not value > 0:
        raise InputError(f"{option} must be a positive time, got '{text}'")
    return value


def parse_speedup(text: str | float, option: str = "--target-speedup") -> float:
    """``2x`` (or ``2``) asks the pruned model to run twice as fast as the original."""
    raw = str(text).strip().lower().removesuffix("x")
    try:
        value = float(raw)
    except ValueError:
        raise InputError(f"{option} takes a factor such as 2x, got '{text}'") from None
    if not value >= 1.0:
        raise InputError(f"{option} must be at least 1x (a speed-up), got '{text}'")
    return value


DEFAULT_FLOOR = 0.25  # the share of every group kept unless --floor says otherwise
RELAXED_FLOOR = 0.15  # the lowest the default floor gives way to when the budget needs it


@dataclass(frozen=True)
class Budget:
    """Fractions of the original cost to keep (None: no target), and the per-group limits.

    ``floor``: every group keeps at least this fraction of its channels. ``alignment``: kept channel
    counts are multiples of it (fast kernels want multiples of 8 or 16), unless a group is smaller.
    ``relax_floor`` / ``relax_alignment``: the floor and the alignment are defaults, not asked for, and give
    way when they forbid the budget (see `Selector`); ``fine``: groups at most two steps wide take half
    steps (`counts.step`), set by that relaxation.
    """

    macs: float | None = None
    params: float | None = None
    floor: float = DEFAULT_FLOOR
    alignment: int = 1
    latency_ms: float | None = None  # predicted latency on the target device, at most
    speedup: float | None = None  # predicted speed-up on the target device, at least (2.0 for 2x)
    relax_floor: bool = False
    relax_alignment: bool = False
    fine: bool = False

    def __post_init__(self) -> None:
        if self.macs is None and self.params is None and self.latency_ms is None and self.speedup is None:
            raise InputError(
                "give a budget: --target-flops (e.g. 0.5 or 2x), --target-params, --target-latency "
                "(e.g. 5ms) or --target-speedup (e.g. 2x)"
            )
        if self.latency_ms is not None and not self.latency_ms > 0:
            raise InputError(f"--target-latency must be positive, got {self.latency_ms}")
        if self.speedup is not None and not self.speedup >= 1.0:
            raise InputError(f"--target-speedup must be at least 1x, got {self.speedup}")
        if not 0.0 <= self.floor <= 1.0:
            raise InputError(f"--floor must be in [0, 1], got {self.floor}")
        if self.alignment < 1:
            raise InputError(f"--align must be a positive channel count, got {self.alignment}")

    def met(self, macs_fraction: float, params_fraction: float) -> bool:
        return (self.macs is None or macs_fraction <= self.macs + 1e-12) and (
            self.params is None or params_fraction <= self.params + 1e-12
        )

    @property
    def needs_latency(self) -> bool:
        return self.latency_ms is not None or self.speedup is not None

    def latency_met(self, predicted_ms: float, original_ms: float) -> bool:
        """Predicted latency of a plan against the targets (``original_ms``: the unpruned model's)."""
        return (self.latency_ms is None or predicted_ms <= self.latency_ms * (1 + 1e-12)) and (
            self.speedup is None or original_ms >= self.speedup * predicted_ms * (1 - 1e-12)
        )

    def describe(self) -> str:
        parts = []
        if self.macs is not None:
            parts.append(f"MACs <= {self.macs:.1%}")
        if self.params is not None:
            parts.append(f"params <= {self.params:.1%}")
        if self.latency_ms is not None:
            parts.append(f"latency <= {self.latency_ms:.3g} ms")
        if self.speedup is not None:
            parts.append(f"speed-up >= {self.speedup:.3g}x")
        return " and ".join(parts)

    def to_dict(self) -> dict:
        """The budget a plan was cut to (its floor and alignment after any relaxation; ``fine`` only when set)."""
        return {
            "macs": self.macs,
            "params": self.params,
            "floor": self.floor,
            "alignment": self.alignment,
            "latency_ms": self.latency_ms,
            "speedup": self.speedup,
        } | ({"fine": True} if self.fine else {})
