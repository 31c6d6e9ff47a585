"""What the analysis must find in each architecture: coupled residuals, SE gates, grouped convs, shuffles."""

from __future__ import annotations

import numpy as np
import pytest
from onnx_graphsurgeon.logger import G_LOGGER

from corpus import EXPORTERS, export_corpus_model
from edgeprune.analysis import analyze
from edgeprune.graph import load_model

G_LOGGER.severity = G_LOGGER.ERROR

# Architectures whose every group is prunable except those ending in a graph output.
FULLY_PRUNABLE = ("resnet_basic", "resnet_bottleneck", "resnet20", "mobilenet_v2", "mobilenet_v3", "densenet",
                  "shufflenet", "resnext", "vgg", "unet", "flatten_gemm_head", "gap_gemm_head", "two_in_two_out")


def _load(name, exporter, corpus_dir):
    model = load_model(export_corpus_model(name, exporter, corpus_dir))
    return model, analyze(model)


def _groups_of(analysis, tensor: str) -> set[int]:
    return set(analysis.class_group[analysis.tensors[tensor].classes].tolist())


def _nodes(model, op: str):
    return [n for n in model.proto.graph.node if n.op_type == op]


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("name", FULLY_PRUNABLE)
def test_only_output_groups_are_frozen(name, exporter, corpus_dir):
    _, analysis = _load(name, exporter, corpus_dir)
    for group in analysis.groups:
        if group.producers and not group.prunable:
            assert {r.op for r in group.frozen} == {"Output"}, (group.id, [str(r) for r in group.frozen])


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("name,coupled", [("resnet_basic", 3), ("resnet_bottleneck", 3), ("resnet20", 4),
                                           ("resnext", 3), ("mobilenet_v2", 2)])
def test_residual_adds_couple_their_operands(name, coupled, exporter, corpus_dir):
    model, analysis = _load(name, exporter, corpus_dir)
    adds = [n for n in _nodes(model, "Add") if all(i in analysis.tensors for i in n.input)]
    assert adds, "the model has residual adds"
    for add in adds:
        groups = set().union(*(_groups_of(analysis, t) for t in add.input))
        assert len(groups) == 1 and analysis.groups[groups.pop()].prunable
    widest = max(analysis.prunable_groups, key=lambda g: len(g.producers))
    assert len(widest.producers) >= coupled, "a residual stage couples several convs (and its projection)"


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_squeeze_excitation_gate_joins_the_feature_group(exporter, corpus_dir):
    model, analysis = _load("mobilenet_v3", exporter, corpus_dir)
    gated = [n for n in _nodes(model, "Mul") if all(i in analysis.tensors for i in n.input)
             and any(len(model.shapes[i]) == 4 and model.shapes[i][2:] == (1, 1) for i in n.input)]
    assert gated, "the SE multiply is tracked"
    for mul in gated:
        groups = set().union(*(_groups_of(analysis, t) for t in mul.input))
        assert len(groups) == 1 and analysis.groups[groups.pop()].prunable


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_grouped_conv_groups_keep_equal_counts(exporter, corpus_dir):
    model, analysis = _load("resnext", exporter, corpus_dir)
    grouped = {int(a.i) for n in _nodes(model, "Conv") for a in n.attribute if a.name == "group" and a.i > 1}
    multiples = {g.multiple for g in analysis.prunable_groups}
    assert {4, 8} <= grouped and {4, 8} <= multiples


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_channel_shuffle_becomes_a_prunable_gather(exporter, corpus_dir):
    model, analysis = _load("shufflenet", exporter, corpus_dir)
    gathers = _nodes(model, "Gather")
    assert gathers and not _nodes(model, "Transpose")
    for gather in gathers:
        classes = analysis.tensors[gather.output[0]].classes
        assert all(analysis.groups[g].prunable for g in np.unique(analysis.class_group[classes]))


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("name", ["densenet", "unet"])
def test_concat_lays_groups_end_to_end(name, exporter, corpus_dir):
    model, analysis = _load(name, exporter, corpus_dir)
    concats = [n for n in _nodes(model, "Concat") if n.output[0] in analysis.tensors]
    assert concats
    assert any(len(_groups_of(analysis, c.output[0])) >= 2 for c in concats)


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_flatten_into_gemm_gives_each_channel_its_rows(exporter, corpus_dir):
    model, analysis = _load("flatten_gemm_head", exporter, corpus_dir)
    gemm = next(n for n in model.proto.graph.node if n.op_type in ("Gemm", "MatMul"))
    flat = analysis.tensors[gemm.input[0]]
    spatial = len(flat.classes) // len(np.unique(flat.classes))
    assert spatial > 1
    np.testing.assert_array_equal(flat.classes, np.repeat(flat.classes[::spatial], spatial))
