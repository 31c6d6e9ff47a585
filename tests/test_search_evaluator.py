"""The masked evaluator: one session, any plan, the same outputs as the truly pruned model."""

from __future__ import annotations

import numpy as np
import pytest
from onnx_graphsurgeon.logger import G_LOGGER

from corpus import export_corpus_model
from edgeprune.analysis import analyze
from edgeprune.graph import load_model
from edgeprune.search import MaskedEvaluator
from edgeprune.surgery import apply_plan, random_inputs, run_model
from plans import random_plan

G_LOGGER.severity = G_LOGGER.ERROR

ARCHITECTURES = ("resnet20", "mobilenet_v2", "densenet", "shufflenet", "resnext", "flatten_gemm_head", "two_in_two_out")


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_masked_outputs_equal_the_pruned_model(name, corpus_dir):
    model = load_model(export_corpus_model(name, "legacy", corpus_dir))
    analysis = analyze(model)
    batches = [random_inputs(model, batch=2, seed=seed) for seed in (0, 1)]
    evaluator = MaskedEvaluator(model, analysis, batches, provider="cpu")
    for seed in (3, 4):
        plan = random_plan(analysis, seed)
        pruned = apply_plan(model, analysis, plan)
        results = evaluator.evaluate(plan.kept)
        assert len(results) == len(batches)
        for feeds, got in zip(batches, results):
            expected = run_model(pruned, feeds)
            assert set(expected) <= set(got)
            for key, value in expected.items():
                scale = max(float(np.abs(value).max()), 1e-6)
                assert np.abs(got[key] - value).max() / scale < 1e-4, (name, seed, key)


def test_groups_left_out_keep_every_channel_and_extra_outputs_come_back(corpus_dir):
    model = load_model(export_corpus_model("resnet20", "legacy", corpus_dir))
    analysis = analyze(model)
    feeds = random_inputs(model, batch=2, seed=0)
    producer = analysis.prunable_groups[0].producers[0]
    extra = next(n.output[0] for n in model.proto.graph.node if n.name == producer)
    evaluator = MaskedEvaluator(model, analysis, [feeds], extra_outputs=[extra], provider="cpu")
    (result,) = evaluator.evaluate({})
    for key, value in run_model(model, feeds).items():
        np.testing.assert_allclose(result[key], value, rtol=1e-5, atol=1e-5)
    assert result[extra].shape[0] == 2
    with pytest.raises(KeyError, match="not prunable"):
        evaluator.evaluate({"no such group": (0,)})
