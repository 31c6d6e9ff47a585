"""Random small CNNs built directly as ONNX (no torch): a hypothesis strategy for the surgery properties.

A helper module for tests (not a test file). `cnn_models()` draws the structure (which blocks, their
channel counts, strides, groups...) with hypothesis, and the weights from a numpy generator seeded by a
drawn integer, so examples shrink by structure and stay cheap to draw. Every model is opset 17, IR 10
(onnx >= 1.23 writes 14, which ONNX Runtime rejects), and passes the full ONNX checker.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import onnx
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 10
MAX_CHANNELS = 16
#: Ops whose channel semantics must freeze what they touch (mixing channels, or outside the table).
OPAQUE_OPS = ("LRN", "Softmax", "CumSum")
_ACTIVATIONS = ("Relu", "LeakyRelu", "Clip", "HardSwish", "HardSigmoid", "Sigmoid", "Tanh", "SiLU", "PRelu")
_INT64_MAX = np.iinfo(np.int64).max


@dataclass(frozen=True)
class Feature:
    """A feature map being built: its tensor name, channel count and (square) spatial size.

    ``joined``: its channels may come from several channel groups (a Concat upstream, not yet mixed by a
    conv), which a grouped conv must not read while that surgery bug stands (see `block_concat_grouped_conv`).
    ``zero_padded``: no pool may follow, since the fused pool's pads could reach its kernel size, which
    ONNX Runtime refuses.
    """

    name: str
    c: int
    hw: int
    joined: bool = False
    zero_padded: bool = False  # made by a zero Pad: ONNX Runtime would fuse that Pad into a following pool


@dataclass(frozen=True)
class RandomModel:
    proto: onnx.ModelProto
    dynamic_batch: bool
    opaque_nodes: tuple[tuple[str, str], ...]  # (node name, op) of the nodes that must freeze their groups
    blocks: tuple[str, ...]  # the blocks drawn, in order: hypothesis prints them with a falsifying example


class _Builder:
    def __init__(self, draw, seed: int, batch: int | str) -> None:
        self.draw = draw
        self.rng = np.random.default_rng(seed)
        self.batch = batch
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.opaque: list[tuple[str, str]] = []
        self.blocks: list[str] = []
        self._count = 0

    def fresh(self, prefix: str) -> str:
        self._count += 1
        return f"{prefix}_{self._count}"

    def const(self, values, prefix: str = "c") -> str:
        name = self.fresh(prefix)
        self.initializers.append(numpy_helper.from_array(np.asarray(values), name))
        return name

    def node(self, op: str, inputs: list[str], outputs: int = 1, **attrs) -> list[str]:
        name = self.fresh(op)
        names = [f"{name}.out{i}" for i in range(outputs)]
        self.nodes.append(helper.make_node(op, inputs, names, name=name, **attrs))
        return names

    def normal(self, shape, scale: float) -> np.ndarray:
        return (self.rng.standard_normal(shape) * scale).astype(np.float32)

    def uniform(self, low: float, high: float, shape) -> np.ndarray:
        return self.rng.uniform(low, high, shape).astype(np.float32)

    def choose(self, options):
        return self.draw(st.sampled_from(list(options)))

    def integer(self, low: int, high: int) -> int:
        return self.draw(st.integers(low, high))

    def flip(self) -> bool:
        return self.draw(st.booleans())


# -- primitive layers ---------------------------------------------------------------------------------

def conv(
    b: _Builder, x: Feature, out_c: int, k: int = 1, stride: int = 1, group: int = 1, bias: bool = True
) -> Feature:
    per_group = x.c // group
    weight = b.const(b.normal((out_c, per_group, k, k), 1.0 / math.sqrt(per_group * k * k)), "w")
    inputs = [x.name, weight] + ([b.const(b.normal((out_c,), 0.2), "b")] if bias else [])
    pad = k // 2
    (out,) = b.node("Conv", inputs, kernel_shape=[k, k], pads=[pad] * 4, strides=[stride] * 2, group=group)
    depthwise = group > 1 and per_group == 1
    return Feature(out, out_c, (x.hw + 2 * pad - k) // stride + 1, x.joined and depthwise)


def batchnorm(b: _Builder, x: Feature) -> Feature:
    params = [b.uniform(0.5, 1.5, x.c), b.normal(x.c, 0.1), b.normal(x.c, 0.1), b.uniform(0.5, 1.5, x.c)]
    names = [b.const(p, n) for p, n in zip(params, ("gamma", "beta", "mean", "var"))]
    (out,) = b.node("BatchNormalization", [x.name] + names, epsilon=1e-5)
    return Feature(out, x.c, x.hw, x.joined)


def activation(b: _Builder, x: Feature, op: str) -> Feature:
    if op == "SiLU":
        (gate,) = b.node("Sigmoid", [x.name])
        (out,) = b.node("Mul", [x.name, gate])
    elif op == "LeakyRelu":
        (out,) = b.node("LeakyRelu", [x.name], alpha=0.1)
    elif op == "Clip":
        low, high = b.const(np.float32(-1.0), "min"), b.const(np.float32(1.5), "max")
        (out,) = b.node("Clip", [x.name, low, high])
    elif op == "PRelu":
        shape = (x.c, 1, 1) if x.c > 1 and b.flip() else (1, 1, 1)
        (out,) = b.node("PRelu", [x.name, b.const(b.uniform(0.05, 0.5, shape), "slope")])
    else:
        (out,) = b.node(op, [x.name])
    return Feature(out, x.c, x.hw, x.joined)


def const_arith(b: _Builder, x: Feature) -> Feature:
    op = b.choose(("Add", "Mul", "Sub", "Div"))
    shape = b.choose(((1, x.c, 1, 1), (x.c, 1, 1), ()))
    if op in ("Mul", "Div"):
        values = b.uniform(0.5, 2.0, shape) * np.where(b.rng.random(shape) < 0.2, -1, 1).astype(np.float32)
    else:
        values = b.normal(shape, 0.5)
    constant = b.const(values.astype(np.float32), "k")
    left = op != "Div" and b.flip()  # c / x could divide by zero
    (out,) = b.node(op, [constant, x.name] if left else [x.name, constant])
    return Feature(out, x.c, x.hw, x.joined)


# -- blocks: each takes the current feature map and returns the next ----------------------------------

def block_conv(b: _Builder, x: Feature) -> Feature:
    stride = 2 if x.hw >= 6 and b.integer(0, 3) == 0 else 1
    y = conv(b, x, b.integer(2, 12), k=b.choose((1, 3)), stride=stride, bias=b.flip())
    if b.integer(0, 2) == 0:
        y = batchnorm(b, y)  # folded into the conv by normalisation
    if b.integer(0, 3) == 0:
        y = const_arith(b, y)  # folded too when per channel and on the conv's side
    return y


def block_grouped_conv(b: _Builder, x: Feature) -> Feature:
    groups = b.choose([g for g in (2, 4) if x.c % g == 0])
    out_c = groups * b.integer(1, max(1, min(3, MAX_CHANNELS // groups)))
    return conv(b, x, out_c, k=b.choose((1, 3)), group=groups, bias=b.flip())


def block_concat_grouped_conv(b: _Builder, x: Feature) -> Feature:
    """A grouped conv straight after a Concat: its groups read channels of several channel groups."""
    y = block_concat(b, x)
    if y.c % 2:  # an odd count: a 2-group conv cannot read it; slice one channel off
        y = block_slice_to(b, y, y.c - 1)
    return conv(b, y, 2 * b.integer(1, 4), k=b.choose((1, 3)), group=2, bias=b.flip())


def block_depthwise(b: _Builder, x: Feature) -> Feature:
    multiplier = 2 if 2 * x.c <= MAX_CHANNELS and b.integer(0, 2) == 0 else 1
    stride = 2 if x.hw >= 6 and b.integer(0, 3) == 0 else 1
    y = conv(b, x, x.c * multiplier, k=3, stride=stride, group=x.c, bias=b.flip())
    return batchnorm(b, y) if b.flip() else y


def block_activation(b: _Builder, x: Feature) -> Feature:
    return activation(b, x, b.choose(_ACTIVATIONS))


def block_residual(b: _Builder, x: Feature) -> Feature:
    branch = conv(b, x, x.c, k=b.choose((1, 3)))
    if b.flip():
        branch = activation(b, branch, "Relu")
    (out,) = b.node(b.choose(("Add", "Add", "Mul")), [x.name, branch.name] if b.flip() else [branch.name, x.name])
    y = Feature(out, x.c, x.hw, x.joined)
    return batchnorm(b, y) if b.integer(0, 2) == 0 else y  # stays: no conv right before it


def block_shared_const_arith(b: _Builder, x: Feature) -> Feature:
    """One per-channel constant used by two nodes on two channel groups (exporters share equal constants)."""
    op = b.choose(("Add", "Mul"))
    constant = b.const(b.uniform(0.5, 1.5, (1, x.c, 1, 1)), "shared")
    (first,) = b.node(op, [x.name, constant])
    inner = activation(b, conv(b, Feature(first, x.c, x.hw), x.c, k=b.choose((1, 3))), "Relu")
    (out,) = b.node(op, [inner.name, constant])
    return Feature(out, x.c, x.hw)


def block_concat(b: _Builder, x: Feature) -> Feature:
    room = MAX_CHANNELS - x.c
    first = x if room >= 2 and b.flip() else conv(b, x, b.integer(1, 6), k=b.choose((1, 3)))
    second = conv(b, x, b.integer(1, max(1, min(6, MAX_CHANNELS - first.c))), k=b.choose((1, 3)))
    pair = [first, second] if b.flip() else [second, first]
    (out,) = b.node("Concat", [p.name for p in pair], axis=1)
    y = Feature(out, first.c + second.c, x.hw, joined=True)
    return batchnorm(b, y) if b.integer(0, 2) == 0 else y  # stays: a Concat is not a Conv


def block_split_add(b: _Builder, x: Feature) -> Feature:
    """Split into halves, then add or multiply them: channels i and i + C/2 of one group are coupled."""
    half = x.c // 2
    sizes = b.const(np.array([half, half], dtype=np.int64), "split")
    low, high = b.node("Split", [x.name, sizes], outputs=2, axis=1)
    (out,) = b.node(b.choose(("Add", "Mul")), [low, high])
    return Feature(out, half, x.hw, x.joined)


def block_split_concat(b: _Builder, x: Feature) -> Feature:
    """ShuffleNet v2 style: split, convolve one piece, concatenate the pieces again."""
    first = b.integer(1, x.c - 1)
    sizes = b.const(np.array([first, x.c - first], dtype=np.int64), "split")
    low, high = b.node("Split", [x.name, sizes], outputs=2, axis=1)
    width = b.integer(1, max(1, min(6, MAX_CHANNELS - first)))
    processed = conv(b, Feature(high, x.c - first, x.hw), width, k=b.choose((1, 3)))
    pair = [Feature(low, first, x.hw), processed]
    if b.flip():
        pair.reverse()
    (out,) = b.node("Concat", [p.name for p in pair], axis=1)
    return Feature(out, first + processed.c, x.hw, joined=True)


def block_slice(b: _Builder, x: Feature) -> Feature:
    start = b.integer(0, x.c - 1)
    stop = b.integer(start + 1, x.c)
    begin = b.choose((start, start - x.c))  # bounds counted from the end too, as exporters write them
    end = b.choose([stop] + ([_INT64_MAX] if stop == x.c else []) + ([stop - x.c] if stop < x.c else []))
    names = [b.const(np.array([v], dtype=np.int64), n) for v, n in ((begin, "starts"), (end, "ends"), (1, "axes"))]
    (out,) = b.node("Slice", [x.name] + names)
    return Feature(out, stop - start, x.hw, x.joined)


def block_slice_to(b: _Builder, x: Feature, width: int) -> Feature:
    names = [b.const(np.array([v], dtype=np.int64), n) for v, n in ((0, "starts"), (width, "ends"), (1, "axes"))]
    (out,) = b.node("Slice", [x.name] + names)
    return Feature(out, width, x.hw, x.joined)


def block_shuffle(b: _Builder, x: Feature) -> Feature:
    groups = b.choose([g for g in (2, 3, 4) if x.c % g == 0 and g < x.c])
    split_shape = b.const(np.array([b.batch, groups, x.c // groups, x.hw, x.hw], dtype=np.int64), "shape")
    (split,) = b.node("Reshape", [x.name, split_shape])
    (swapped,) = b.node("Transpose", [split], perm=[0, 2, 1, 3, 4])
    merged_shape = b.const(np.array([b.batch, x.c, x.hw, x.hw], dtype=np.int64), "shape")
    (out,) = b.node("Reshape", [swapped, merged_shape])
    return Feature(out, x.c, x.hw, x.joined)


def block_pool(b: _Builder, x: Feature) -> Feature:
    op = b.choose(("MaxPool", "AveragePool"))
    if x.hw >= 4 and b.flip():
        (out,) = b.node(op, [x.name], kernel_shape=[2, 2], strides=[2, 2])
        return Feature(out, x.c, x.hw // 2, x.joined)
    (out,) = b.node(op, [x.name], kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1])
    return Feature(out, x.c, x.hw, x.joined)


def block_pad(b: _Builder, x: Feature) -> Feature:
    mode = b.choose(("constant", "constant", "reflect", "edge"))
    pad = b.integer(1, 2 if x.hw > 2 else 1)
    inputs = [x.name, b.const(np.array([0, 0, pad, pad, 0, 0, pad, pad], dtype=np.int64), "pads")]
    value = b.choose((0.0, 0.5)) if mode == "constant" else None
    if value:
        inputs.append(b.const(np.float32(value), "pad_value"))
    (out,) = b.node("Pad", inputs, mode=mode)
    return Feature(out, x.c, x.hw + 2 * pad, x.joined, zero_padded=value == 0.0)


def block_resize(b: _Builder, x: Feature) -> Feature:
    if not isinstance(b.batch, int) or b.integer(0, 3):  # sizes would fix the batch too
        scales = b.const(np.array([1.0, 1.0, 2.0, 2.0], dtype=np.float32), "scales")
        (out,) = b.node("Resize", [x.name, "", scales], mode="nearest")
    else:  # target sizes instead of scales: surgery must rewrite the channel entry
        sizes = b.const(np.array([b.batch, x.c, 2 * x.hw, 2 * x.hw], dtype=np.int64), "sizes")
        (out,) = b.node("Resize", [x.name, "", "", sizes], mode="nearest")
    return Feature(out, x.c, x.hw * 2, x.joined)


def block_squeeze_excite(b: _Builder, x: Feature) -> Feature:
    (pooled,) = b.node("GlobalAveragePool", [x.name])
    reduced = activation(b, conv(b, Feature(pooled, x.c, 1), b.integer(1, max(1, x.c // 2))), "Relu")
    gate = activation(b, conv(b, reduced, x.c), b.choose(("Sigmoid", "HardSigmoid")))
    (out,) = b.node("Mul", [x.name, gate.name] if b.flip() else [gate.name, x.name])
    return Feature(out, x.c, x.hw, x.joined)


def block_opaque(b: _Builder, x: Feature) -> Feature:
    op = b.choose(OPAQUE_OPS)
    if op == "LRN":
        (out,) = b.node("LRN", [x.name], size=3)
    elif op == "Softmax":
        (out,) = b.node("Softmax", [x.name], axis=1)
    else:
        (out,) = b.node("CumSum", [x.name, b.const(np.array(1, dtype=np.int64), "axis")])
    b.opaque.append((b.nodes[-1].name, op))
    return Feature(out, x.c, x.hw)


#: name -> (block, can it follow this feature map?, weight). Weights favour the ops that make channels.
_BLOCKS = {
    "conv": (block_conv, lambda x, b: True, 4),
    "grouped_conv": (block_grouped_conv, lambda x, b: x.c % 2 == 0 and not x.joined, 3),
    "concat_grouped_conv": (block_concat_grouped_conv, lambda x, b: x.c < MAX_CHANNELS - 1, 1),
    "depthwise": (block_depthwise, lambda x, b: 2 <= x.c, 2),
    "batchnorm": (batchnorm, lambda x, b: True, 1),
    "activation": (block_activation, lambda x, b: True, 3),
    "const_arith": (const_arith, lambda x, b: True, 1),
    "residual": (block_residual, lambda x, b: True, 2),
    "shared_const_arith": (block_shared_const_arith, lambda x, b: True, 1),
    "concat": (block_concat, lambda x, b: x.c < MAX_CHANNELS, 2),
    "split_add": (block_split_add, lambda x, b: x.c >= 2 and x.c % 2 == 0, 1),
    "split_concat": (block_split_concat, lambda x, b: x.c >= 2, 2),
    "slice": (block_slice, lambda x, b: x.c >= 2, 1),
    "shuffle": (block_shuffle, lambda x, b: isinstance(b.batch, int) and x.c >= 4 and x.c % 2 == 0, 4),
    "pool": (block_pool, lambda x, b: not x.zero_padded, 1),
    "pad": (block_pad, lambda x, b: x.hw <= 16, 1),
    "resize": (block_resize, lambda x, b: x.hw <= 10, 1),
    "squeeze_excite": (block_squeeze_excite, lambda x, b: True, 1),
    "opaque": (block_opaque, lambda x, b: True, 0),  # only where asked for (see `cnn_models`)
}


# -- heads ----------------------------------------------------------------------------------------------

def head(b: _Builder, x: Feature) -> tuple[str, list]:
    """The model's output: its name and shape."""
    kind = b.choose(("gap_gemm", "flatten_gemm", "conv"))
    b.blocks.append(f"head:{kind}")
    if kind == "conv":
        y = conv(b, x, b.integer(1, 6), k=b.choose((1, 3)))
        return y.name, [b.batch, y.c, y.hw, y.hw]
    if kind == "gap_gemm":
        (flat,) = b.node("Flatten", b.node("GlobalAveragePool", [x.name]), axis=1)
        features = x.c
    else:
        if x.hw > 4 and x.zero_padded:
            x = activation(b, x, "Relu")
        while x.hw > 4:
            (pooled,) = b.node("MaxPool", [x.name], kernel_shape=[2, 2], strides=[2, 2])
            x = Feature(pooled, x.c, x.hw // 2)
        if b.flip():
            (flat,) = b.node("Flatten", [x.name], axis=1)
        else:  # x.view(N, -1) as exported: a Reshape that keeps the batch
            (flat,) = b.node("Reshape", [x.name, b.const(np.array([0, -1], dtype=np.int64), "shape")])
        features = x.c * x.hw * x.hw
    classes = b.integer(2, 6)
    transposed = b.flip()  # nn.Linear exports transB=1; other exporters store the weight as K x N
    weight = b.normal((classes, features), 1.0 / math.sqrt(features))
    weight_name = b.const(weight if transposed else np.ascontiguousarray(weight.T), "fc_w")
    bias = b.const(b.normal((classes,), 0.2), "fc_b")
    (out,) = b.node("Gemm", [flat, weight_name, bias], transB=int(transposed))
    return out, [b.batch, classes]


@st.composite
def cnn_models(
    draw, opaque: str = "sometimes", force: tuple[str, ...] = (), exclude: tuple[str, ...] = ()
) -> RandomModel:
    """A random small CNN of about 3-12 nodes before its head.

    ``opaque``: "never", "sometimes" (about one model in six) or "always" holds an op that must freeze
    the groups it touches. ``force``: blocks that every model holds (at random places); ``exclude``:
    blocks never drawn otherwise.
    """
    if "shuffle" in force:
        raise ValueError("a shuffle needs a static batch and an even channel count; it cannot be forced")
    dynamic = draw(st.booleans())
    batch: int | str = "batch" if dynamic else draw(st.integers(1, 2))
    b = _Builder(draw, draw(st.integers(0, 2**32 - 1)), batch)
    channels, size = draw(st.integers(3, 8)), draw(st.integers(6, 12))
    x = Feature("input", channels, size)
    target = draw(st.integers(2, 10))
    forced = list(force)
    if opaque == "always" or (opaque == "sometimes" and draw(st.integers(0, 5)) == 0):
        forced.append("opaque")
    pending = sorted((draw(st.integers(0, target)), name) for name in forced)
    if draw(st.integers(0, 5)):  # most CNNs start with a conv; the others have blocks on the input itself
        x = block_conv(b, x)
        b.blocks.append("stem:conv")
    step = 0
    while len(b.nodes) < target or pending:
        if pending and pending[0][0] <= step:
            name = pending[0][1]
            if _BLOCKS[name][1](x, b):
                pending.pop(0)
            else:  # make room for it: every block but a shuffle (static batch only) can follow 4 channels
                name = "room"
        else:
            names = [n for n, (_, ok, w) in _BLOCKS.items() if n not in exclude and ok(x, b) for _ in range(w)]
            name = draw(st.sampled_from(names))
        if name == "room":
            x, name = conv(b, x, 4), "conv"
        else:
            x = _BLOCKS[name][0](b, x)
        b.blocks.append(name if name != "opaque" else f"opaque:{b.opaque[-1][1]}")
        step += 1
    output, output_shape = head(b, x)
    graph = helper.make_graph(
        b.nodes, "random_cnn",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, channels, size, size])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, output_shape)],
        initializer=b.initializers,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="hypothesis")
    proto.ir_version = IR_VERSION
    onnx.checker.check_model(proto, full_check=True)
    return RandomModel(proto, dynamic, tuple(b.opaque), tuple(b.blocks))
