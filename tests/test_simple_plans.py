"""`plan --ratio R` writes plans that `prune` accepts on every model the analysis accepts: R of every piece of a
group that a Split, a Slice or a grouped conv reads alone, so no tensor loses all its channels."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from onnx_graphsurgeon.logger import G_LOGGER

from corpus import CORPUS_ARCHITECTURES, EXPORTERS, export_corpus_model
from edgeprune.analysis import analyze
from edgeprune.analysis.segments import group_pieces, share_of_pieces
from edgeprune.graph import load_model
from edgeprune.surgery import PruningPlan, apply_plan, simple_plan, verify

G_LOGGER.severity = G_LOGGER.ERROR

CASES = [(name, exporter) for name in CORPUS_ARCHITECTURES for exporter in EXPORTERS]
FEW = settings(max_examples=3, deadline=None, derandomize=True, database=None, print_blob=False,
               phases=(Phase.explicit, Phase.generate), suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def loaded(corpus_dir):
    cache = {}

    def load(name: str, exporter: str):
        if (name, exporter) not in cache:
            model = load_model(export_corpus_model(name, exporter, corpus_dir))
            cache[name, exporter] = (model, analyze(model))
        return cache[name, exporter]

    return load


@pytest.mark.parametrize("name,exporter", CASES)
@FEW
@given(ratio=st.floats(0.01, 1.0), random=st.booleans(), seed=st.integers(0, 2**16))
@example(ratio=0.1, random=False, seed=0)  # ShuffleNet: the first channels emptied a Split's second half
def test_simple_plans_are_accepted_and_proven_on_every_corpus_model(name, exporter, loaded, ratio, random, seed):
    model, analysis = loaded(name, exporter)
    plan = PruningPlan.from_dict(json.loads(simple_plan(analysis, ratio, random=random, seed=seed).to_json()))
    for group in analysis.prunable_groups:
        kept = np.isin(np.arange(group.channels), plan.kept[group.id])
        for piece in group_pieces(analysis, group):
            share = int(kept[piece].sum())
            assert share >= 1 and (share == 1 or abs(share - ratio * len(piece)) <= 2), (group.id, len(piece), share)
    pruned = apply_plan(model, analysis, plan)  # validates the plan, and refuses one that empties a tensor
    proof = verify(model, analysis, plan, pruned)
    assert proof.passed, f"{name}/{exporter} ratio {ratio} random {random}: {proof.to_dict()}"


def test_shufflenet_plan_then_prune_from_the_command_line(capsys, tmp_path, corpus_dir):
    from cli_runner import run

    path = export_corpus_model("shufflenet", "legacy", corpus_dir)
    for ratio in (0.1, 0.5):
        plan, out = tmp_path / f"plan{ratio}.json", tmp_path / f"pruned{ratio}.onnx"
        code, _, err = run(capsys, "plan", path, "--ratio", ratio, "-o", plan)
        assert code == 0, err
        code, text, err = run(capsys, "prune", path, "--plan", plan, "-o", out)
        assert code == 0 and "matches the masked original" in text and out.exists(), err


def test_pieces_split_a_group_where_its_tensors_start_or_stop(loaded):
    _, analysis = loaded("shufflenet", "legacy")
    split = [g for g in analysis.prunable_groups if len(group_pieces(analysis, g)) > g.multiple]
    assert split, "ShuffleNet's units split their input channels in two"
    for group in split:
        pieces = [set(p.tolist()) for p in group_pieces(analysis, group)]
        assert sorted(i for p in pieces for i in p) == list(range(group.channels))
        position = analysis.group_index(group.id)
        for name in group.tensors:  # every tensor holds each piece whole or not at all
            classes = analysis.tensors[name].classes
            held = set(analysis.class_index[classes[analysis.class_group[classes] == position]].tolist())
            assert all(p <= held or not p & held for p in pieces)


@pytest.mark.parametrize("sizes, count, expected", [
    ([4], 2, [2]), ([2, 6], 4, [1, 3]), ([1, 1, 6], 3, [1, 1, 1]), ([5, 5], 10, [5, 5]), ([3, 1], 2, [1, 1]),
])
def test_shares_are_proportional_at_least_one_and_at_most_the_piece(sizes, count, expected):
    assert share_of_pieces(sizes, count) == expected
