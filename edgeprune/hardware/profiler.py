"""Measuring a device, on the device: per-layer latency tables of a model's layers at channel counts sampled on
the device's alignment step, the whole model, and (without a model) the roofline figures themselves.

Each distinct layer shape is measured once, alone, with the device's execution provider. The result is a new
`DeviceProfile`: the device's own figures plus the tables, stamped with the fingerprint they were taken under.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType

import numpy as np
from onnx import TensorProto, helper

from edgeprune.errors import InputError
from edgeprune.graph.model import MAX_IR_VERSION, ModelGraph
from edgeprune.hardware.fingerprint import cpu_name, fingerprint
from edgeprune.hardware.layers import LayerSpec, model_layers
from edgeprune.hardware.profile import DeviceProfile, LayerTable, ModelMeasurement, Roofline
from edgeprune.hardware.single_layer import layer_model, sample_counts
from edgeprune.hardware.timing import Runner, measure

logger = logging.getLogger(__name__)
Progress = Callable[[str, int, int], None]
QUANTILE = 20  # tables and the whole model: the 20th percentile of the runs, the same statistic for both


@dataclass(frozen=True)
class ProfileSettings:
    """``points``: counts sampled per channel axis; ``seconds_per_point``: timing time per measured point."""

    points: int = 5
    warmup: int = 3
    seconds_per_point: float = 0.15
    threads: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.points < 1 or self.seconds_per_point <= 0 or self.warmup < 0:
            raise InputError("--points must be >= 1 and the time per point positive")


def check_provider(device: DeviceProfile) -> None:
    """The device's provider must work here: tables taken with another provider would describe another device."""
    from edgeprune.runtime import provider_works

    name = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}
    if device.provider != "cpu" and not provider_works(name[device.provider]):
        raise InputError(
            f"the device {device.name} runs on the {device.provider} execution provider, which does not work on this "
            "machine: run `edgeprune profile` on the device itself (or use --device host here)"
        )


def sized_model(model_path: str | Path, input_shapes: Sequence[str] = ()) -> ModelGraph:
    """The model to profile, at the ``--input-shape`` given: layer tables are keyed by their input size, so
    a model whose height or width is dynamic is refused without one (before any timing starts)."""
    from edgeprune.graph import fix_input_shapes, load_model, require_concrete

    model = fix_input_shapes(load_model(model_path), input_shapes)
    require_concrete(model, "profiling its layers")
    return model


def profile_model(
    device: DeviceProfile,
    model: str | Path | ModelGraph,
    settings: ProfileSettings = ProfileSettings(),
    progress: Progress | None = None,
    input_shapes: Sequence[str] = (),
) -> DeviceProfile:
    """The device's profile plus tables for every layer shape of the model and the whole model's latency.
    ``model`` is a path (sized by ``input_shapes``) or a model from `sized_model`."""
    from edgeprune.analysis import analyze
    from edgeprune.graph import input_shapes_of
    from edgeprune.hardware.latency import LatencyModel

    check_provider(device)
    model = model if isinstance(model, ModelGraph) else sized_model(model, input_shapes)
    analysis = analyze(model)
    threads = settings.threads if settings.threads is not None else device.threads
    unique = {layer.key: layer for layer in model_layers(model, analysis)}
    stamp = fingerprint(device.provider, threads)
    device = _keep_compatible(device, stamp)
    tables = dict(device.layers)
    overhead = run_overhead_ms(device, threads)
    per_layer_us = layer_overhead_us(device, threads)
    for done, layer in enumerate(unique.values()):
        if progress:
            progress("layers", done, len(unique))
        tables[layer.key] = measure_layer(
            layer, _steps(layer, analysis, device.alignment), device, settings, threads, overhead
        )
    if progress:
        progress("layers", len(unique), len(unique))
    whole_ms = _whole_ms(device, model.proto.SerializeToString(), threads, settings)
    stamped = replace(
        device, layers=MappingProxyType(tables), fingerprint=MappingProxyType(stamp), measured_overhead_us=per_layer_us
    )
    latency = LatencyModel(stamped, model, analysis)
    layer_sum = latency.layer_sum_full
    reduced_ms = reduced_sum = 0.0
    halved = _halved(model, analysis, device.alignment)
    if halved is not None:
        reduced_ms = _whole_ms(device, halved[0].proto.SerializeToString(), threads, settings)
        reduced_sum = latency.layer_sum(halved[1])
    models = dict(device.models)
    shape = " ".join(f"{n}={','.join(map(str, d))}" for n, d in input_shapes_of(model).items())
    models[model.source_sha256] = ModelMeasurement(
        model.source_sha256, Path(model.source_path).name, whole_ms, layer_sum, shape, reduced_ms, reduced_sum
    )
    logger.info(
        "whole model %.3f ms (sum of its layers %.3f ms); every group at half %.3f ms (%.3f ms)",
        whole_ms,
        layer_sum,
        reduced_ms,
        reduced_sum,
    )
    return replace(stamped, models=MappingProxyType(models), threads=threads)


