"""ConvNeXt-style channels-last blocks: the 4C hidden dimension of every MLP is a prunable group, proven,
priced, reconstructed and scored; the LayerNorm-ed residual stream is frozen with its reason."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import onnx
import pytest
from onnx_graphsurgeon.logger import G_LOGGER

from builders import channels_last_mlp_model
from corpus import EXPORTERS, export_corpus_model
from edgeprune.analysis import analyze
from edgeprune.calibration import load_calibration
from edgeprune.capture import ActivationRunner, capture_stats
from edgeprune.capture.grams import capture_grams
from edgeprune.capture.rows import linear_positions, linear_rows, sample_positions
from edgeprune.cost import PlanCostModel, model_cost
from edgeprune.export import export_torch
from edgeprune.graph import load_model, normalize_proto
from edgeprune.hardware import LatencyModel, resolve_device
from edgeprune.hardware.layers import model_layers
from edgeprune.hardware.single_layer import layer_model
from edgeprune.maps import LayerAccumulator, default_levels
from edgeprune.reconstruct import reconstruct
from edgeprune.scoring.measure import measure_and_score
from edgeprune.scoring.registry import ScoringContext, scorer
from edgeprune.surgery import apply_plan, masked_model, random_inputs, run_model, simple_plan, verify
from plans import random_plan

G_LOGGER.severity = G_LOGGER.ERROR

HIDDEN = [64, 64, 128]  # the zoo model's MLPs: two blocks at 16 channels, one at 32
STREAM_REASONS = ("normalises across channels", "reduces over the channel axis")


def _ops(model) -> dict[str, str]:
    return {node.name: node.op_type for node in model.proto.graph.node}


def _check_plans(model, analysis, seeds=(1, 2)) -> None:
    """Random plans: proven against the masked original, priced exactly, and really changing the output."""
    costs = PlanCostModel(model, analysis)
    for seed in seeds:
        plan = random_plan(analysis, seed, high=0.8)
        pruned = apply_plan(model, analysis, plan)
        onnx.checker.check_model(pruned.proto, full_check=True)
        feeds = random_inputs(model, batch=2, seed=seed)
        assert verify(model, analysis, plan, pruned, feeds=feeds).passed
        actual, predicted = model_cost(pruned), costs.cost_of_plan(plan.kept)
        assert (actual.macs, actual.params) == (predicted.macs, predicted.params)
        assert actual.macs < model_cost(model).macs
        original, cut = run_model(model, feeds), run_model(pruned, feeds)
        assert any(not np.allclose(original[k], cut[k]) for k in original), "removed channels must matter"


@pytest.fixture(scope="module")
def convnext(corpus_dir):
    cache = {}

    def load(exporter: str):
        if exporter not in cache:
            model = load_model(export_corpus_model("convnext", exporter, corpus_dir))
            cache[exporter] = (model, analyze(model))
        return cache[exporter]

    return load


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_every_mlp_hidden_dimension_is_a_prunable_group(exporter, convnext):
    model, analysis = convnext(exporter)
    ops = _ops(model)
    groups = analysis.prunable_groups
    assert [g.channels for g in groups] == HIDDEN
    for group in groups:
        assert [ops[p] for p in group.producers] == ["MatMul"] and [ops[c] for c in group.consumers] == ["MatMul"]
        assert all(analysis.tensors[t].axis == 3 for t in group.tensors), "the hidden channels are on the last axis"
    cost = {node.name: node.macs for node in model_cost(model).nodes}
    hidden_macs = sum(cost[n] for g in groups for n in g.producers + g.consumers)
    assert hidden_macs / model_cost(model).macs > 0.6, "the MLPs hold most of the MACs"


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_the_normalised_residual_streams_are_frozen_with_their_reason(exporter, convnext):
    model, analysis = convnext(exporter)
    ops = _ops(model)
    streams = [g for g in analysis.groups if not g.prunable and any(ops.get(p) == "MatMul" for p in g.producers)]
    assert [g.channels for g in streams] == [16, 32]
    for group in streams:
        norms = [r for r in group.frozen if r.op in ("LayerNormalization", "ReduceMean")]
        assert norms and all(any(text in r.reason for text in STREAM_REASONS) for r in norms), group.frozen


def test_matmul_macs_count_every_spatial_position(convnext):
    model, analysis = convnext("legacy")
    first = analysis.prunable_groups[0]
    macs = {node.name: node.macs for node in model_cost(model).nodes}
    assert macs[first.producers[0]] == 16 * 64 * 8 * 8  # C x 4C per site of the 8x8 stage-1 map
    assert macs[first.consumers[0]] == 64 * 16 * 8 * 8


def test_the_written_out_layernorm_of_older_opsets(tmp_path):
    """The legacy exporter below opset 17 writes LayerNorm as ReduceMean/Sub/Pow/Sqrt/Div over the last axis."""
    from edgeprune import zoo

    path = export_torch(zoo.build("convnext"), zoo.example_inputs("convnext"), tmp_path / "m.onnx", opset=16)
    model = load_model(path)
    assert "LayerNormalization" not in _ops(model).values()
    analysis = analyze(model)
    assert [g.channels for g in analysis.prunable_groups] == HIDDEN
    _check_plans(model, analysis, seeds=(3,))


@pytest.mark.parametrize("gelu_op,written_out_norm,bias", [(True, True, True), (False, True, True),
                                                           (True, False, True), (False, False, False)])
def test_block_forms_are_pruned_and_proven(gelu_op, written_out_norm, bias):
    """The Gelu op (opset 20) or its Erf form, LayerNormalization or its written-out form, with or without
    bias Adds: one prunable group, the hidden dimension, and an identity plan that changes nothing."""
    model = normalize_proto(channels_last_mlp_model(gelu_op=gelu_op, written_out_norm=written_out_norm, bias=bias))
    analysis = analyze(model)
    assert [(g.producers, g.consumers, g.channels) for g in analysis.prunable_groups] == [(("fc1",), ("fc2",), 32)]
    _check_plans(model, analysis)
    _check_identity(model, analysis)


def test_the_mask_sits_on_the_last_axis_of_the_hidden_activation():
    model = normalize_proto(channels_last_mlp_model())
    analysis = analyze(model)
    plan = random_plan(analysis, 4)
    masked = masked_model(model, analysis, analysis.keep_mask(plan.kept))
    masks = [t for t in masked.proto.graph.initializer if t.name.endswith(".mask")]
    assert [tuple(t.dims) for t in masks] == [(1, 1, 1, 32)]


def test_an_op_outside_the_table_freezes_the_hidden_dimension_naming_the_node():
    """CumSum along the hidden axis (not in the channel table) in place of the GELU: deny by default. Its
    output's fresh, frozen channels stay on the last axis, so the Linear after it is still understood."""
    proto = channels_last_mlp_model()
    gelu = next(node for node in proto.graph.node if node.op_type == "Gelu")
    gelu.op_type = "CumSum"
    gelu.input.append("cumsum.axis")
    proto.graph.initializer.append(onnx.numpy_helper.from_array(np.array(3, dtype=np.int64), "cumsum.axis"))
    model = normalize_proto(proto)
    analysis = analyze(model)
    assert not analysis.prunable_groups
    hidden = next(g for g in analysis.groups if g.producers == ("fc1",))
    assert [(r.node, r.op) for r in hidden.frozen] == [("gelu", "CumSum")]
    assert "not in the channel-semantics table" in hidden.frozen[0].reason
    assert analysis.tensors["act"].axis == 3
    after = analysis.groups[analysis.class_group[analysis.tensors["act"].classes[0]]]
    assert after.consumers == ("fc2",) and [r.node for r in after.frozen] == ["gelu"]
    _check_identity(model, analysis)


