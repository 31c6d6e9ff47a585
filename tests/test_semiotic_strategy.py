"""`--strategy semiotic`: greedy chunks where the superization curve changes least, to the budget, repeatably."""

from __future__ import annotations

import json

import numpy as np
import pytest
from onnx_graphsurgeon.logger import G_LOGGER

from builders import two_group_model, write_model
from edgeprune.analysis import analyze
from edgeprune.calibration import load_calibration
from edgeprune.cli import main
from edgeprune.cost import PlanCostModel
from edgeprune.graph.model import ModelGraph
from edgeprune.selection import Budget, SelectionContext, Selector
from edgeprune.semiotic.curve import LayerEntropy, SuperizationCurve
from edgeprune.semiotic.settings import SemioticSettings
from edgeprune.semiotic.strategy import select_semiotic, semiotic_strategy

G_LOGGER.severity = G_LOGGER.ERROR
SCORES = {"conv_a": np.array([5, 1, 7, 3, 8, 2, 6, 4], float), "conv_b": np.array([1, 6, 2, 5, 3, 4], float)}


@pytest.fixture(scope="module")
def model() -> ModelGraph:
    return ModelGraph.from_proto(two_group_model())


@pytest.fixture(scope="module")
def calib_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("calib") / "calib.npz"
    np.savez(path, x=np.random.default_rng(0).standard_normal((20, 3, 8, 8)).astype(np.float32))
    return path


def context(model, calib_path, budget: Budget, images: int = 6, **settings) -> SelectionContext:
    analysis = analyze(model)
    return SelectionContext(model, analysis, Selector(analysis, PlanCostModel(model, analysis), budget), SCORES,
                            fit=load_calibration(calib_path, model),
                            settings=SemioticSettings(images=images, **settings), seed=0, batch_size=1,
                            provider="cpu")


def test_meets_the_budget_keeps_the_best_scored_channels_and_repeats(model, calib_path):
    ctx = context(model, calib_path, Budget(macs=0.6, floor=0.25))
    kept = semiotic_strategy(ctx)
    assert ctx.selector.meets(kept)
    for gid, channels in kept.items():
        assert 2 <= len(channels) and set(channels) == set(np.argsort(-SCORES[gid], kind="stable")[:len(channels)])
    assert semiotic_strategy(ctx) == kept


# the plan the strategy chose at 60% of the MACs (6 images, seed 0) when it measured every curve masked
MASKED_PLAN = {"conv_a": (0, 2, 3, 4, 6, 7), "conv_b": (1, 3, 4, 5)}


def test_the_masked_judge_chooses_what_the_masked_curves_chose_before(model, calib_path):
    ctx = context(model, calib_path, Budget(macs=0.6, floor=0.25))
    assert ctx.settings.judge == "masked"  # the default
    assert semiotic_strategy(ctx) == MASKED_PLAN


def test_the_reconstructed_judge_measures_other_curves_chooses_another_plan_and_repeats(model, calib_path):
    from edgeprune.semiotic.strategy import CurveMeter, meter_images

    ctx = context(model, calib_path, Budget(macs=0.6, floor=0.25), judge="reconstructed", refit_images=6)
    kept = semiotic_strategy(ctx)
    assert ctx.selector.meets(kept) and kept != MASKED_PLAN
    assert semiotic_strategy(ctx) == kept
    judged, rows = meter_images(ctx, ctx.settings)
    assert rows is not None and sum(len(b["x"]) for b in judged) == 6 and sum(len(b["x"]) for b in rows) == 6
    reconstructed = CurveMeter(model, ctx.analysis, judged, rows=rows)
    masked = CurveMeter(model, ctx.analysis, judged, provider="cpu")
    assert reconstructed.curve({}).entropies == pytest.approx(masked.curve({}).entropies, abs=1e-5)
    plan = {"conv_a": (0, 2, 4, 6), "conv_b": (1, 3, 4, 5)}  # a plan reconstruction refits: its curve moves
    assert np.abs(reconstructed.curve(plan).entropies - masked.curve(plan).entropies).max() > 1e-3


def test_the_reconstructed_judge_refits_on_images_it_does_not_measure(model, calib_path):
    from edgeprune.semiotic.strategy import meter_images

    ctx = context(model, calib_path, Budget(macs=0.6, floor=0.25), images=8, refit_images=5,
                  judge="reconstructed")
    judged, rows = meter_images(ctx, ctx.settings)
    assert rows is not None
    measured = np.concatenate([b["x"] for b in judged])
    refit = np.concatenate([b["x"] for b in rows])
    assert len(measured) == 8 and len(refit) == 5
    assert not (measured[:, None] == refit[None]).all(axis=(2, 3, 4)).any()  # no image in both