def _whole_ms(device: DeviceProfile, model_bytes: bytes, threads: int, settings: ProfileSettings) -> float:
    runner = _runner(device, model_bytes, threads)
    whole = measure(runner, warmup=max(settings.warmup, 5), repeats=_repeats(runner, settings.seconds_per_point * 10))
    return float(np.percentile(whole.samples_ms, QUANTILE)) if whole.samples_ms else whole.median_ms


def _halved(model: ModelGraph, analysis, alignment: int):
    """(the model with every prunable group cut to its first half of channels, rounded up to ``alignment``;
    its keep mask): the second point of the whole-model correction. None when no group can be halved."""
    from edgeprune.surgery import PruningPlan, apply_plan

    kept = {}
    for group in analysis.prunable_groups:
        count = min(group.channels, max(alignment, -(-group.channels // 2 // alignment) * alignment))
        if count < group.channels:
            kept[group.id] = tuple(range(count))
    if not kept:
        return None
    plan = PruningPlan(analysis.model_sha256, MappingProxyType(kept))
    return apply_plan(model, analysis, plan), analysis.keep_mask(kept)


_SAME_SETUP = ("onnxruntime", "tensorrt", "jetpack", "provider", "threads", "power_mode", "cpu", "gpu")


def _keep_compatible(device: DeviceProfile, stamp: dict[str, str]) -> DeviceProfile:
    """Tables already in the profile are kept only when they were measured under the same setup."""
    old = device.fingerprint
    if not device.measured or all(old.get(k, "") == stamp.get(k, "") for k in _SAME_SETUP):
        return device
    logger.warning("the profile's tables were measured under another setup; they are dropped and measured again")
    return replace(device, layers=MappingProxyType({}), models=MappingProxyType({}), measured_overhead_us=None)


def measure_layer(
    layer: LayerSpec,
    steps: tuple[int, int],
    device: DeviceProfile,
    settings: ProfileSettings,
    threads: int,
    overhead_ms: float = 0.0,
) -> LayerTable:
    """The layer's table; ``overhead_ms`` (the runtime's cost of one call, which a layer inside a model does
    not pay) is taken off every point."""
    cin_counts = sample_counts(layer.cin, steps[0], settings.points, layer.in_prunable)
    cout_counts = sample_counts(layer.cout, steps[1], settings.points, layer.out_prunable)
    if layer.depthwise:
        counts = sample_counts(layer.cout, steps[1], settings.points, layer.out_prunable or layer.in_prunable)
        ms = _less(_time_round_robin(layer, [(c, c) for c in counts], device, settings, threads), overhead_ms)
        return LayerTable(layer.key, counts, counts, tuple((v,) for v in ms), depthwise=True)
    points = [(ci, co) for ci in cin_counts for co in cout_counts]
    ms = _less(_time_round_robin(layer, points, device, settings, threads), overhead_ms)
    width = len(cout_counts)
    return LayerTable(
        layer.key, cin_counts, cout_counts, tuple(tuple(ms[i : i + width]) for i in range(0, len(ms), width))
    )


def _less(values: list[float], overhead_ms: float) -> list[float]:
    """Take the call overhead off, keeping at least a twentieth of each value (order, so monotony, is kept)."""
    return [max(v - overhead_ms, 0.05 * v) for v in values]


def run_overhead_ms(device: DeviceProfile, threads: int) -> float:
    """What one call to the runtime costs with (almost) nothing to compute: a 1-element Relu."""
    node = helper.make_node("Relu", ["x"], ["y"])
    graph = helper.make_graph(
        [node],
        "empty",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=MAX_IR_VERSION)
    runner = _runner(device, model.SerializeToString(), threads)
    timing = measure(runner, warmup=20, repeats=200)
    return float(np.percentile(timing.samples_ms, QUANTILE))


OVERHEAD_CHAIN = 32  # extra layers timed to find the cost of one more


def layer_overhead_us(device: DeviceProfile, threads: int, rounds: int = 60) -> float:
    """What one more layer costs inside a model when it computes almost nothing (µs): a chain of 1 + N tiny
    conv + ReLU layers against one, interleaved, the 20th percentiles' difference over N. It is the launch
    cost a layer pays whatever its size: what removing a layer saves and no channel cut can."""
    short = _runner(device, _chain_model(1), threads)
    long = _runner(device, _chain_model(1 + OVERHEAD_CHAIN), threads)
    for runner in (short, long):
        for _ in range(10):
            runner.once_ms()
    times: list[list[float]] = [[], []]
    for _ in range(rounds):
        times[0].append(short.once_ms())
        times[1].append(long.once_ms())
    a, b = (float(np.percentile(t, QUANTILE)) for t in times)
    return max(b - a, 0.0) * 1000.0 / OVERHEAD_CHAIN


def _chain_model(layers: int, channels: int = 8, size: int = 4) -> bytes:
    """``layers`` 1x1 convs (each followed by a ReLU, as a runtime fuses it) on a tiny map."""
    rng = np.random.default_rng(0)
    nodes, inits, name = [], [], "x"
    for i in range(layers):
        weight = (rng.standard_normal((channels, channels, 1, 1)) * 0.3).astype(np.float32)
        inits.append(helper.make_tensor(f"w{i}", TensorProto.FLOAT, weight.shape, weight.ravel().tolist()))
        nodes.append(helper.make_node("Conv", [name, f"w{i}"], [f"c{i}"]))
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"]))
        name = f"r{i}"
    shape = [1, channels, size, size]
    graph = helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=MAX_IR_VERSION)
    return model.SerializeToString()


def _steps(layer: LayerSpec, analysis, alignment: int) -> tuple[int, int]:
    """Channel steps of the input and output axes: the alignment, times the positions one channel owns (a
    flattened input), times the conv's groups (each group keeps an equal share)."""
    steps = []
    for tensor, full in ((layer.in_tensor, layer.cin), (layer.out_tensor, layer.cout)):
        channels = analysis.tensors.get(tensor)
        unit = full // max(len(np.unique(channels.classes)), 1) if channels is not None else 1
        group = layer.group if layer.op == "Conv" and not layer.depthwise else 1
        steps.append(math.lcm(alignment * unit, group))
    return steps[0], steps[1]


def _time_round_robin(
    layer: LayerSpec, points: list[tuple[int, int]], device: DeviceProfile, settings: ProfileSettings, threads: int
) -> list[float]:
    """ms at every point (the 20th percentile of its runs), timed in rounds that run each point once: a machine
    that slows down for a while slows every point alike, so the table's shape (what the latency model
    interpolates) holds; the low percentile keeps the runs that other processes did not interrupt."""
    runners = [_runner(device, layer_model(layer, ci, co, settings.seed), threads) for ci, co in points]
    for runner in runners:
        for _ in range(settings.warmup):
            runner.once_ms()
    one_round = sum(min(r.once_ms() for _ in range(2)) for r in runners)
    rounds = int(np.clip(settings.seconds_per_point * len(points) * 1000.0 / max(one_round, 1e-3), 7, 300))
    times: list[list[float]] = [[] for _ in runners]
    for round_ in range(rounds):
        order = range(len(runners)) if round_ % 2 == 0 else reversed(range(len(runners)))
        for i in order:
            times[i].append(runners[i].once_ms())
    return [float(np.percentile(t, QUANTILE)) for t in times]


def _repeats(runner: Runner, seconds: float) -> int:
    estimate = min(runner.once_ms() for _ in range(2))
    return int(np.clip(seconds * 1000.0 / max(estimate, 1e-3), 7, 300))


def measure_roofline(device: DeviceProfile, settings: ProfileSettings = ProfileSettings()) -> DeviceProfile:
    """Peak FLOP/s from a large matrix product and bandwidth from a large element-wise add, measured here."""
    check_provider(device)
    threads = settings.threads if settings.threads is not None else device.threads
    n, elements = 1024, 1 << 24
    gemm = _runner(device, _op_model("MatMul", [n, n], [n, n]), threads)
    add = _runner(device, _op_model("Add", [elements], [elements]), threads)
    gemm_ms = measure(gemm, warmup=2, repeats=15).p10_ms  # a peak: the fast runs, not the ones others slowed
    add_ms = measure(add, warmup=2, repeats=15).p10_ms
    flops = 2.0 * n**3 / (gemm_ms / 1000.0)
    bandwidth = 3 * 4 * elements / (add_ms / 1000.0)
    roof = device.roofline
    peaks = {p: v * flops / roof.peak_flops[device.precision] for p, v in roof.peak_flops.items()}
    measured = Roofline(
        peak_flops=MappingProxyType(peaks),
        memory_bandwidth=bandwidth,
        efficiency=roof.efficiency,
        layer_overhead_us=roof.layer_overhead_us,
        sources=(
            f"measured by `edgeprune profile` on {cpu_name()}: {n}x{n}x{n} MatMul for FLOP/s, "
            f"{elements}-element Add for bandwidth ({device.provider} provider, threads={threads or 'default'})",
        ),
        notes=f"{device.precision} peak and bandwidth measured; other precisions keep the ratios of the {device.name} profile",
    )
    return replace(
        device,
        roofline=measured,
        threads=threads,
        fingerprint=MappingProxyType(fingerprint(device.provider, threads)),
        measured_overhead_us=layer_overhead_us(device, threads),
    )


def _runner(device: DeviceProfile, model_bytes: bytes, threads: int) -> Runner:
    """A session as the device runs models: its provider, its precision, the threads being profiled."""
    return Runner(model_bytes, provider=device.provider, threads=threads or None, precision=device.precision)


def _op_model(op: str, a: list[int], b: list[int]) -> bytes:
    node = helper.make_node(op, ["a", "b"], ["y"])
    graph = helper.make_graph(
        [node],
        op.lower(),
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, a),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, b),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None] * len(a))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=MAX_IR_VERSION)
    return model.SerializeToString()