def _check_identity(model, analysis) -> None:
    identity = apply_plan(model, analysis, simple_plan(analysis, 1.0))
    feeds = random_inputs(model, batch=1)
    assert all(np.array_equal(a, b) for a, b in zip(run_model(model, feeds).values(), run_model(identity, feeds).values()))


def _calibration(model, tmp_path, count: int = 96, seed: int = 0):
    rng = np.random.default_rng(seed)
    arrays = {name: rng.standard_normal([count, *model.shapes[name][1:]]).astype(np.float32) for name in model.input_names}
    np.savez(tmp_path / "calib.npz", **arrays)
    return load_calibration(tmp_path / "calib.npz", model), arrays


def test_linear_rows_are_the_matmul_inputs_at_sampled_sites():
    rng = np.random.default_rng(0)
    x, weight = rng.standard_normal((3, 4, 5, 6)), rng.standard_normal((6, 7))
    positions = sample_positions(np.arange(3), linear_positions(x.shape), 1, per_image=6, seed=2)
    rows = linear_rows(x, 0, positions)
    assert rows.shape == (18, 6)
    expected = (x @ weight).reshape(3, 20, 7)[positions[:, 0], positions[:, 1]]
    np.testing.assert_allclose(rows @ weight, expected)


def test_reconstruction_refits_the_channels_last_linears(convnext, tmp_path):
    model, analysis = convnext("legacy")
    fit, _ = _calibration(model, tmp_path)
    test = {name: np.random.default_rng(9).standard_normal([32, *model.shapes[name][1:]]).astype(np.float32)
            for name in model.input_names}
    plan = simple_plan(analysis, 0.5, random=True, seed=1)
    pruned = apply_plan(model, analysis, plan)
    rebuilt, report = reconstruct(model, pruned, analysis, plan, fit, samples_per_image=8)
    onnx.checker.check_model(rebuilt.proto, full_check=True)
    expected, before, after = run_model(model, test), run_model(pruned, test), run_model(rebuilt, test)
    for key, value in expected.items():
        assert np.linalg.norm(after[key] - value) < 0.5 * np.linalg.norm(before[key] - value)
    refitted = {layer.node: layer for layer in report.layers if layer.applied}
    for group in analysis.prunable_groups:
        layer = refitted[group.consumers[0]]
        assert layer.op == "MatMul" and "bias Add" in layer.note and layer.error_after < layer.error_before
        assert layer.rows == 96 * 8 and layer.columns == len(plan.kept[group.id])


