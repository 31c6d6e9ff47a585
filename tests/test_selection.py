"""Budgets, valid channel counts, and the two selection strategies."""

from __future__ import annotations

import numpy as np
import pytest
from onnx_graphsurgeon.logger import G_LOGGER

from corpus import export_corpus_model
from edgeprune.analysis import ChannelGroup, analyze
from edgeprune.cost import PlanCostModel
from edgeprune.errors import BudgetError, InputError
from edgeprune.graph import load_model
from edgeprune.selection import (
    Budget, Selector, normalised, parse_fraction, select_ranked, select_uniform, top_channels, valid_count,
)

G_LOGGER.severity = G_LOGGER.ERROR


@pytest.mark.parametrize("text,value", [("0.2", 0.2), ("5x", 0.2), ("2X", 0.5), (1, 1.0), ("0.75", 0.75)])
def test_fractions_and_factors(text, value):
    assert parse_fraction(text, "--target-flops") == pytest.approx(value)


@pytest.mark.parametrize("text", ["0", "1.5", "abc", "0x", "-2", "0.5x"])
def test_bad_budgets_are_refused(text):
    with pytest.raises(InputError, match="--target-flops"):
        parse_fraction(text, "--target-flops")


def test_a_budget_needs_a_target():
    with pytest.raises(InputError, match="give a budget"):
        Budget()


def _group(channels: int, multiple: int = 1) -> ChannelGroup:
    return ChannelGroup("g", channels, ("p",), ("c",), ("t",), multiple=multiple)


def test_valid_counts_respect_floor_alignment_and_segments():
    assert valid_count(_group(64), 10, floor=0.25, alignment=1) == 16  # floor 25% of 64
    assert valid_count(_group(64), 20, floor=0.0, alignment=8) == 24  # rounded up to the alignment
    assert valid_count(_group(6), 2, floor=0.0, alignment=8) == 2  # smaller than the alignment: cannot be aligned, so free
    assert valid_count(_group(32, multiple=4), 5, floor=0.0, alignment=1) == 8  # equal per grouped-conv segment
    assert valid_count(_group(64, multiple=4), 9, floor=0.0, alignment=8) == 16  # lcm(4, 8)


def test_top_channels_take_the_best_from_each_segment():
    scores = np.array([0.1, 0.9, 0.5, 0.7, 0.8, 0.2, 0.3, 0.6])
    assert top_channels(_group(8), scores, 3) == (1, 3, 4)
    assert top_channels(_group(8, multiple=2), scores, 4) == (1, 3, 4, 7)


@pytest.fixture(scope="module")
def resnet(corpus_dir):
    model = load_model(export_corpus_model("resnet20", "legacy", corpus_dir))
    analysis = analyze(model)
    return analysis, PlanCostModel(model, analysis)


@pytest.mark.parametrize("target", [0.7, 0.5, 0.2])
@pytest.mark.parametrize("strategy", [select_ranked, select_uniform])
def test_strategies_meet_the_budget(resnet, strategy, target):
    analysis, costs = resnet
    rng = np.random.default_rng(0)
    scores = {g.id: rng.random(g.channels) for g in analysis.prunable_groups}
    selector = Selector(analysis, costs, Budget(macs=target, alignment=4))
    kept = strategy(selector, scores)
    macs, _ = selector.fractions(kept)
    assert macs <= target
    assert macs > target - 0.15  # keeps close to what is allowed, not far below
    for group in analysis.prunable_groups:
        assert len(kept[group.id]) % 4 == 0 and len(kept[group.id]) >= 0.25 * group.channels


def test_ranker_prunes_low_scores_first(resnet):
    analysis, costs = resnet
    groups = analysis.prunable_groups
    favoured, neglected = groups[1], groups[2]
    scores = {g.id: np.linspace(1.0, 0.5, g.channels) for g in groups}
    scores[neglected.id] = np.r_[np.ones(1), np.full(neglected.channels - 1, 0.01)]  # one strong, the rest weak
    kept = select_ranked(Selector(analysis, costs, Budget(macs=0.6)), scores)
    assert len(kept[neglected.id]) == int(np.ceil(0.25 * neglected.channels))  # cut to its floor
    assert 0 in kept[neglected.id]  # its strong channel survives
    assert len(kept[favoured.id]) > len(kept[neglected.id]) * favoured.channels / neglected.channels


