"""`optimize` as a pipeline user runs it: the goal mode, replay from report.json, --dry-run, --save-config,
the default output folder, --json, and their bad inputs. Real data: the bundled reference model and images."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_runner import run

REFERENCE = Path("edgeprune/reference/resnet20_fmnist.onnx").resolve()
IMAGES = Path("calibration/fashion-mnist").resolve()
DATA = ("--calib", IMAGES, "--preset", "fashion-mnist")


def test_the_goal_mode_writes_the_fastest_candidate_within_the_drop(capsys, tmp_path):
    out = tmp_path / "goal"
    code, stdout, err = run(capsys, "optimize", REFERENCE, *DATA, "--device", "jetson", "--limit", 200,
                            "--latency-rounds", 0, "--out", out, "--json")
    assert code == 0, err
    assert "no budget given: the fastest plan on jetson within 1 points" in err and err.count("\n") == 1
    summary = json.loads(stdout)
    report = json.loads((out / "report.json").read_text())
    goal = report["goal"]
    chosen = goal["candidates"][goal["chosen"]]
    assert goal["measure"] == "accuracy" and goal["max_drop_points"] == 1.0 and chosen["met"]
    assert report["comparison_reconstructed"]["drop_points"] == pytest.approx(chosen["drop_points"], abs=1e-3)
    assert report["comparison_reconstructed"]["drop_points"] <= 1.0
    # the fastest that met the goal, among every candidate judged
    assert chosen["predicted_speedup"] == max(c["predicted_speedup"] for c in goal["candidates"] if c["met"])
    assert len(goal["candidates"]) >= 2 and chosen["predicted_speedup"] > 1.0
    assert summary["drop_points"] == report["comparison_reconstructed"]["drop_points"]
    assert summary["predicted_speedup"] == pytest.approx(report["latency"]["predicted_speedup"])
    assert report["settings"]["budget"]["target-flops"] is None and report["budget"]["speedup"] > 1.0


def test_a_goal_without_room_or_without_a_measure_is_refused_and_writes_nothing(capsys, tmp_path):
    out = tmp_path / "never"
    code, _, err = run(capsys, "optimize", REFERENCE, *DATA, "--limit", 64, "--latency-rounds", 0, "--floor", 1.0,
                       "--out", out)
    assert code == 1 and "no plan is predicted faster on host" in err, err
    code, _, err = run(capsys, "optimize", REFERENCE, *DATA, "--limit", 64, "--latency-rounds", 0, "--task", "regress",
                       "--out", out)
    assert code == 2 and "the goal mode needs a held-out measure" in err, err
    assert not out.exists() or not any(out.iterdir())


def test_a_run_replays_from_its_report_to_the_same_plan(capsys, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    code, _, err = run(capsys, "optimize", REFERENCE, *DATA, "--limit", 96, "--latency-rounds", 0,
                       "--target-flops", "3x", "--criterion", "l1", "--align", 4, "--seed", 5, "--out", first)
    assert code == 0, err
    code, _, err = run(capsys, "optimize", "--config", first / "report.json", "--out", second)
    assert code == 0, err
    assert (first / "plan.json").read_bytes() == (second / "plan.json").read_bytes()
    settings = json.loads((second / "report.json").read_text())["settings"]
    assert settings["seed"] == 5 and settings["budget"]["align"] == 4 and settings["output"]["out"] == str(second)
    other = tmp_path / "other.onnx"
    other.write_bytes(Path("edgeprune/reference/vgg_fmnist.onnx").read_bytes())
    code, _, err = run(capsys, "optimize", other, "--config", first / "report.json", "--out", tmp_path / "third")
    assert code == 2 and "was written for another model" in err and not (tmp_path / "third").exists()


def test_save_config_writes_the_tree_the_run_would_use_and_it_replays(capsys, tmp_path):
    config = tmp_path / "settings.toml"
    code, _, err = run(capsys, "optimize", REFERENCE, *DATA, "--target-speedup", "1.1x", "--device", "jetson",
                       "--rl-set", "warmup=5", "--finetune-set", "temperature=2", "--save-config", config)
    assert code == 0, err
    text = config.read_text()
    assert 'target-speedup = 1.1' in text and 'device = "jetson"' in text and "warmup = 5" in text
    from edgeprune.settings import OptimizeSettings

    settings = OptimizeSettings.from_file(config)
    assert settings.selection.rl.agent.warmup == 5 and settings.recovery.temperature == 2.0
    assert settings.calibration.preset == "fashion-mnist" and settings.model == REFERENCE
    code, _, err = run(capsys, "optimize", REFERENCE, "--save-config", tmp_path / "missing" / "s.toml")
    assert code == 2 and "missing" in err and not (tmp_path / "missing").exists()


def test_dry_run_prints_the_search_profile_and_exits_by_reachability(capsys, tmp_path):
    code, out, err = run(capsys, "optimize", REFERENCE, "--device", "jetson", "--target-flops", "2x", "--dry-run")
    assert code == 0, err
    assert "12 prunable groups, 1 frozen" in out and "reachable" in out and "ms predicted" in out
    code, out, err = run(capsys, "optimize", REFERENCE, "--device", "jetson", "--target-speedup", "3x", "--dry-run",
                         "--json")
    profile = json.loads(out)
    assert code == 1 and not profile["reachable"] and profile["max_speedup"] < 3
    assert 0 < profile["min_macs_fraction"] < 0.5 and "at most 1.1" in profile["reason"]
    code, out, err = run(capsys, "optimize", REFERENCE, "--target-flops", "20x", "--dry-run")
    assert code == 1 and "NOT reachable" in out and "cannot be reached" in out
    code, _, err = run(capsys, "optimize", REFERENCE, "--device", "nowhere", "--dry-run")
    assert code == 2 and "unknown device 'nowhere'" in err and err.count("\n") == 1
    assert not any(tmp_path.iterdir())


def test_the_default_output_folder_and_a_non_empty_one(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ("optimize", REFERENCE, *DATA, "--limit", 64, "--latency-rounds", 0, "--target-flops", "0.7")
    code, _, err = run(capsys, *args)
    assert code == 0, err
    assert "writing to resnet20_fmnist.edgeprune/" in err and (tmp_path / "resnet20_fmnist.edgeprune" / "plan.json").exists()
    stamp = (tmp_path / "resnet20_fmnist.edgeprune" / "report.json").stat().st_mtime_ns
    code, _, err = run(capsys, *args)
    assert code == 2 and "is not empty" in err and "--force" in err
    assert (tmp_path / "resnet20_fmnist.edgeprune" / "report.json").stat().st_mtime_ns == stamp
    code, _, err = run(capsys, *args, "--force")
    assert code == 0, err


def test_missing_calibration_and_model_say_what_to_do(capsys, tmp_path):
    code, _, err = run(capsys, "optimize", REFERENCE, "--device", "jetson")
    assert code == 2 and "--calib is missing" in err and "calibration/README.md" in err
    code, _, err = run(capsys, "optimize", "--calib", IMAGES)
    assert code == 2 and "give the ONNX model to optimize" in err
    assert not any(tmp_path.iterdir())


def test_ctrl_c_during_optimize_exits_130_and_writes_nothing(capsys, tmp_path, monkeypatch):
    import edgeprune.candidate

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(edgeprune.candidate, "cut", interrupted)
    out = tmp_path / "run"
    code, _, err = run(capsys, "optimize", REFERENCE, *DATA, "--limit", 64, "--target-flops", "2x", "--out", out)
    assert code == 130 and "interrupted; nothing was written" in err and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())