def test_a_matmul_without_bias_is_refitted_without_one(tmp_path):
    model = normalize_proto(channels_last_mlp_model(bias=False))
    analysis = analyze(model)
    fit, _ = _calibration(model, tmp_path, count=64)
    plan = simple_plan(analysis, 0.5)
    pruned = apply_plan(model, analysis, plan)
    rebuilt, report = reconstruct(model, pruned, analysis, plan, fit, samples_per_image=16, batch_size=1)
    fc2 = next(layer for layer in report.layers if layer.node == "fc2")
    assert fc2.applied and fc2.error_after < fc2.error_before
    node = next(n for n in rebuilt.proto.graph.node if n.name == "fc2")
    assert len(node.input) == 2 and [n.op_type for n in rebuilt.proto.graph.node] == [n.op_type for n in pruned.proto.graph.node]


def test_l1_scores_the_hidden_channels_by_the_first_linears_columns():
    model = normalize_proto(channels_last_mlp_model())
    analysis = analyze(model)
    (group,) = analysis.prunable_groups
    scores = scorer("l1")(ScoringContext(model, analysis, None), group)
    weight = next(onnx.numpy_helper.to_array(t) for t in model.proto.graph.initializer if t.name == "fc1.w")
    np.testing.assert_allclose(scores, np.abs(weight).sum(axis=0), rtol=1e-6)


