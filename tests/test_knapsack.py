"""The knapsack strategy: the dynamic programme against brute force, budgets met exactly and spent,
determinism, the command line end to end, and bad input."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from cli_runner import run
from onnx_graphsurgeon.logger import G_LOGGER

from edgeprune.analysis import analyze
from edgeprune.cost import PlanCostModel
from edgeprune.errors import InputError
from edgeprune.graph import load_model
from edgeprune.reference import model_path
from edgeprune.selection import Budget, Selector
from edgeprune.selection.knapsack import loss_curve, select_knapsack
from edgeprune.selection.mckp import solve
from edgeprune.stages import latency_model

G_LOGGER.severity = G_LOGGER.ERROR
REFERENCE = model_path("resnet20_fmnist")
DATA = ("--calib", "calibration/fashion-mnist", "--preset", "fashion-mnist")


def _brute_force(losses, costs, capacity):
    best = None
    for choice in itertools.product(*(range(len(c)) for c in costs)):
        cost = sum(c[i] for c, i in zip(costs, choice))
        loss = sum(loss[i] for loss, i in zip(losses, choice))
        if cost <= capacity and (best is None or loss < best - 1e-12):
            best = loss
    return best


@pytest.mark.parametrize("seed", range(40))
def test_the_programme_finds_the_brute_force_optimum(seed):
    rng = np.random.default_rng(seed)
    groups = int(rng.integers(1, 5))
    losses = [rng.random(int(rng.integers(1, 6))) for _ in range(groups)]
    costs = [rng.integers(0, 12, len(loss)).astype(float) for loss in losses]
    capacity = float(rng.integers(0, 30))
    best = _brute_force(losses, costs, capacity)
    found = solve(losses, costs, capacity)
    if best is None:
        assert found is None
        return
    assert sum(c[i] for c, i in zip(costs, found)) <= capacity
    assert sum(loss[i] for loss, i in zip(losses, found)) == pytest.approx(best, abs=1e-12)


def test_real_costs_are_rounded_up_so_every_answer_fits():
    rng = np.random.default_rng(7)
    for _ in range(20):
        losses = [rng.random(5) for _ in range(4)]
        costs = [rng.random(5) for _ in range(4)]
        found = solve(losses, costs, 1.3, resolution=50)
        assert found is None or sum(c[i] for c, i in zip(costs, found)) <= 1.3
    assert solve([np.zeros(2)], [np.array([2.0, 3.0])], 1.0) is None
    assert solve([np.array([0.5, 0.1, 0.3])], [np.array([0.0, 0.2, 0.0])], 0.0) == [2]  # no room: the free ones
    assert solve([np.array([0.5])], [np.array([0.2])], 0.0) is None


def test_the_loss_of_a_kept_set_is_the_largest_score_it_drops():
    scores = np.array([0.5, 0.1, 0.9, 0.3])
    assert loss_curve(scores, ((2,), (0, 2), (0, 2, 3), (0, 1, 2, 3))).tolist() == [0.5, 0.3, 0.1, 0.0]


@pytest.fixture(scope="module")
def reference():
    model = load_model(REFERENCE)
    analysis = analyze(model)
    rng = np.random.default_rng(0)
    # refit-error-like scores: increasing along a random removal order, on one scale across groups
    scores = {g.id: np.cumsum(rng.random(g.channels))[rng.permutation(g.channels)] / 10 for g in analysis.prunable_groups}
    return model, analysis, PlanCostModel(model, analysis), latency_model(None, model, analysis), scores


def _spent(selector, kept, analysis):
    """No group can keep one more step of channels without breaking the budget."""
    for group in analysis.prunable_groups:
        counts = selector.counts(group)
        now = len(kept.get(group.id, range(group.channels)))
        bigger = [c for c in counts if c > now]
        if bigger:
            trial = {**kept, group.id: tuple(range(bigger[0]))}
            if selector.meets(trial):
                return False
    return True


@pytest.mark.parametrize("budget", [
    Budget(macs=0.2, floor=0.0, alignment=1),
    Budget(macs=0.5, alignment=8),
    Budget(params=0.3, floor=0.1, alignment=1),
    Budget(latency_ms=1.0, floor=0.0, alignment=8),
    Budget(speedup=1.5, alignment=8),
], ids=["macs-free", "macs-aligned", "params", "latency", "speedup"])
def test_the_budget_is_met_and_spent(reference, budget):
    model, analysis, costs, latency, scores = reference
    selector = Selector(analysis, costs, budget, latency)
    kept = select_knapsack(selector, scores)
    assert selector.meets(kept)
    assert _spent(selector, kept, analysis)
    for group in analysis.prunable_groups:
        assert len(kept.get(group.id, range(group.channels))) in selector.counts(group)
    assert kept == select_knapsack(Selector(analysis, costs, budget, latency), scores)  # deterministic


def test_it_loses_less_than_the_uniform_plan_it_starts_from(reference):
    model, analysis, costs, latency, scores = reference
    selector = Selector(analysis, costs, Budget(macs=0.25, floor=0.0, alignment=1))
    kept = select_knapsack(selector, scores)

    def loss(plan):
        return sum(loss_curve(scores[g.id], (plan.get(g.id, tuple(range(g.channels))),))[0]
                   for g in analysis.prunable_groups)

    from edgeprune.selection import select_uniform

    assert loss(kept) < loss(select_uniform(selector, scores))


class _Blind:
    """A latency predictor that sees every channel but those of one group."""

    def __init__(self, analysis, latency, blind):
        self.latency, self.members = latency, analysis.members(blind.id)

    def predict(self, keep):
        keep = keep.copy()
        keep[self.members] = True
        return self.latency.predict(keep)


def test_a_latency_budget_on_a_group_the_device_cannot_price_is_a_usage_error(reference):
    model, analysis, costs, latency, scores = reference
    selector = Selector(analysis, costs, Budget(speedup=1.3, alignment=8), _Blind(analysis, latency, analysis.prunable_groups[3]))
    with pytest.raises(InputError, match=f"prices no layer of group {analysis.prunable_groups[3].id}"):
        select_knapsack(selector, scores)


@pytest.mark.parametrize("align", [8, 16])
def test_a_group_the_device_runs_whole_at_every_allowed_count_is_not_an_unpriced_one(reference, align):
    """On a device that pads channels to 16 (ONNX Runtime with AVX-512F), a 16-channel group cannot be traded
    for time at any count: a latency budget keeps it whole instead of refusing the run."""
    from dataclasses import replace

    from edgeprune.hardware import LatencyModel

    model, analysis, costs, latency, scores = reference
    padded = LatencyModel(replace(latency.profile, alignment=16), model, analysis)
    selector = Selector(analysis, costs, Budget(speedup=1.3, alignment=align), padded)
    kept = select_knapsack(selector, scores)
    assert selector.meets(kept)
    sixteen = [g for g in analysis.prunable_groups if g.channels == 16]
    assert sixteen and all(len(kept.get(g.id, range(16))) == 16 for g in sixteen)  # no time to gain from them


def test_optimize_with_the_knapsack_end_to_end_repeats_the_same_plan(capsys, tmp_path):
    plans = []
    for name in ("a", "b"):
        code, _, err = run(capsys, "optimize", REFERENCE, *DATA, "--limit", 96, "--target-flops", "5x",
                           "--strategy", "knapsack", "--latency-rounds", 0, "--out", tmp_path / name)
        assert code == 0, err
        plans.append((tmp_path / name / "plan.json").read_bytes())
    assert plans[0] == plans[1]
    plan = json.loads(plans[0])
    assert plan["strategy"] == "knapsack" and plan["criterion"] == "refit-error"


@pytest.mark.parametrize("extra,message,code", [
    (("--criterion", "l1", "--target-flops", "2x"), "--strategy knapsack reads each group's refit loss curve", 2),
    (("--target-flops", "0.01"), "cannot be reached", 1),
])
def test_bad_knapsack_input_is_one_line_and_writes_nothing(capsys, tmp_path, extra, message, code):
    got, _, err = run(capsys, "optimize", REFERENCE, *DATA, "--limit", 64, "--strategy", "knapsack",
                      "--out", tmp_path / "out", *extra)
    assert got == code, err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_the_default_floor_and_alignment_give_way_to_10x(reference, caplog):
    model, analysis, costs, latency, scores = reference
    strict = Selector(analysis, costs, Budget(macs=0.1, alignment=8))
    assert strict.budget == strict.requested  # given explicitly, nothing gives way
    selector = Selector(analysis, costs, Budget(macs=0.1, alignment=8, relax_floor=True, relax_alignment=True))
    assert selector.budget.fine and selector.budget.floor == 0.25  # the steps gave way, the floor did not need to
    assert "cannot be met with a floor of 25% per group and channels in steps of 8" in caplog.text
    kept = select_knapsack(selector, scores)
    assert selector.meets(kept) and selector.fractions(kept)[0] <= 0.1