class RecordingMeter:
    """A stand-in curve meter: pruning conv_b barely moves the curve, pruning conv_a moves it a lot."""

    def __init__(self) -> None:
        self.evaluations = 0

    def curve(self, kept) -> SuperizationCurve:
        self.evaluations += 1
        a, b = len(kept.get("conv_a", range(8))), len(kept.get("conv_b", range(6)))
        entropies = [1.0 + (8 - a) * 1.0, 2.0 + (6 - b) * 0.01]
        layers = tuple(LayerEntropy(n, n, (), 1, 4, 4, 8, h, 0.0) for n, h in zip("ab", entropies))
        return SuperizationCurve(layers, 1, "mean")


def test_takes_from_the_group_whose_pruning_changes_the_curve_least(model):
    analysis = analyze(model)
    selector = Selector(analysis, PlanCostModel(model, analysis), Budget(macs=0.45, floor=0.25))
    meter = RecordingMeter()
    kept = select_semiotic(selector, SCORES, meter, SemioticSettings(chunk=0.125))
    assert len(kept["conv_b"]) == 2  # conv_b went all the way to its floor (25% of 6, one channel a step) ...
    assert len(kept["conv_a"]) < 8 and selector.meets(kept)  # ... before conv_a gave anything
    assert meter.evaluations > 4


def test_lazy_steps_pick_the_same_groups_with_fewer_measurements(model):
    analysis = analyze(model)
    selector = Selector(analysis, PlanCostModel(model, analysis), Budget(macs=0.45, floor=0.25))
    full, lazy = RecordingMeter(), RecordingMeter()
    expected = select_semiotic(selector, SCORES, full, SemioticSettings(chunk=0.125, lazy=False))
    assert select_semiotic(selector, SCORES, lazy, SemioticSettings(chunk=0.125, lazy=True)) == expected
    assert lazy.evaluations < full.evaluations


def test_an_unreachable_budget_fails_before_measuring(model):
    from edgeprune.errors import BudgetError

    analysis = analyze(model)
    selector = Selector(analysis, PlanCostModel(model, analysis), Budget(macs=0.01, floor=0.5))
    meter = RecordingMeter()
    with pytest.raises(BudgetError):
        select_semiotic(selector, SCORES, meter, SemioticSettings())
    assert meter.evaluations == 0


def test_optimize_with_the_semiotic_strategy_from_the_command_line(capsys, calib_path, tmp_path):
    path = write_model(two_group_model(), tmp_path / "two.onnx")
    plans = []
    for run in ("a", "b"):
        try:
            main([str(a) for a in ("optimize", path, "--calib", calib_path, "--out", tmp_path / run, "--target-flops",
                                   "0.6", "--strategy", "semiotic", "--provider", "cpu", "--criterion", "l1")])
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        assert code == 0, capsys.readouterr().err
        plans.append(json.loads((tmp_path / run / "plan.json").read_text()))
        report = json.loads((tmp_path / run / "report.json").read_text())
        assert report["cost_after"]["macs"] <= 0.6 * report["cost_before"]["macs"]
        semiotic = report["settings"]["selection"]["semiotic"]
        assert report["verification"]["passed"] and semiotic["images"] == 64 and semiotic["lazy"] is False
    assert plans[0]["strategy"] == "semiotic" and plans[0]["kept"] == plans[1]["kept"]


def test_semiotic_options_reach_the_settings_and_bad_ones_are_refused(capsys, calib_path, tmp_path):
    path = write_model(two_group_model(), tmp_path / "two.onnx")
    base = ["optimize", path, "--calib", calib_path, "--target-flops", "0.6", "--strategy", "semiotic",
            "--provider", "cpu", "--criterion", "l1"]
    for extra, expected in ((["--semiotic-images", "5", "--semiotic-chunk", "0.3", "--semiotic-per-mac", "--semiotic-lazy",
                              "--semiotic-judge", "reconstructed"], 0),
                            (["--semiotic-images", "0"], 2), (["--semiotic-chunk", "1.5"], 2)):
        out = tmp_path / f"run{len(extra)}{extra[-1]}"
        try:
            main([str(a) for a in base + ["--out", out] + extra])
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        err = capsys.readouterr().err
        assert code == expected, err
        if expected:
            assert err.startswith("edgeprune: error: ") and err.count("\n") == 1 and not out.exists()
        else:
            settings = json.loads((out / "report.json").read_text())["settings"]["selection"]["semiotic"]
            assert settings == {"images": 5, "chunk": 0.3, "per-mac": True, "levels": None, "distance": "steps",
                                "lazy": True, "judge": "reconstructed", "refit-images": 64}
    with pytest.raises(SystemExit) as exc:  # a judge that is not one is refused by the option itself
        main([str(a) for a in base + ["--out", tmp_path / "bad", "--semiotic-judge", "refitted"]])
    assert exc.value.code == 2 and "'refitted' is not one of 'reconstructed', 'masked'" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