# -- scoring and latency of the hidden groups -------------------------------------------------------------


def test_refit_error_scores_every_hidden_group_on_the_rows_reconstruction_fits(convnext, tmp_path):
    """No group falls back to l1, and each MLP's second Linear is measured on the channels-last rows that
    reconstruction samples (its input vectors at the same seeded sites)."""
    model, analysis = convnext("legacy")
    data, arrays = _calibration(model, tmp_path, count=24)
    scores, info = measure_and_score(model, analysis, data, "refit-error", provider="cpu", samples_per_image=8)
    assert info["fallback_groups"] == [] and sorted(scores) == sorted(g.id for g in analysis.prunable_groups)
    assert all(s.fallback is None and np.isfinite(s.scores).all() and np.ptp(s.scores) > 0 for s in scores.values())
    grams = capture_grams(model, analysis, data, samples_per_image=8, provider="cpu")
    by_node = {gram.consumer.node: gram for gram in grams.grams}
    values = ActivationRunner(model, [by_node[g.consumers[0]].consumer.input for g in analysis.prunable_groups],
                              "cpu").run({name: arrays[name] for name in model.input_names})
    for group in analysis.prunable_groups:
        gram = by_node[group.consumers[0]]
        shape = model.shapes[gram.consumer.output]
        at = sample_positions(np.arange(24), linear_positions(shape), 1, 8, 0)  # reconstruction's call
        x = linear_rows(values[gram.consumer.input], 0, at).astype(np.float64)
        assert gram.rows == len(x) == 24 * min(8, shape[1] * shape[2])
        x -= x.mean(axis=0)
        np.testing.assert_allclose(gram.centred()[0], x.T @ x, atol=1e-4 * np.abs(x.T @ x).max())


def _refit_error(x: np.ndarray, y: np.ndarray, columns: np.ndarray, penalty: float) -> float:
    """min over W of ||y - x[:, columns] W||^2 + penalty ||W||^2, solved as a stacked least-squares problem."""
    if not len(columns):
        return float(np.sum(y * y))
    stacked_x = np.vstack([x[:, columns], np.sqrt(penalty) * np.eye(len(columns))])
    stacked_y = np.vstack([y, np.zeros((len(columns), y.shape[1]))])
    weight = np.linalg.lstsq(stacked_x, stacked_y, rcond=None)[0]
    return float(np.sum((stacked_y - stacked_x @ weight) ** 2))


def test_refit_error_matches_a_brute_force_greedy_refit_of_a_tiny_block(tmp_path):
    """The scores of the hidden channels against refitting the second Linear from scratch, on its raw input
    and output rows, for every candidate at every step of the greedy removal."""
    model = normalize_proto(channels_last_mlp_model(channels=4))
    analysis = analyze(model)
    (group,) = analysis.prunable_groups
    data, arrays = _calibration(model, tmp_path, count=40)
    fast = scorer("refit-error")(
        ScoringContext(model, analysis, None, grams=capture_grams(model, analysis, data, samples_per_image=8,
                                                                  batch_size=1, provider="cpu")), group)
    runner = ActivationRunner(model, ["act", "fc2.mm"], "cpu")
    rows = {"act": [], "fc2.mm": []}
    at = sample_positions(np.arange(40), 36, 1, 8, 0)
    for image in range(40):
        values = runner.run({"x": arrays["x"][image : image + 1]})
        for name in rows:
            rows[name].append(linear_rows(values[name], image, at[at[:, 0] == image]))
    x, y = (np.concatenate(rows[name]).astype(np.float64) for name in ("act", "fc2.mm"))
    x, y = x - x.mean(axis=0), y - y.mean(axis=0)
    penalty, total = 1e-3 * np.trace(x.T @ x) / x.shape[1], float(np.sum(y * y))
    classes = analysis.class_index[analysis.tensors["act"].classes]  # column k holds hidden channel classes[k]

    def error(removed: list[int]) -> float:
        return _refit_error(x, y, np.flatnonzero(~np.isin(classes, removed)), penalty) / total

    removed, slow, base = [], np.zeros(group.channels), error([])
    while len(removed) < group.channels:
        costs = {c: error(removed + [c]) for c in range(group.channels) if c not in removed}
        best = min(costs, key=lambda c: (costs[c], c))
        slow[best] = costs[best] - base
        removed.append(best)
    assert np.array_equal(np.argsort(fast, kind="stable"), np.argsort(slow, kind="stable")), "the removal order"
    np.testing.assert_allclose(fast, slow, rtol=1e-4, atol=1e-7)


