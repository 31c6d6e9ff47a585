"""Measuring latency honestly: warm-up, repeated runs, the median and the spread, and an interleaved A/B
comparison (A and B alternate, so a slow minute on a shared machine slows both alike and the ratio holds).

In the A/B comparison, a model that runs in well under a millisecond (a 28x28 ResNet-20: 0.2 ms) is timed a
few runs at a time, each timing at least ``SAMPLE_MS`` long: one run alone is as short as the jitter of the
machine's scheduling, which left the speed-up of such a model +-40% uncertain after 20 interleaved rounds.
`measure` times single runs (the profiler reads low quantiles of them)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeprune.errors import EdgepruneError, InputError

SAMPLE_MS = 5.0  # the least one timing lasts: shorter models are run that many times in a row per timing
# before each timing of a quick model, a pause that lets the other session's worker threads stop spinning:
# with ONNX Runtime's default threads they kept the cores busy for tens of ms after its runs, which slowed the
# model timed next by up to 70% on a 0.35 ms ResNet-20 (on one thread, with no workers, there is no such
# effect); after 50 ms the order of the two no longer showed
SETTLE_S = 0.05


@dataclass(frozen=True)
class Timing:
    """Milliseconds per run: median, the 10th and 90th percentiles, and the relative spread: the interquartile
    range over the median (robust to the odd run a busy machine slows ten-fold). ``runs`` timings, each the
    mean of ``per_timing`` runs in a row."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    runs: int
    warmup: int
    iqr_ms: float = 0.0
    samples_ms: tuple[float, ...] = field(default=(), repr=False, compare=False)
    per_timing: int = 1

    @property
    def spread(self) -> float:
        return self.iqr_ms / self.median_ms if self.median_ms > 0 else 0.0

    @classmethod
    def of(cls, samples_ms: list[float], warmup: int, per_timing: int = 1) -> Timing:
        values = np.asarray(samples_ms, dtype=np.float64)
        p10, p25, median, p75, p90 = np.percentile(values, [10, 25, 50, 75, 90])
        return cls(
            float(median),
            float(p10),
            float(p90),
            len(values),
            warmup,
            float(p75 - p25),
            tuple(float(v) for v in values),
            per_timing,
        )

    def to_dict(self) -> dict:
        return {
            "median_ms": self.median_ms,
            "p10_ms": self.p10_ms,
            "p90_ms": self.p90_ms,
            "iqr_ms": self.iqr_ms,
            "spread": self.spread,
            "runs": self.runs,
            "runs_per_timing": self.per_timing,
            "warmup": self.warmup,
        }


@dataclass(frozen=True)
class Comparison:
    """A against B, interleaved. ``ratio`` = median(A) / median(B) (above 1: B is faster). ``noise`` is the
    relative half-width of a 95% interval of that ratio, from the spread (MAD) of the per-round log-ratios:
    a difference smaller than it is not a finding."""

    a: Timing
    b: Timing
    ratio: float
    noise: float
    rounds: int

    def to_dict(self) -> dict:
        return {
            "a": self.a.to_dict(),
            "b": self.b.to_dict(),
            "ratio": self.ratio,
            "noise": self.noise,
            "rounds": self.rounds,
        }


class Runner:
    """One ONNX Runtime session with fixed random inputs, ready to be timed. ``input_shapes`` gives the size
    of inputs the model leaves dynamic (`feed_shapes` checks them); other dynamic sizes become 1."""

    def __init__(
        self,
        model_bytes: bytes,
        provider: str = "cpu",
        threads: int | None = None,
        seed: int = 0,
        precision: str = "fp32",
        input_shapes: Mapping[str, Sequence[int]] | None = None,
    ) -> None:
        try:
            self.session = _session(model_bytes, provider, threads, precision)
        except EdgepruneError:
            raise
        except Exception as exc:  # onnxruntime's own error types: an invalid or unsupported model
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(f"ONNX Runtime cannot load the model ({first[:300]})") from None
        self.providers = tuple(self.session.get_providers())
        rng = np.random.default_rng(seed)
        sizes = input_shapes or {}
        self.feeds = {i.name: _random_input(i, rng, sizes.get(i.name)) for i in self.session.get_inputs()}

    def once_ms(self) -> float:
        start = time.perf_counter()
        self.session.run(None, self.feeds)
        return (time.perf_counter() - start) * 1000.0

    def mean_ms(self, runs: int) -> float:
        """Milliseconds per run over ``runs`` runs in a row."""
        start = time.perf_counter()
        for _ in range(runs):
            self.session.run(None, self.feeds)
        return (time.perf_counter() - start) * 1000.0 / runs

    def runs_per_timing(self) -> int:
        """How many runs in a row make one timing at least `SAMPLE_MS` long (1 for a model that long)."""
        quickest = min(self.once_ms() for _ in range(3))
        return int(min(max(np.ceil(SAMPLE_MS / max(quickest, 1e-3)), 1), 1000))