def test_normalisations_scale_each_group():
    scores = np.array([4.0, 2.0, 0.0, 2.0])
    np.testing.assert_allclose(normalised(scores, "mean"), [2.0, 1.0, 0.0, 1.0])
    np.testing.assert_allclose(normalised(scores, "max"), [1.0, 0.5, 0.0, 0.5])
    np.testing.assert_allclose(normalised(scores, "none"), scores)
    assert normalised(np.zeros(3), "mean").tolist() == [0.0, 0.0, 0.0]  # a dead group is no division by zero
    with pytest.raises(InputError, match="unknown normalisation 'median'"):
        normalised(scores, "median")


def test_mean_normalisation_cuts_below_average_channels_first(resnet):
    """Each group is judged against its own average: the weak half of a spread group (0.1 of a mean of 1.0)
    goes before any channel of groups whose channels are all about equally useful (0.9 to 1.1)."""
    analysis, costs = resnet
    spread = [g for g in analysis.prunable_groups if g.channels == 16][1]
    scores = {g.id: np.linspace(0.45, 0.55, g.channels) for g in analysis.prunable_groups}
    scores[spread.id] = np.r_[np.full(8, 1.9), np.full(8, 0.1)]
    selector = Selector(analysis, costs, Budget(macs=1.0))
    weak_half_gone = {**{g.id: tuple(range(g.channels)) for g in analysis.prunable_groups}, spread.id: tuple(range(8))}
    target = selector.fractions(weak_half_gone)[0]
    kept = select_ranked(Selector(analysis, costs, Budget(macs=target)), scores, "mean")
    assert kept == weak_half_gone


def test_unreachable_budget_names_the_best_reachable(resnet):
    analysis, costs = resnet
    scores = {g.id: np.ones(g.channels) for g in analysis.prunable_groups}
    with pytest.raises(BudgetError, match=r"best reachable is MACs \d+\.\d%"):
        select_ranked(Selector(analysis, costs, Budget(macs=0.01, floor=0.5)), scores)


def test_small_groups_take_half_steps_only_when_fine():
    assert valid_count(_group(16), 3, floor=0.0, alignment=8) == 8  # two steps of 8 at most: 8 or 16
    assert valid_count(_group(16), 3, floor=0.0, alignment=8, fine=True) == 4  # fine: steps of 4
    assert valid_count(_group(64), 3, floor=0.0, alignment=8, fine=True) == 8  # wide groups keep their steps
    assert valid_count(_group(16, multiple=4), 3, floor=0.0, alignment=8, fine=True) == 4  # still per segment


@pytest.mark.parametrize("reference,target", [("resnet20_fmnist", 0.1), ("vgg_fmnist", 0.1), ("mobilenet_v2_fmnist", 0.1)])
def test_the_default_floor_and_steps_give_way_to_10x_on_the_reference_models(reference, target, caplog):
    from edgeprune.reference import model_path

    model = load_model(model_path(reference))
    analysis = analyze(model)
    costs = PlanCostModel(model, analysis)
    scores = {g.id: np.ones(g.channels) for g in analysis.prunable_groups}
    asked = Budget(macs=target, alignment=8)
    with pytest.raises(BudgetError, match="best reachable"):
        Selector(analysis, costs, asked).check_reachable(scores)  # given explicitly, nothing gives way
    selector = Selector(analysis, costs, Budget(macs=target, alignment=8, relax_floor=True, relax_alignment=True))
    selector.check_reachable(scores)
    assert selector.budget != selector.requested and selector.budget.floor >= 0.15
    assert "cannot be met with a floor of 25% per group and channels in steps of 8" in caplog.text
    assert selector.meets(select_ranked(selector, scores))
    assert "fine" in selector.budget.to_dict() and "fine" not in asked.to_dict()


def test_the_defaults_give_way_no_further_than_their_last_level(resnet):
    analysis, costs = resnet
    scores = {g.id: np.ones(g.channels) for g in analysis.prunable_groups}
    selector = Selector(analysis, costs, Budget(macs=0.01, alignment=8, relax_floor=True, relax_alignment=True))
    assert selector.budget.floor == 0.15 and selector.budget.fine
    with pytest.raises(BudgetError, match=r"floor of 15% per group \(the defaults relaxed as far as they may\)"):
        selector.check_reachable(scores)
    reachable = Selector(analysis, costs, Budget(macs=0.5, alignment=8, relax_floor=True, relax_alignment=True))
    assert reachable.budget == reachable.requested  # nothing gives way when nothing has to