def test_activation_criteria_read_the_hidden_map_as_its_channels_first_transpose(tmp_path):
    """aura MI, entropy, histogram MI and the moments of the channels-last hidden activation (with the MatMul's
    output as the next layer's map) equal those of the same tensors transposed to N,C,H,W."""
    model = normalize_proto(channels_last_mlp_model())
    analysis = analyze(model)
    data, arrays = _calibration(model, tmp_path, count=12)
    measures = frozenset({"aura_mi", "entropy", "hist_mi"})
    stats = capture_stats(model, analysis, data, batch_size=1, provider="cpu", measures=measures)
    (point,) = stats.points
    assert (point.point.tensor, point.point.next_tensor, point.point.channel_axis) == ("act", "fc2.mm", 3)
    accumulator = LayerAccumulator(32, default_levels(6, 6), next_channels=8, stride=None)
    runner = ActivationRunner(model, ["act", "fc2.mm"], "cpu")
    for image in range(12):
        values = runner.run({"x": arrays["x"][image : image + 1]})
        accumulator.update(*(values[name].transpose(0, 3, 1, 2) for name in ("act", "fc2.mm")))
    expected = {"aura_mi": accumulator.aura_mi(), "hist_mi": accumulator.hist_mi(),
                "aura_entropy": accumulator.aura_entropy(), "mean_abs_activation": accumulator.mean_abs_activation(),
                "dead_fraction": accumulator.dead_fraction()}
    for name, value in expected.items():
        np.testing.assert_allclose(point.values[name], value, rtol=1e-12, err_msg=name)
    assert np.ptp(point.values["aura_mi"]) > 0
    context = ScoringContext(model, analysis, stats)
    for criterion in ("aura-mi", "entropy", "hist-mi", "activation"):
        assert scorer(criterion)(context, analysis.prunable_groups[0]) is not None, criterion


def test_the_semiotic_curve_reads_the_hidden_map_as_its_channels_first_transpose(tmp_path):
    """`edgeprune analyze` measures the channels-last hidden activation on its last axis: its curve is the brute-force
    one of the same maps transposed to N,C,H,W (channel mean, min-max levels, 8-neighbour aura entropy)."""
    from test_semiotic_curve import brute_entropy, brute_saliency

    from edgeprune.semiotic import saliency_layers
    from edgeprune.semiotic.measure import measure_curve

    model = normalize_proto(channels_last_mlp_model())
    analysis = analyze(model)
    (layer,) = saliency_layers(model, analysis)
    assert (layer.tensor, layer.channels, layer.channel_axis, layer.spatial_axes) == ("act", 32, 3, (1, 2))
    data, arrays = _calibration(model, tmp_path, count=12)
    curve = measure_curve(model, analysis, data, batch_size=1, provider="cpu")  # the block's batch is fixed at 1
    runner = ActivationRunner(model, ["act"], "cpu")
    hidden = np.concatenate([runner.run({"x": arrays["x"][i : i + 1]})["act"] for i in range(12)])
    maps = brute_saliency(hidden.transpose(0, 3, 1, 2).astype(np.float64))
    expected = np.mean([brute_entropy(m[0], default_levels(6, 6))[0] for m in maps])
    (point,) = curve.layers
    assert (point.tensor, point.height, point.width, curve.images) == ("act", 6, 6, 12)
    assert point.entropy == pytest.approx(expected, rel=1e-9)


