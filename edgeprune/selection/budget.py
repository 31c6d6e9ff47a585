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


@dataclass(frozen=True)
class Budget:
    """Fractions of the original cost to keep (None: no target), and the per-group limits.

    ``floor``: every group keeps at least this fraction of its channels. ``alignment``: kept channel
    counts are multiples of it (fast kernels want multiples of 8 or 16), unless a group is smaller.
    """

    macs: float | None = None
    params: float | None = None
    floor: float = 0.25
    alignment: int = 1

    def __post_init__(self) -> None:
        if self.macs is None and self.params is None:
            raise InputError("give a budget: --target-flops (e.g. 0.5 or 2x) or --target-params")
        if not 0.0 <= self.floor <= 1.0:
            raise InputError(f"--floor must be in [0, 1], got {self.floor}")
        if self.alignment < 1:
            raise InputError(f"--align must be a positive channel count, got {self.alignment}")

    def met(self, macs_fraction: float, params_fraction: float) -> bool:
        return (self.macs is None or macs_fraction <= self.macs + 1e-12) and (
            self.params is None or params_fraction <= self.params + 1e-12
        )

    def describe(self) -> str:
        parts = []
        if self.macs is not None:
            parts.append(f"MACs <= {self.macs:.1%}")
        if self.params is not None:
            parts.append(f"params <= {self.params:.1%}")
        return " and ".join(parts)

    def to_dict(self) -> dict:
        return {"macs": self.macs, "params": self.params, "floor": self.floor, "alignment": self.alignment}