def _session(model_bytes: bytes, provider: str, threads: int | None, precision: str):
    """TensorRT builds fp16 (or int8) engines only when asked; the other providers run the model's own types."""
    from edgeprune.runtime import create_session

    if provider != "tensorrt" or precision == "fp32":
        return create_session(model_bytes, provider=provider, threads=threads)
    import onnxruntime as ort

    from edgeprune.runtime import _session_options, resolve_providers

    names = resolve_providers("tensorrt")
    options = {"trt_fp16_enable": True, "trt_int8_enable": precision == "int8"}
    return ort.InferenceSession(model_bytes, _session_options(threads), providers=[(names[0], options), *names[1:]])


def load_bytes(path: str | Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError(f"model not found: {path}") from None
    except OSError as exc:
        raise InputError(f"cannot read {path} ({exc.strerror or exc})") from None


def measure(runner: Runner, warmup: int = 5, repeats: int = 30) -> Timing:
    _check_counts(warmup, repeats)
    for _ in range(warmup):
        runner.once_ms()
    return Timing.of([runner.once_ms() for _ in range(repeats)], warmup)


def compare(a: Runner, b: Runner, warmup: int = 5, rounds: int = 30) -> Comparison:
    """Alternate A and B (the order flips every round so neither always runs on a warm cache), each timing
    `Runner.runs_per_timing` runs in a row, after a `SETTLE_S` pause for a quick model."""
    _check_counts(warmup, rounds)
    for _ in range(warmup):
        a.once_ms()
        b.once_ms()
    runs_a, runs_b = a.runs_per_timing(), b.runs_per_timing()
    pause = SETTLE_S if max(runs_a, runs_b) > 1 else 0.0  # a slow model's timing outlasts the spinning

    def timed(runner: Runner, runs: int) -> float:
        time.sleep(pause)
        return runner.mean_ms(runs)

    times_a, times_b = [], []
    for round_ in range(rounds):
        if round_ % 2:
            times_b.append(timed(b, runs_b))
            times_a.append(timed(a, runs_a))
        else:
            times_a.append(timed(a, runs_a))
            times_b.append(timed(b, runs_b))
    logs = np.log(np.asarray(times_a) / np.asarray(times_b))
    sigma = 1.4826 * float(np.median(np.abs(logs - np.median(logs))))
    noise = float(np.expm1(1.96 * 1.2533 * sigma / np.sqrt(rounds)))  # standard error of a median
    ta, tb = Timing.of(times_a, warmup, runs_a), Timing.of(times_b, warmup, runs_b)
    return Comparison(ta, tb, ta.median_ms / tb.median_ms, noise, rounds)


def _check_counts(warmup: int, repeats: int) -> None:
    if warmup < 0 or repeats < 1:
        raise InputError(f"warm-up must be >= 0 and repeats >= 1, got {warmup} and {repeats}")


_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(bool)": np.bool_,
}


def _random_input(arg, rng: np.random.Generator, size: Sequence[int] | None = None) -> np.ndarray:
    """At ``size`` when given; else symbolic dims become 1 (a batch of one image: the edge case)."""
    shape = list(size) if size is not None else [d if isinstance(d, int) and d > 0 else 1 for d in arg.shape]
    dtype = _DTYPES.get(arg.type)
    if dtype is None:
        raise InputError(f"cannot make a benchmark input of type {arg.type} for '{arg.name}'")
    if np.issubdtype(dtype, np.floating):
        return rng.standard_normal(shape).astype(dtype)
    return np.zeros(shape, dtype=dtype)
