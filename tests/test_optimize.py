"""`optimize` and `score` end to end, through the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from onnx_graphsurgeon.logger import G_LOGGER

from cli_runner import run
from corpus import export_corpus_model
from edgeprune.evaluate import Comparison
from edgeprune.graph import load_model
from edgeprune.pipeline import _guard_accuracy
from edgeprune.settings import OptimizeSettings
from edgeprune.selection import Budget
from edgeprune.surgery import random_inputs, run_model

G_LOGGER.severity = G_LOGGER.ERROR


@pytest.fixture(scope="module")
def model(corpus_dir) -> Path:
    return export_corpus_model("resnet20", "legacy", corpus_dir)


@pytest.fixture(scope="module")
def calib(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("calib") / "calib.npz"
    np.savez(path, input=rng.standard_normal((80, 1, 28, 28)).astype(np.float32), labels=rng.integers(0, 10, 80))
    return path


def optimize(capsys, model, calib, out, *extra):
    return run(capsys, "optimize", model, "--calib", calib, "--out", out, "--batch-size", 32, *extra)


def test_optimize_writes_model_plan_and_report(capsys, model, calib, tmp_path):
    code, out, err = optimize(capsys, model, calib, tmp_path / "run", "--target-flops", "2x")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["model.pruned.onnx", "plan.json", "report.html", "report.json", "report.md"]
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["cost_after"]["macs"] <= 0.5 * report["cost_before"]["macs"]
    assert report["verification"]["passed"]
    assert report["settings"]["budget"]["target-flops"] == 0.5 and report["settings"]["scoring"]["criterion"] == "refit-error"
    assert report["model"]["calibration"]["held_out"] == 16 and report["model"]["calibration"]["fit"] == 64
    assert report["comparison_reconstructed"]["output_error"] < report["comparison_pruned"]["output_error"]
    assert {"capture", "reconstruct"} <= set(report["timings"])
    for words in ("MACs", "params", "accuracy", "agreement", "proof"):
        assert words in out
    pruned = load_model(tmp_path / "run" / "model.pruned.onnx")
    feeds = random_inputs(pruned, batch=2)
    assert run_model(pruned, feeds)["output"].shape == (2, 10)


def test_plan_replays_and_runs_are_deterministic(capsys, model, calib, tmp_path):
    for name in ("a", "b"):
        assert optimize(capsys, model, calib, tmp_path / name, "--target-flops", 0.6, "--no-reconstruct")[0] == 0
    plan_a, plan_b = ((tmp_path / n / "plan.json").read_text() for n in ("a", "b"))
    assert plan_a == plan_b
    code, _, err = run(capsys, "prune", model, "--plan", tmp_path / "a" / "plan.json", "-o", tmp_path / "replay.onnx")
    assert code == 0, err
    feeds = random_inputs(load_model(model), batch=3, seed=2)
    replayed = run_model(load_model(tmp_path / "replay.onnx"), feeds)["output"]
    np.testing.assert_allclose(replayed, run_model(load_model(tmp_path / "a" / "model.pruned.onnx"), feeds)["output"],
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("strategy,criterion", [("uniform", "l1"), ("mi", "aura-mi"), ("mi", "entropy"), ("mi", "random"),
                                                ("mi", "hist-mi"), ("mi", "activation"), ("mi", "aura-mi-label")])
def test_strategies_and_criteria(capsys, model, calib, tmp_path, strategy, criterion):
    code, _, err = optimize(capsys, model, calib, tmp_path, "--target-flops", 0.5, "--strategy", strategy,
                            "--criterion", criterion, "--no-reconstruct")
    assert code == 0, err
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert plan["strategy"] == strategy and plan["criterion"] == criterion


def test_unreachable_budget_exits_1_before_any_work(capsys, model, calib, tmp_path):
    code, out, err = optimize(capsys, model, calib, tmp_path / "run", "--target-flops", "0.01")
    assert code == 1 and "cannot be reached" in err and "best reachable" in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("arrays,words", [
    ({"input": np.zeros((20, 1, 32, 32), np.float32)}, "axis 2"),
    ({"input": np.zeros((20, 1, 28, 28), np.float64)}, "float64"),
    ({"image": np.zeros((20, 1, 28, 28), np.float32)}, "input"),
    ({"input": np.full((20, 1, 28, 28), np.nan, np.float32)}, "NaN"),
    ({"input": np.zeros((10, 1, 28, 28), np.float32)}, "needs at least 16"),
    ({"input": np.zeros((20, 1, 28, 28), np.float32), "labels": np.zeros(19, np.int64)}, "labels"),
])
def test_bad_calibration_exits_2_and_writes_nothing(capsys, model, tmp_path, arrays, words):
    np.savez(tmp_path / "bad.npz", **arrays)
    code, _, err = optimize(capsys, model, tmp_path / "bad.npz", tmp_path / "run", "--target-flops", 0.5)
    assert code == 2 and words in err and err.count("\n") == 1, err
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


@pytest.mark.parametrize("option,value,words", [("--samples-per-image", 0, "samples-per-image must be positive"),
                                                ("--ridge", -1, "ridge must be zero or positive"),
                                                ("--max-acc-drop", -1, "max-acc-drop is the most accuracy"),
                                                ("--target-flops", "7", "--target-flops: the value must keep a fraction")])
def test_bad_least_squares_settings_exit_2(capsys, model, calib, tmp_path, option, value, words):
    code, _, err = optimize(capsys, model, calib, tmp_path / "run", "--target-flops", 0.5, option, value)
    assert code == 2 and words in err and err.count("\n") == 1, err
    assert not (tmp_path / "run").exists()


def test_a_toml_file_with_bad_values_names_the_file_and_the_key(capsys, model, calib, tmp_path):
    config = tmp_path / "bad.toml"
    for text, words in (('[budget]\nfloor = 2.0\n', "bad.toml: [budget] floor must be a fraction in [0, 1], got 2.0"),
                        ('[budget]\nfloor = "lots"\n', "bad.toml: budget.floor takes a number, got 'lots'"),
                        ('budget = 3\n', "bad.toml: 'budget' must be a table of settings, not a number"),
                        ('[selection]\nstrategy = "magic"\n', "bad.toml: selection.strategy is one of knapsack, mi, rl"),
                        ('[reconstruction]\nreconstruct = 3\n', "reconstruct takes true or false, got 3")):
        config.write_text(text)
        code, _, err = optimize(capsys, model, calib, tmp_path / "run", "--target-flops", 0.5, "--config", config)
        assert code == 2 and words in err and err.count("\n") == 1, (text, err)
        assert not (tmp_path / "run").exists()


def test_unknown_criterion_and_missing_budget(capsys, model, calib, tmp_path):
    code, _, err = optimize(capsys, model, calib, tmp_path / "a", "--target-flops", 0.5, "--criterion", "magic")
    assert code == 2 and "'magic' is not one of" in err and "aura-mi" in err
    code, _, err = run(capsys, "optimize", model, "--target-flops", 0.5, "--out", tmp_path / "b")
    assert code == 2 and "--calib is missing: calibration data is" in err and "calibration/README.md" in err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_settings_from_a_toml_file_and_flags_override(capsys, model, calib, tmp_path):
    config = tmp_path / "settings.toml"
    config.write_text('[optimize]\n[optimize.budget]\ntarget-flops = "2x"\nalign = 1\n[optimize.selection]\n'
                      'strategy = "uniform"\n[optimize.scoring]\ncriterion = "l1"\n[optimize.reconstruction]\n'
                      'reconstruct = false\n')
    code, _, err = optimize(capsys, model, calib, tmp_path / "run", "--config", config, "--criterion", "random")
    assert code == 0, err
    settings = json.loads((tmp_path / "run" / "report.json").read_text())["settings"]
    assert settings["selection"]["strategy"] == "uniform" and settings["scoring"]["criterion"] == "random"
    assert not settings["reconstruction"]["reconstruct"] and settings["budget"]["align"] == 1
    assert settings["budget"]["target-flops"] == 0.5
    config.write_text("[optimize]\nwhatever = 1\n")
    code, _, err = optimize(capsys, model, calib, tmp_path / "x", "--config", config)
    assert code == 2 and "unknown setting 'whatever'" in err and "budget" in err
    config.write_text("optimize = 5\n")
    code, _, err = optimize(capsys, model, calib, tmp_path / "y", "--config", config)
    assert code == 2 and "must be a table of settings" in err and err.count("\n") == 1, err


def test_score_writes_scores_alone(capsys, model, calib, tmp_path):
    code, out, err = run(capsys, "score", model, "--calib", calib, "-o", tmp_path / "scores.json", "--batch-size", 32)
    assert code == 0, err
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert scores["criterion"] == "refit-error" and len(scores["groups"]) >= 10
    assert all(len(g["scores"]) >= 16 for g in scores["groups"].values())


def test_settings_built_in_python_are_plain_data_under_the_long_option_names():
    settings = OptimizeSettings.from_dict({"model": "m.onnx", "calibration": {"calib": "c"},
                                           "budget": {"target-flops": "2x"}})
    data = json.loads(json.dumps(settings.to_dict()))
    assert data["scoring"]["criterion"] == "refit-error" and data["budget"]["target-flops"] == 0.5
    assert data["calibration"]["calib"] == "c" and OptimizeSettings.from_dict(data) == settings


def test_accuracy_guard():
    settings = OptimizeSettings.from_dict({"budget": {"target-flops": 0.5, "max-acc-drop": 1.0}})
    fine = Comparison(images=100, agreement=0.99, output_error=0.1, accuracy_original=0.90, accuracy_pruned=0.895)
    _guard_accuracy(settings, fine.to_dict())
    from edgeprune.errors import BudgetError

    with pytest.raises(BudgetError, match="accuracy fell by 2.00 points"):
        _guard_accuracy(settings, Comparison(100, 0.9, 0.2, 0.90, 0.88).to_dict())
