"""Small ONNX models built in code, and helpers to write and run them (a helper module, not a test file).

Every model uses opset 17 and IR version 10 (onnx >= 1.23 writes 14 by default, which ONNX Runtime
rejects). Weights are seeded, so each builder returns the same model every time.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 10


def make_model(nodes, inputs, outputs, initializers=(), name: str = "test") -> onnx.ModelProto:
    """Wrap nodes into a checked opset-17, IR-10 model."""
    graph = helper.make_graph(list(nodes), name, list(inputs), list(outputs), initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="tests")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def tensor_info(name: str, shape, elem_type: int = TensorProto.FLOAT) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem_type, list(shape))


def init(name: str, array: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(array), name)


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _weight(rng, *shape) -> np.ndarray:
    return (rng.standard_normal(shape) * 0.3).astype(np.float32)


def _bn_params(rng, prefix: str, channels: int) -> list[onnx.TensorProto]:
    return [
        init(f"{prefix}.gamma", rng.uniform(0.5, 1.5, channels).astype(np.float32)),
        init(f"{prefix}.beta", rng.uniform(-0.5, 0.5, channels).astype(np.float32)),
        init(f"{prefix}.mean", rng.uniform(-0.5, 0.5, channels).astype(np.float32)),
        init(f"{prefix}.var", rng.uniform(0.5, 1.5, channels).astype(np.float32)),
    ]


def conv_bn_relu_model(
    channels: tuple[int, int, int] = (3, 8, 4), size: int = 8, batch: int | str = 1, seed: int = 0
) -> onnx.ModelProto:
    """x -> Conv 3x3 -> BatchNormalization -> Relu -> Conv 1x1 -> y: one prunable group (conv1's outputs)."""
    c_in, c_mid, c_out = channels
    rng = _rng(seed)
    nodes = [
        helper.make_node("Conv", ["x", "conv1.w", "conv1.b"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node(
            "BatchNormalization", ["c1", "bn1.gamma", "bn1.beta", "bn1.mean", "bn1.var"], ["b1"], name="bn1"
        ),
        helper.make_node("Relu", ["b1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "conv2.w", "conv2.b"], ["y"], name="conv2"),
    ]
    inits = [
        init("conv1.w", _weight(rng, c_mid, c_in, 3, 3)),
        init("conv1.b", _weight(rng, c_mid)),
        *_bn_params(rng, "bn1", c_mid),
        init("conv2.w", _weight(rng, c_out, c_mid, 1, 1)),
        init("conv2.b", _weight(rng, c_out)),
    ]
    return make_model(
        nodes,
        [tensor_info("x", [batch, c_in, size, size])],
        [tensor_info("y", [batch, c_out, size, size])],
        inits,
    )


def two_group_model(size: int = 8, seed: int = 1) -> onnx.ModelProto:
    """x -> Conv(8) -> Relu -> Conv(6) -> Relu -> Conv(4) -> y: two prunable groups, big enough weights."""
    rng = _rng(seed)
    nodes = [
        helper.make_node("Conv", ["x", "a.w", "a.b"], ["a"], name="conv_a", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["a"], ["ra"], name="relu_a"),
        helper.make_node("Conv", ["ra", "b.w", "b.b"], ["b"], name="conv_b", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["b"], ["rb"], name="relu_b"),
        helper.make_node("Conv", ["rb", "c.w", "c.b"], ["y"], name="conv_c"),
    ]
    inits = [
        init("a.w", _weight(rng, 8, 3, 3, 3)), init("a.b", _weight(rng, 8)),
        init("b.w", _weight(rng, 6, 8, 3, 3)), init("b.b", _weight(rng, 6)),
        init("c.w", _weight(rng, 4, 6, 1, 1)), init("c.b", _weight(rng, 4)),
    ]
    return make_model(nodes, [tensor_info("x", [1, 3, size, size])], [tensor_info("y", [1, 4, size, size])], inits)


def constant_weights_model(seed: int = 2) -> onnx.ModelProto:
    """Conv -> Relu -> Conv whose weights and biases come from Constant nodes, not initializers."""
    rng = _rng(seed)
    arrays = {"w1": _weight(rng, 8, 3, 3, 3), "b1": _weight(rng, 8), "w2": _weight(rng, 4, 8, 1, 1)}
    nodes = [
        helper.make_node("Constant", [], [name], name=f"const_{name}", value=init(f"{name}_value", array))
        for name, array in arrays.items()
    ]
    nodes += [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2"], ["y"], name="conv2"),
    ]
    return make_model(nodes, [tensor_info("x", [1, 3, 8, 8])], [tensor_info("y", [1, 4, 8, 8])])


def conv_mul_add_model(seed: int = 3) -> onnx.ModelProto:
    """Conv -> Mul(per-channel) -> Add(per-channel) -> Relu -> Conv: the affine folds into the Conv."""
    rng = _rng(seed)
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Mul", ["c1", "scale"], ["m1"], name="mul1"),
        helper.make_node("Add", ["shift", "m1"], ["a1"], name="add1"),
        helper.make_node("Relu", ["a1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2"], ["y"], name="conv2"),
    ]
    inits = [
        init("w1", _weight(rng, 8, 3, 3, 3)),
        init("scale", rng.uniform(0.5, 2.0, (8, 1, 1)).astype(np.float32)),
        init("shift", rng.uniform(-1.0, 1.0, (1, 8, 1, 1)).astype(np.float32)),
        init("w2", _weight(rng, 4, 8, 1, 1)),
    ]
    return make_model(nodes, [tensor_info("x", [1, 3, 8, 8])], [tensor_info("y", [1, 4, 8, 8])], inits)


def relu_bn_model(seed: int = 4) -> onnx.ModelProto:
    """Conv -> Relu -> BatchNormalization -> Conv: the BatchNormalization follows a Relu, so it stays."""
    rng = _rng(seed)
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("BatchNormalization", ["r1", "bn.gamma", "bn.beta", "bn.mean", "bn.var"], ["b1"], name="bn"),
        helper.make_node("Conv", ["b1", "w2"], ["y"], name="conv2"),
    ]
    inits = [init("w1", _weight(rng, 8, 3, 3, 3)), *_bn_params(rng, "bn", 8), init("w2", _weight(rng, 4, 8, 1, 1))]
    return make_model(nodes, [tensor_info("x", [1, 3, 8, 8])], [tensor_info("y", [1, 4, 8, 8])], inits)


def channel_shuffle_model(channels: int = 8, groups: int = 2, size: int = 6, seed: int = 5) -> onnx.ModelProto:
    """Conv -> Reshape(N,g,C/g,H,W) -> Transpose(0,2,1,3,4) -> Reshape(N,C,H,W) -> Conv (ShuffleNet's shuffle)."""
    rng = _rng(seed)
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Reshape", ["c1", "split_shape"], ["s1"], name="shuffle_split"),
        helper.make_node("Transpose", ["s1"], ["t1"], name="shuffle_transpose", perm=[0, 2, 1, 3, 4]),
        helper.make_node("Reshape", ["t1", "merge_shape"], ["m1"], name="shuffle_merge"),
        helper.make_node("Conv", ["m1", "w2"], ["y"], name="conv2"),
    ]
    inits = [
        init("w1", _weight(rng, channels, 3, 3, 3)),
        init("split_shape", np.array([1, groups, channels // groups, size, size], dtype=np.int64)),
        init("merge_shape", np.array([1, channels, size, size], dtype=np.int64)),
        init("w2", _weight(rng, 4, channels, 1, 1)),
    ]
    return make_model(
        nodes, [tensor_info("x", [1, 3, size, size])], [tensor_info("y", [1, 4, size, size])], inits
    )


def lrn_model(seed: int = 6) -> onnx.ModelProto:
    """x -> Conv(8) -> LRN -> Conv(6) -> Relu -> Conv(4): conv1's group is frozen by the LRN, conv2's is not."""
    rng = _rng(seed)
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("LRN", ["c1"], ["l1"], name="lrn1", size=3),
        helper.make_node("Conv", ["l1", "w2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("Conv", ["r2", "w3"], ["y"], name="conv3"),
    ]
    inits = [init("w1", _weight(rng, 8, 3, 3, 3)), init("w2", _weight(rng, 6, 8, 3, 3)), init("w3", _weight(rng, 4, 6, 1, 1))]
    return make_model(nodes, [tensor_info("x", [1, 3, 8, 8])], [tensor_info("y", [1, 4, 8, 8])], inits)


def single_conv_model(seed: int = 7) -> onnx.ModelProto:
    """x -> Conv -> y: the only channel dimension is a graph output, so nothing is prunable."""
    rng = _rng(seed)
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="conv", pads=[1, 1, 1, 1])]
    return make_model(
        nodes, [tensor_info("x", [1, 3, 8, 8])], [tensor_info("y", [1, 4, 8, 8])], [init("w", _weight(rng, 4, 3, 3, 3))]
    )


def write_model(proto: onnx.ModelProto, path: str | os.PathLike, *, external: bool = False) -> Path:
    """Save ``proto``; with ``external`` every tensor goes to ``<name>.data`` beside the model."""
    target = Path(path)
    if external:
        copy = onnx.ModelProto()
        copy.CopyFrom(proto)  # saving with external data rewrites the proto's tensors in place
        onnx.save_model(
            copy,
            str(target),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=target.name + ".data",
            size_threshold=0,
        )
    else:
        onnx.save_model(proto, str(target))
    return target


def random_inputs(proto: onnx.ModelProto, batch: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
    """One float32 array per graph input; symbolic dimensions become ``batch``."""
    rng = _rng(seed)
    initializers = {t.name for t in proto.graph.initializer}
    feeds = {}
    for info in proto.graph.input:
        if info.name in initializers:
            continue
        dims = [d.dim_value if d.HasField("dim_value") else batch for d in info.type.tensor_type.shape.dim]
        feeds[info.name] = rng.standard_normal(dims).astype(np.float32)
    return feeds


def run_model(model: onnx.ModelProto | str | os.PathLike, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Run on ONNX Runtime's CPU provider (a path is loaded by ONNX Runtime itself, external data included)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def assert_close(actual: list[np.ndarray], expected: list[np.ndarray], rtol: float = 1e-5) -> None:
    """Relative closeness, measured against each output's largest magnitude."""
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert a.shape == e.shape
        scale = max(float(np.abs(e).max()), 1e-12)
        assert float(np.abs(a - e).max()) <= rtol * scale, float(np.abs(a - e).max()) / scale


def _written_out_layernorm(x: str, out: str, channels: int, rng) -> tuple[list, list]:
    """LayerNorm over the last axis as older exporters write it: ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt,
    Div, then the affine Mul and Add (opset 18+: ReduceMean takes its axes as an input)."""
    node = helper.make_node
    nodes = [
        node("ReduceMean", [x, "ln.axes"], ["ln.mean"], name="ln_mean", keepdims=1),
        node("Sub", [x, "ln.mean"], ["ln.centred"], name="ln_sub"),
        node("Pow", ["ln.centred", "ln.two"], ["ln.square"], name="ln_pow"),
        node("ReduceMean", ["ln.square", "ln.axes"], ["ln.var"], name="ln_var", keepdims=1),
        node("Add", ["ln.var", "ln.eps"], ["ln.var_eps"], name="ln_eps"),
        node("Sqrt", ["ln.var_eps"], ["ln.std"], name="ln_sqrt"),
        node("Div", ["ln.centred", "ln.std"], ["ln.normed"], name="ln_div"),
        node("Mul", ["ln.normed", "ln.gamma"], ["ln.scaled"], name="ln_scale"),
        node("Add", ["ln.scaled", "ln.beta"], [out], name="ln_shift"),
    ]
    inits = [
        init("ln.axes", np.array([-1], dtype=np.int64)), init("ln.two", np.array(2.0, dtype=np.float32)),
        init("ln.eps", np.array(1e-6, dtype=np.float32)),
        init("ln.gamma", rng.uniform(0.5, 1.5, channels).astype(np.float32)),
        init("ln.beta", rng.uniform(-0.5, 0.5, channels).astype(np.float32)),
    ]
    return nodes, inits


def channels_last_mlp_model(*, gelu_op: bool = True, written_out_norm: bool = True, bias: bool = True,
                            channels: int = 8, size: int = 6, seed: int = 11) -> onnx.ModelProto:
    """One ConvNeXt-style block at opset 20: Conv 1x1 (the stream) -> Transpose (0,2,3,1) -> LayerNorm over
    the last axis (written out, or one LayerNormalization) -> MatMul C->4C (+ bias Add) -> GELU (the Gelu op,
    or the Erf form) -> MatMul 4C->C (+ bias Add) -> layer-scale Mul -> Transpose (0,3,1,2) -> residual Add
    -> Conv 1x1 -> y. The one prunable group is the 4C hidden dimension."""
    rng, node, hidden = _rng(seed), helper.make_node, 4 * channels
    nodes = [node("Conv", ["x", "stem.w"], ["stream"], name="stem"),
             node("Transpose", ["stream"], ["last"], name="to_last", perm=[0, 2, 3, 1])]
    inits = [init("stem.w", _weight(rng, channels, 3, 1, 1))]
    if written_out_norm:
        norm_nodes, norm_inits = _written_out_layernorm("last", "normed", channels, rng)
    else:
        norm_nodes = [node("LayerNormalization", ["last", "ln.gamma", "ln.beta"], ["normed"], name="ln", axis=-1)]
        norm_inits = [init("ln.gamma", rng.uniform(0.5, 1.5, channels).astype(np.float32)),
                      init("ln.beta", rng.uniform(-0.5, 0.5, channels).astype(np.float32))]
    nodes += norm_nodes
    inits += norm_inits
    fc1_out, fc2_out = ("fc1.mm", "fc2.mm") if bias else ("fc1.out", "fc2.out")
    nodes.append(node("MatMul", ["normed", "fc1.w"], [fc1_out], name="fc1"))
    inits.append(init("fc1.w", _weight(rng, channels, hidden)))
    if bias:
        nodes.append(node("Add", ["fc1.mm", "fc1.b"], ["fc1.out"], name="fc1_bias"))
        inits.append(init("fc1.b", _weight(rng, hidden)))
    if gelu_op:
        nodes.append(node("Gelu", ["fc1.out"], ["act"], name="gelu"))
    else:
        nodes += [node("Div", ["fc1.out", "sqrt2"], ["g.div"], name="gelu_div"),
                  node("Erf", ["g.div"], ["g.erf"], name="gelu_erf"),
                  node("Add", ["g.erf", "one"], ["g.add"], name="gelu_add"),
                  node("Mul", ["fc1.out", "g.add"], ["g.mul"], name="gelu_mul"),
                  node("Mul", ["g.mul", "half"], ["act"], name="gelu_half")]
        inits += [init("sqrt2", np.array(np.sqrt(2.0), dtype=np.float32)), init("one", np.array(1.0, dtype=np.float32)),
                  init("half", np.array(0.5, dtype=np.float32))]
    nodes.append(node("MatMul", ["act", "fc2.w"], [fc2_out], name="fc2"))
    inits.append(init("fc2.w", _weight(rng, hidden, channels)))
    if bias:
        nodes.append(node("Add", ["fc2.b", "fc2.mm"], ["fc2.out"], name="fc2_bias"))
        inits.append(init("fc2.b", _weight(rng, channels)))
    nodes += [node("Mul", ["layer_scale", "fc2.out"], ["scaled"], name="layer_scale_mul"),
              node("Transpose", ["scaled"], ["first"], name="to_first", perm=[0, 3, 1, 2]),
              node("Add", ["stream", "first"], ["block"], name="residual"),
              node("Conv", ["block", "head.w"], ["y"], name="head")]
    inits += [init("layer_scale", rng.uniform(0.5, 1.5, channels).astype(np.float32)),
              init("head.w", _weight(rng, 4, channels, 1, 1))]
    graph = helper.make_graph(nodes, "channels_last_mlp", [tensor_info("x", [1, 3, size, size])],
                              [tensor_info("y", [1, 4, size, size])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], producer_name="tests")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


# -- dynamic input sizes: Paddle-style exports (OCR direction classifier and text detector) -----------------

PADDLE_DIMS = ("p2o.DynamicDimension.0", 3, "p2o.DynamicDimension.1", "p2o.DynamicDimension.2")


def set_input_dims(proto: onnx.ModelProto, dims, name: str = "x") -> onnx.ModelProto:
    """``proto`` with input ``name`` declared as ``dims``: ints (Paddle's -1 included) or symbol strings."""
    for info in proto.graph.input:
        if info.name == name:
            for dim, value in zip(info.type.tensor_type.shape.dim, dims):
                dim.Clear()
                if isinstance(value, int):
                    dim.dim_value = value
                else:
                    dim.dim_param = value
    return proto


def _dynamic_model(nodes, inits, dims, out_dims) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "paddle", [tensor_info("x", [1, 3, 1, 1])],
                              [tensor_info("y", out_dims)], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="paddle2onnx")
    model.ir_version = IR_VERSION
    set_input_dims(model, dims)
    onnx.checker.check_model(model)
    return model


def ppocr_cls_model(dims=PADDLE_DIMS, seed: int = 20) -> onnx.ModelProto:
    """A PP-OCR-style text direction classifier, input ``x`` [dyn, 3, dyn, dyn]: conv-BN-relu, depthwise conv,
    hardswish, pointwise conv, global pooling, then Paddle's reshape to a shape computed at run time (through
    Cast, which shape inference cannot follow, so the MatMul head has no inferred shape), MatMul + Add, Softmax."""
    rng = _rng(seed)
    nodes = [
        helper.make_node("Conv", ["x", "c1.w", "c1.b"], ["c1"], name="conv1", pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("BatchNormalization", ["c1", "bn1.gamma", "bn1.beta", "bn1.mean", "bn1.var"], ["b1"],
                         name="bn1"),
        helper.make_node("Relu", ["b1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "dw.w", "dw.b"], ["d1"], name="dw", pads=[1, 1, 1, 1], group=8),
        helper.make_node("HardSwish", ["d1"], ["h1"], name="hswish"),
        helper.make_node("Conv", ["h1", "pw.w", "pw.b"], ["c2"], name="pw"),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["pool"], name="pool"),
        helper.make_node("Shape", ["pool"], ["shape"], name="shape"),
        helper.make_node("Cast", ["shape"], ["shape32"], name="cast32", to=TensorProto.INT32),
        helper.make_node("Slice", ["shape32", "zero", "one"], ["batch32"], name="slice_batch"),
        helper.make_node("Cast", ["batch32"], ["batch64"], name="cast64", to=TensorProto.INT64),
        helper.make_node("Concat", ["batch64", "minus_one"], ["target"], name="target", axis=0),
        helper.make_node("Reshape", ["pool", "target"], ["flat"], name="reshape"),
        helper.make_node("MatMul", ["flat", "fc.w"], ["fc"], name="fc"),
        helper.make_node("Add", ["fc", "fc.b"], ["logits"], name="fc_bias"),
        helper.make_node("Softmax", ["logits"], ["y"], name="softmax", axis=-1),
    ]
    inits = [
        init("c1.w", _weight(rng, 8, 3, 3, 3)), init("c1.b", _weight(rng, 8)), *_bn_params(rng, "bn1", 8),
        init("dw.w", _weight(rng, 8, 1, 3, 3)), init("dw.b", _weight(rng, 8)),
        init("pw.w", _weight(rng, 16, 8, 1, 1)), init("pw.b", _weight(rng, 16)),
        init("zero", np.array([0], dtype=np.int32)), init("one", np.array([1], dtype=np.int32)),
        init("minus_one", np.array([-1], dtype=np.int64)),
        init("fc.w", _weight(rng, 16, 2)), init("fc.b", _weight(rng, 2)),
    ]
    return _dynamic_model(nodes, inits, dims, [dims[0], 2])


def ppocr_det_model(dims=PADDLE_DIMS, seed: int = 21) -> onnx.ModelProto:
    """A PP-OCR-style (DBNet) text detector, input ``x`` [dyn, 3, dyn, dyn]: a stride-8 backbone, an FPN neck
    (1x1 laterals, nearest upsampling by 2, Add, 3x3 convs, Concat) and a head of conv-BN-relu and two
    stride-2 ConvTransposes to a sigmoid probability map at the input's size. Every conv output's height and
    width are symbolic ('unk__0'...) until the input size is fixed."""
    rng = _rng(seed)

    def conv(name, src, cin, cout, k=3, stride=1):
        pads = [k // 2] * 4
        inits.extend([init(f"{name}.w", _weight(rng, cout, cin, k, k)), init(f"{name}.b", _weight(rng, cout))])
        return helper.make_node("Conv", [src, f"{name}.w", f"{name}.b"], [name], name=name, pads=pads,
                                strides=[stride, stride])

    def up(name, src):
        return helper.make_node("Resize", [src, "", "scales"], [name], name=name, mode="nearest")

    inits: list[onnx.TensorProto] = [init("scales", np.array([1, 1, 2, 2], dtype=np.float32))]
    nodes = [
        conv("s1", "x", 3, 8, stride=2), helper.make_node("Relu", ["s1"], ["s1r"], name="s1_relu"),
        conv("s2", "s1r", 8, 16, stride=2), helper.make_node("Relu", ["s2"], ["s2r"], name="s2_relu"),
        conv("s3", "s2r", 16, 16, stride=2), helper.make_node("Relu", ["s3"], ["s3r"], name="s3_relu"),
        conv("lat2", "s2r", 16, 8, k=1), conv("lat3", "s3r", 16, 8, k=1),
        up("lat3_up", "lat3"), helper.make_node("Add", ["lat2", "lat3_up"], ["p2"], name="fpn_add"),
        conv("f2", "p2", 8, 4), conv("f3", "lat3", 8, 4), up("f3_up", "f3"),
        helper.make_node("Concat", ["f2", "f3_up"], ["fuse"], name="fuse", axis=1),
        conv("h1", "fuse", 8, 4),
        helper.make_node("BatchNormalization", ["h1", "hbn.gamma", "hbn.beta", "hbn.mean", "hbn.var"], ["h1b"],
                         name="head_bn"),
        helper.make_node("Relu", ["h1b"], ["h1r"], name="head_relu"),
        helper.make_node("ConvTranspose", ["h1r", "t1.w", "t1.b"], ["t1"], name="t1", strides=[2, 2]),
        helper.make_node("Relu", ["t1"], ["t1r"], name="t1_relu"),
        helper.make_node("ConvTranspose", ["t1r", "t2.w", "t2.b"], ["t2"], name="t2", strides=[2, 2]),
        helper.make_node("Sigmoid", ["t2"], ["y"], name="prob"),
    ]
    inits += [*_bn_params(rng, "hbn", 4), init("t1.w", _weight(rng, 4, 4, 2, 2)), init("t1.b", _weight(rng, 4)),
              init("t2.w", _weight(rng, 4, 1, 2, 2)), init("t2.b", _weight(rng, 1))]
    return _dynamic_model(nodes, inits, dims, [dims[0], 1, dims[2], dims[3]])
