"""Property tests of analysis, surgery and cost on random small CNNs built directly as ONNX.

The models come from `random_graphs.cnn_models` (convs dense, grouped and depthwise, BN folded or not,
activations, residual Add/Mul, per-channel constants, Concat, Split, Slice, channel shuffle, pooling, Pad,
Resize, squeeze-excitation, three kinds of head, and now and then an op that must freeze its groups).
Every run is derandomized and database-free, so CI sees the same examples every time.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st
from onnx_graphsurgeon.logger import G_LOGGER

from edgeprune.analysis import ChannelAnalysis, analyze
from edgeprune.cost import PlanCostModel, model_cost
from edgeprune.graph import load_model, normalize_proto
from edgeprune.surgery import PruningPlan, apply_plan, random_inputs, run_model, verify

from random_graphs import RandomModel, cnn_models

G_LOGGER.severity = G_LOGGER.ERROR

TOLERANCE = 1e-4
NORMALIZE_TOLERANCE = 1e-5


def profile(examples: int) -> settings:
    """Derandomized and database-free, so CI always sees the same examples. Shrinking is off to keep a
    failing run fast; add ``Phase.shrink`` locally to minimise a failure."""
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        print_blob=False,
        report_multiple_bugs=False,
        phases=(Phase.explicit, Phase.generate),
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# -- helpers ----------------------------------------------------------------------------------------------

def random_plan(analysis: ChannelAnalysis, seed: int, ratio: float) -> PruningPlan:
    """Random kept channels in every prunable group: ``ratio`` of each segment, at least one, equal counts
    in each of ``group.multiple`` consecutive segments; then no tensor loses all its channels."""
    rng = np.random.default_rng(seed)
    kept: dict[str, set[int]] = {}
    for group in analysis.prunable_groups:
        segment = group.channels // group.multiple
        count = int(np.clip(round(ratio * segment), 1, segment))
        chosen: set[int] = set()
        for start in range(0, group.channels, segment):
            chosen.update(int(i) for i in rng.choice(np.arange(start, start + segment), size=count, replace=False))
        kept[group.id] = chosen
    _keep_one_of_every_tensor(analysis, kept)
    return PruningPlan(
        model_sha256=analysis.model_sha256, kept={gid: tuple(sorted(ids)) for gid, ids in kept.items()}
    )


def _keep_one_of_every_tensor(analysis: ChannelAnalysis, kept: dict[str, set[int]]) -> None:
    """A plan may not empty a tensor (a Slice or Split piece): put back one channel where one would be,
    and one channel in each other segment of its group so the segments stay equal."""
    while True:
        keep = analysis.keep_mask({gid: tuple(sorted(ids)) for gid, ids in kept.items()})
        emptied = [c for c in analysis.tensors.values() if len(c.classes) and not keep[c.classes].any()]
        if not emptied:
            return
        cls = int(emptied[0].classes[0])
        group = analysis.groups[int(analysis.class_group[cls])]
        index, segment = int(analysis.class_index[cls]), group.channels // group.multiple
        chosen = kept[group.id]
        chosen.add(index)
        for start in range(0, group.channels, segment):
            if start != index // segment * segment:
                chosen.add(next(i for i in range(start, start + segment) if i not in chosen))


def identity_plan(analysis: ChannelAnalysis) -> PruningPlan:
    return PruningPlan(
        model_sha256=analysis.model_sha256,
        kept={g.id: tuple(range(g.channels)) for g in analysis.prunable_groups},
    )


def run_proto(proto: onnx.ModelProto, feeds) -> dict[str, np.ndarray]:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, dict(feeds))))


def max_relative(expected: np.ndarray, got: np.ndarray) -> float:
    expected64, got64 = expected.astype(np.float64), got.astype(np.float64)
    scale = float(np.max(np.abs(expected64)))
    diff = float(np.max(np.abs(expected64 - got64)))
    return diff / scale if scale > 0 else diff


def batches(spec: RandomModel) -> list[int]:
    """The batch sizes to feed: a symbolic batch is tried at 2 and 3, a static one as declared."""
    return [2, 3] if spec.dynamic_batch else [2]


def touched_tensors(model, node_name: str) -> set[str]:
    nodes = [n for n in model.proto.graph.node if n.name == node_name]
    assert len(nodes) == 1, f"normalisation lost or duplicated node {node_name}"
    node = nodes[0]
    return {t for t in list(node.input) + list(node.output) if t}


# -- properties -------------------------------------------------------------------------------------------

def check_random_plan(spec: RandomModel, plan_seed: int, ratio: float) -> None:
    model = normalize_proto(spec.proto)
    analysis = analyze(model)
    plan = random_plan(analysis, plan_seed, ratio)
    removed = sum(analysis.group(gid).channels - len(ids) for gid, ids in plan.kept.items())
    prunable = len(analysis.prunable_groups)
    event(f"prunable groups: {prunable if prunable < 3 else '3 or more'}")
    event("some channels removed" if removed else "nothing removed")
    pruned = apply_plan(model, analysis, plan)
    onnx.checker.check_model(pruned.proto, full_check=True)
    for batch in batches(spec):
        feeds = random_inputs(model, batch=batch, seed=plan_seed % 997)
        expected = run_model(model, feeds)
        got = run_model(pruned, feeds)
        assert {k: v.shape for k, v in got.items()} == {k: v.shape for k, v in expected.items()}
        assert all(np.isfinite(v).all() for v in got.values())
        result = verify(model, analysis, plan, pruned, feeds=feeds, tolerance=TOLERANCE)
        assert result.passed and result.max_rel <= TOLERANCE, (batch, result.to_dict())


@profile(40)
@given(
    spec=cnn_models(), plan_seed=st.integers(0, 2**31 - 1), ratio=st.floats(0.0, 1.0)
)
def test_random_plan_equals_masked_original(spec: RandomModel, plan_seed: int, ratio: float) -> None:
    check_random_plan(spec, plan_seed, ratio)


@profile(15)
@given(
    spec=cnn_models(force=("split_concat",)),
    plan_seed=st.integers(0, 2**31 - 1),
    ratio=st.floats(0.0, 1.0),
)
def test_random_plan_through_split_then_concat(spec: RandomModel, plan_seed: int, ratio: float) -> None:
    check_random_plan(spec, plan_seed, ratio)


@profile(15)
@given(
    spec=cnn_models(force=("concat_grouped_conv",)),
    plan_seed=st.integers(0, 2**31 - 1),
    ratio=st.floats(0.0, 1.0),
)
def test_random_plan_through_grouped_conv_after_concat(spec: RandomModel, plan_seed: int, ratio: float) -> None:
    check_random_plan(spec, plan_seed, ratio)


@profile(35)
@given(spec=cnn_models())
def test_identity_plan_and_normalisation_keep_outputs(spec: RandomModel) -> None:
    model = normalize_proto(spec.proto)
    analysis = analyze(model)
    unpruned = apply_plan(model, analysis, identity_plan(analysis))
    for batch in batches(spec):
        feeds = random_inputs(model, batch=batch, seed=batch)
        normalized = run_model(model, feeds)
        identical = run_model(unpruned, feeds)
        original = run_proto(spec.proto, feeds)
        assert normalized.keys() == identical.keys() == original.keys()
        for name, values in normalized.items():
            assert np.array_equal(identical[name], values), f"identity plan changed output {name}"
            assert original[name].shape == values.shape
            assert max_relative(original[name], values) <= NORMALIZE_TOLERANCE, f"normalisation changed {name}"


def check_plan_cost(spec: RandomModel, plan_seed: int, ratio: float) -> None:
    model = normalize_proto(spec.proto)
    analysis = analyze(model)
    plan = random_plan(analysis, plan_seed, ratio)
    predicted = PlanCostModel(model, analysis).cost_of_plan(plan.kept)
    actual = model_cost(apply_plan(model, analysis, plan))
    assert (predicted.macs, predicted.params) == (actual.macs, actual.params)


@profile(35)
@given(
    spec=cnn_models(), plan_seed=st.integers(0, 2**31 - 1), ratio=st.floats(0.0, 1.0)
)
def test_plan_cost_model_prices_the_pruned_model_exactly(spec: RandomModel, plan_seed: int, ratio: float) -> None:
    check_plan_cost(spec, plan_seed, ratio)


@profile(15)
@given(
    spec=cnn_models(force=("shared_const_arith",)),
    plan_seed=st.integers(0, 2**31 - 1),
    ratio=st.floats(0.0, 1.0),
)
def test_plan_cost_with_a_shared_per_channel_constant(spec: RandomModel, plan_seed: int, ratio: float) -> None:
    check_plan_cost(spec, plan_seed, ratio)


@profile(30)
@given(spec=cnn_models(opaque="always"))
def test_groups_touching_unknown_ops_and_graph_ends_are_frozen(spec: RandomModel) -> None:
    model = normalize_proto(spec.proto)
    analysis = analyze(model)
    assert spec.opaque_nodes
    for node_name, op in spec.opaque_nodes:
        touched = touched_tensors(model, node_name)
        groups = [g for g in analysis.groups if touched & set(g.tensors)]
        assert groups, f"no group touches {node_name}"
        for group in groups:
            assert group.frozen, f"group {group.id} touches {op} node {node_name} but is prunable"
            assert any(r.node == node_name and r.op == op for r in group.frozen), (group.id, group.frozen)
    for names, reason in ((model.input_names, "(graph input)"), (model.output_names, "(graph output)")):
        for name in names:
            groups = [g for g in analysis.groups if name in g.tensors]
            assert groups, f"{name} has no channel group"
            for group in groups:
                assert any(r.node == reason for r in group.frozen), (name, group.id, group.frozen)


@profile(25)
@given(spec=cnn_models(), plan_seed=st.integers(0, 2**31 - 1))
def test_input_file_is_never_modified(spec: RandomModel, plan_seed: int) -> None:
    data = spec.proto.SerializeToString()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.onnx"
        path.write_bytes(data)
        before = path.stat().st_mtime_ns
        model = load_model(path)
        analysis = analyze(model)
        assert analysis.model_sha256 == hashlib.sha256(data).hexdigest()
        plan = random_plan(analysis, plan_seed, 0.5)
        pruned = apply_plan(model, analysis, plan)
        assert verify(model, analysis, plan, pruned).passed
        assert path.read_bytes() == data
        assert path.stat().st_mtime_ns == before
        assert sorted(p.name for p in Path(folder).iterdir()) == ["model.onnx"]