def test_the_semiotic_meter_prunes_the_hidden_maps_on_their_last_axis(convnext):
    """On the zoo's ConvNeXt every MLP hidden map is a semiotic layer, read channels-last; with half the hidden
    channels kept, its entropies are those of the transposed maps with the same channels kept."""
    from edgeprune.semiotic import CurveAccumulator, saliency_layers

    model, analysis = convnext("legacy")
    layers = saliency_layers(model, analysis)
    assert [(layer.channels, layer.channel_axis) for layer in layers] == [(c, 3) for c in HIDDEN]
    keep = analysis.keep_mask({g.id: tuple(range(0, g.channels, 2)) for g in analysis.prunable_groups})
    positions = {layer.tensor: analysis.kept_positions(layer.tensor, keep) for layer in layers}
    values = ActivationRunner(model, [layer.tensor for layer in layers], "cpu").run(random_inputs(model, batch=4, seed=3))
    measured, reference = CurveAccumulator(layers), CurveAccumulator([replace(layer, channel_axis=1) for layer in layers])
    measured.update(values, positions)
    reference.update({name: np.ascontiguousarray(v.transpose(0, 3, 1, 2)) for name, v in values.items()}, positions)
    np.testing.assert_allclose(measured.curve().entropies, reference.curve().entropies, rtol=1e-6)
    assert [p.height for p in measured.curve().layers] == [p.height for p in reference.curve().layers]
    assert np.ptp(measured.curve().entropies) > 0


def _channels_last_residual_model():
    """Conv -> Relu -> Transpose to N,H,W,C -> a residual block on the channels-last stream (MatMul C->2C, Relu,
    MatMul 2C->C, Add, Relu) -> Transpose back -> Conv: depth pruning can remove the block."""
    from builders import init, make_model, tensor_info

    rng, node = np.random.default_rng(4), onnx.helper.make_node
    nodes = [node("Conv", ["x", "stem.w"], ["stream"], name="stem"), node("Relu", ["stream"], ["s"], name="stem_relu"),
             node("Transpose", ["s"], ["last"], name="to_last", perm=[0, 2, 3, 1]),
             node("MatMul", ["last", "fc1.w"], ["h"], name="fc1"), node("Relu", ["h"], ["act"], name="act"),
             node("MatMul", ["act", "fc2.w"], ["branch"], name="fc2"),
             node("Add", ["last", "branch"], ["sum"], name="residual"), node("Relu", ["sum"], ["out"], name="out_relu"),
             node("Transpose", ["out"], ["first"], name="to_first", perm=[0, 3, 1, 2]),
             node("Conv", ["first", "head.w"], ["y"], name="head")]
    shapes = {"stem.w": (8, 3, 1, 1), "fc1.w": (8, 16), "fc2.w": (16, 8), "head.w": (4, 8, 1, 1)}
    inits = [init(name, (0.3 * rng.standard_normal(shape)).astype(np.float32)) for name, shape in shapes.items()]
    return normalize_proto(make_model(nodes, [tensor_info("x", [1, 3, 6, 5])], [tensor_info("y", [1, 4, 6, 5])], inits))


