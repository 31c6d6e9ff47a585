"""Every corpus architecture, from both torch exporters: prune at random, prove it, and price it."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx_graphsurgeon.logger import G_LOGGER

from corpus import CORPUS_ARCHITECTURES, EXPORTERS, export_corpus_model
from edgeprune.analysis import analyze
from edgeprune.cost import PlanCostModel, model_cost
from edgeprune.graph import load_model
from edgeprune.surgery import apply_plan, random_inputs, run_model, simple_plan, verify
from plans import random_plan

G_LOGGER.severity = G_LOGGER.ERROR

CASES = [(name, exporter) for name in CORPUS_ARCHITECTURES for exporter in EXPORTERS]


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
def test_random_plans_are_proven_and_priced(name, exporter, loaded):
    model, analysis = loaded(name, exporter)
    assert analysis.prunable_groups, "every corpus model has prunable groups"
    costs = PlanCostModel(model, analysis)
    original_macs = model_cost(model).macs
    for seed in (1, 2):
        plan = random_plan(analysis, seed)
        pruned = apply_plan(model, analysis, plan)
        onnx.checker.check_model(pruned.proto, full_check=True)
        for batch in (1, 3):
            proof = verify(model, analysis, plan, pruned, feeds=random_inputs(model, batch=batch, seed=seed))
            assert proof.passed, f"{name}/{exporter} seed {seed}: {proof.to_dict()}"
        actual, predicted = model_cost(pruned), costs.cost_of_plan(plan.kept)
        assert actual.macs == predicted.macs < original_macs
        assert actual.params == predicted.params
        assert actual.weight_bytes == predicted.weight_bytes


@pytest.mark.parametrize("name,exporter", CASES)
def test_identity_plan_reproduces_outputs_exactly(name, exporter, loaded):
    model, analysis = loaded(name, exporter)
    plan = simple_plan(analysis, 1.0)
    pruned = apply_plan(model, analysis, plan)
    feeds = random_inputs(model, batch=2, seed=0)
    expected, got = run_model(model, feeds), run_model(pruned, feeds)
    for key, value in expected.items():
        np.testing.assert_array_equal(got[key], value)
    assert model_cost(pruned).macs == model_cost(model).macs


@pytest.mark.parametrize("name,exporter", CASES)
def test_every_frozen_group_says_why(name, exporter, loaded):
    _, analysis = loaded(name, exporter)
    for group in analysis.groups:
        if not group.prunable:
            assert group.frozen and all(r.node and r.reason for r in group.frozen), group


@pytest.mark.parametrize("name,exporter", CASES)
def test_loading_keeps_the_models_outputs(name, exporter, corpus_dir, loaded):
    model, _ = loaded(name, exporter)
    original = onnx.load(str(export_corpus_model(name, exporter, corpus_dir)))
    feeds = random_inputs(model, batch=2, seed=5)
    from edgeprune.runtime import create_session

    session = create_session(original.SerializeToString())
    names = [o.name for o in session.get_outputs()]
    reference = dict(zip(names, session.run(names, feeds)))
    normalised = run_model(model, feeds)
    for key, value in reference.items():
        scale = float(np.abs(value).max()) or 1.0
        assert float(np.abs(normalised[key] - value).max()) / scale < 1e-5
