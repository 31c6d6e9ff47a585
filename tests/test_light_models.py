"""The classic topologies the onnx wheel ships (weights replaced by ConstantOfShape, so we draw real ones)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from onnx_graphsurgeon.logger import G_LOGGER

from corpus import light_model_paths
from edgeprune.analysis import analyze
from edgeprune.cost import PlanCostModel, model_cost
from edgeprune.graph import load_model, normalize_proto
from edgeprune.surgery import apply_plan, verify
from plans import random_plan

G_LOGGER.severity = G_LOGGER.ERROR

# What stays frozen in each, and the op that freezes it (besides the graph's own input and output).
EXPECTED_FREEZERS = {
    "bvlc_alexnet": {"LRN", "Softmax"},
    "zfnet512": {"LRN", "Softmax"},
    "inception_v1": {"LRN", "Softmax"},
    "inception_v2": {"Softmax"},
    "resnet50": {"Softmax"},
    "squeezenet": {"Softmax"},
    "vgg19": {"Softmax"},
    "densenet121": set(),
    "shufflenet": {"Conv", "Softmax"},  # grouped 1x1 convs read the shuffled stream out of order
}
HEAVY = {"vgg19", "bvlc_alexnet", "zfnet512"}  # hundreds of MB of weights once materialised


def _name(path) -> str:
    return path.stem.removeprefix("light_")


def _with_real_weights(model, seed: int = 0):
    """He-initialised weights and positive variances, so outputs are informative (not all zeros)."""
    rng = np.random.default_rng(seed)
    proto = onnx.ModelProto()
    proto.CopyFrom(model.proto)
    for init in proto.graph.initializer:
        values = numpy_helper.to_array(init)
        if values.dtype != np.float32 or values.size < 2:
            continue
        if values.ndim >= 2:
            new = rng.standard_normal(values.shape) * np.sqrt(2.0 / np.prod(values.shape[1:]))
        else:
            new = rng.uniform(0.5, 1.5, values.shape)
        init.CopyFrom(numpy_helper.from_array(new.astype(np.float32), init.name))
    return normalize_proto(proto, source_sha256=model.source_sha256)


@pytest.mark.parametrize("path", light_model_paths(), ids=_name)
def test_light_model_groups_and_reasons(path):
    analysis = analyze(load_model(path))
    freezers = {r.op for g in analysis.groups if g.producers for r in g.frozen} - {"Input", "Output"}
    assert freezers == EXPECTED_FREEZERS[_name(path)]
    if _name(path) != "shufflenet":
        assert len(analysis.prunable_groups) >= 3


@pytest.mark.parametrize("path", [p for p in light_model_paths() if _name(p) not in HEAVY and _name(p) != "shufflenet"], ids=_name)
def test_light_model_prunes_with_proof(path):
    model = _with_real_weights(load_model(path))
    analysis = analyze(model)
    plan = random_plan(analysis, seed=7, low=0.3, high=0.9)
    pruned = apply_plan(model, analysis, plan)
    proof = verify(model, analysis, plan, pruned)
    assert proof.passed, proof.to_dict()
    assert model_cost(pruned).macs == PlanCostModel(model, analysis).cost_of_plan(plan.kept).macs