def test_the_depth_rule_reads_a_channels_last_block_on_its_last_axis():
    """Delta H of a residual block on an N,H,W,C stream: H(out) - H(in) of its maps transposed to N,C,H,W."""
    from test_semiotic_curve import brute_entropy, brute_saliency

    from edgeprune.analysis.blocks import find_blocks
    from edgeprune.semiotic.depth import block_deltas

    model = _channels_last_residual_model()
    analysis = analyze(model)
    (block,) = find_blocks(model, analysis).blocks
    assert (block.shortcut, analysis.tensors["last"].axis, analysis.tensors["out"].axis) == ("last", 3, 3)
    batches = [random_inputs(model, batch=1, seed=seed) for seed in range(4)]
    deltas = block_deltas(model, [block], (), batches, None, "cpu", analysis)
    runner = ActivationRunner(model, ["last", "out"], "cpu")
    values = [runner.run(feeds) for feeds in batches]

    def entropy(name: str) -> float:
        maps = np.concatenate([brute_saliency(v[name].transpose(0, 3, 1, 2).astype(np.float64)) for v in values])
        return float(np.mean([brute_entropy(m[0], default_levels(6, 5))[0] for m in maps]))

    assert deltas[block.id] == pytest.approx(entropy("out") - entropy("last"), rel=1e-9, abs=1e-12)
    assert deltas[block.id] != pytest.approx(block_deltas(model, [block], (), batches, None, "cpu")[block.id])


def test_the_rl_entropy_reward_reads_the_hidden_map_channels_first(tmp_path):
    from edgeprune.search.judge import Judge, measured_layers
    from edgeprune.search.rewards import map_entropies

    model = normalize_proto(channels_last_mlp_model())
    analysis = analyze(model)
    assert measured_layers(model, analysis) == ("act",)
    batches = [random_inputs(model, batch=1, seed=seed) for seed in range(3)]
    judge = Judge(model, analysis, batches, None, "entropy", provider="cpu")
    hidden = [ActivationRunner(model, ["act"], "cpu").run(b)["act"] for b in batches]
    expected = np.concatenate([map_entropies(h.transpose(0, 3, 1, 2)) for h in hidden])
    np.testing.assert_allclose(judge.original_entropy[0], expected)
    (group,) = analysis.prunable_groups
    assert np.isfinite(judge({group.id: tuple(range(0, 32, 2))}))


def test_latency_layers_price_the_mlp_matmuls_as_gemms_over_every_site(convnext):
    """Each Linear of an MLP is a layer of N*H*W rows with the cost model's MACs, prunable on its hidden side,
    and is rebuilt alone as that Gemm; removing hidden channels lowers the roofline prediction."""
    model, analysis = convnext("legacy")
    layers = {layer.node: layer for layer in model_layers(model, analysis)}
    macs = {node.name: node.macs for node in model_cost(model).nodes}
    for group, rows, channels in zip(analysis.prunable_groups, (64, 64, 16), (16, 16, 32)):
        first, second = layers[group.producers[0]], layers[group.consumers[0]]
        assert (first.op, first.batch, first.cin, first.cout) == ("MatMul", rows, channels, 4 * channels)
        assert (second.batch, second.cin, second.cout) == (rows, 4 * channels, channels)
        assert (first.out_prunable, second.in_prunable, first.in_prunable) == (True, True, False)
        for layer in (first, second):
            assert layer.macs(layer.cin, layer.cout) == macs[layer.node]
    import onnxruntime as ort

    session = ort.InferenceSession(layer_model(second, 64, channels), providers=["CPUExecutionProvider"])
    assert [v.shape for v in session.run(None, {"x": np.ones((rows, 64), np.float32)})] == [(rows, channels)]
    device = resolve_device("host")
    latency = LatencyModel(device, model, analysis)
    half = analysis.keep_mask({g.id: tuple(range(g.channels // 2)) for g in analysis.prunable_groups})
    assert latency.predict(half) < latency.predict_full()


def test_a_matmul_of_two_activations_stays_out_of_the_latency_layers():
    """Attention-style x @ x^T has no stored weight: the whole-model factor covers it, not a layer table."""
    from builders import make_model, tensor_info

    nodes = [onnx.helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 2, 1], name="t"),
             onnx.helper.make_node("MatMul", ["x", "xt"], ["y"], name="attention")]
    model = normalize_proto(make_model(nodes, [tensor_info("x", [1, 4, 8])], [tensor_info("y", [1, 4, 4])]))
    assert [layer.node for layer in model_layers(model, analyze(model))] == []
