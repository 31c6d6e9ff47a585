"""`edgeprune sweep`: several MAC targets from one capture, the Pareto front, the pick, and bad input.
Real runs: the bundled ResNet-20 and the Fashion-MNIST images."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_runner import run

from edgeprune.reporting.schema import errors

REFERENCE = Path("edgeprune/reference/resnet20_fmnist.onnx").resolve()
IMAGES = Path("calibration/fashion-mnist").resolve()
FAST = ("--calib", IMAGES, "--preset", "fashion-mnist", "--limit", 64, "--latency-rounds", 2, "--device", "jetson")


def sweep(capsys, out: Path, *extra) -> tuple[int, str, str]:
    return run(capsys, "sweep", REFERENCE, *FAST, "--out", out, *extra)


@pytest.fixture
def counted(monkeypatch) -> dict[str, int]:
    """Calls of the functions that run the original model over the calibration data to score it."""
    import edgeprune.capture as capture
    import edgeprune.capture.grams as grams
    import edgeprune.scoring.measure as measure

    calls = {"capture_grams": 0, "capture_stats": 0, "measure_and_score": 0}

    def counting(module, name):
        original = getattr(module, name)

        def wrapper(*args, **kwargs):
            calls[name] += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(module, name, wrapper)

    counting(grams, "capture_grams")
    counting(capture, "capture_stats")
    counting(measure, "measure_and_score")
    return calls


def test_a_sweep_captures_once_for_every_point(capsys, tmp_path, counted):
    out = tmp_path / "sweep"
    code, stdout, err = sweep(capsys, out, "--targets", "0.7,0.5,0.3")
    assert code == 0, err
    assert counted == {"capture_grams": 1, "capture_stats": 0, "measure_and_score": 1}
    assert sorted(p.name for p in out.iterdir()) == ["sweep.json", "sweep.md", "sweep.png"]
    document = json.loads((out / "sweep.json").read_text())
    assert errors(document, "sweep_file") == []
    section = document["sweep"]
    points = section["points"]
    assert [p["target"] for p in points] == [0.7, 0.5, 0.3] and section["pick"] is None
    assert all(p["macs_fraction"] <= p["target"] + 1e-9 for p in points)
    speedups = [p["predicted_speedup"] for p in points]
    assert speedups == sorted(speedups) and speedups[0] > 1.0, "more cut, faster on the device"
    assert all(p["measured_speedup"] > 0 and p["value"] is not None for p in points)
    assert any(p["pareto"] for p in points) and points[-1]["pareto"], "the fastest point is always on the front"
    assert (out / "sweep.png").read_bytes().startswith(b"\x89PNG")
    assert err.count("sweep: ") == 3 and "one capture and scoring" in stdout
    text = (out / "sweep.md").read_text()
    assert "3 points (fractions of the MACs kept) from one capture" in text and text.count("\n| 0.") == 3


def test_the_pick_writes_the_fastest_point_within_the_drop_and_replays(capsys, tmp_path):
    out = tmp_path / "pick"
    code, stdout, err = sweep(capsys, out, "--targets", "0.6,0.4", "--pick-max-drop", 100)
    assert code == 0, err
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(["model.pruned.onnx", "plan.json", "report.json", "report.md", "report.html",
                            "sweep.json", "sweep.md", "sweep.png"])
    report = json.loads((out / "report.json").read_text())
    assert errors(report) == []
    assert report["sweep"]["pick"] == {"max_drop_points": 100.0, "chosen": 1}  # the faster, within any drop
    assert report["settings"]["budget"]["target-flops"] == 0.4 and "picked 0.4 of the MACs" in stdout
    assert "#### Sweep (2 points, one capture)" in (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    assert "<h2>Sweep</h2>" in html and html.count('src="data:image/png;base64,') == 5  # the sweep's figure too
    code, _, err = run(capsys, "optimize", "--config", out / "report.json", "--out", tmp_path / "replay")
    assert code == 0, err
    assert (tmp_path / "replay" / "plan.json").read_text() == (out / "plan.json").read_text()


def test_a_pick_no_point_meets_exits_1_naming_the_best_and_writes_nothing(capsys, tmp_path):
    out = tmp_path / "none"
    code, _, err = sweep(capsys, out, "--targets", "0.5,0.3", "--no-reconstruct", "--pick-max-drop", 0)
    last = err.splitlines()[-1]  # after a progress line per point
    assert code == 1 and err.count("error:") == 1 and last.startswith("edgeprune: error: "), err
    assert "no sweep point is within --pick-max-drop 0: the best, 0.5 of the MACs" in last and "nothing was written" in last
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize(
    "targets,words",
    [
        ("0.8,1.2", "'1.2' is out of range"),
        ("0.8,0", "'0' is out of range"),
        ("0.8,abc", "'abc' is not a fraction of the MACs to keep (0.5) nor a reduction (2x)"),
        ("0.8,1x", "'1x' is out of range"),
        ("0.4,0.8", "from the lightest cut to the heaviest (descending): give 0.8,0.4"),
        ("0.5,2x", "0.5 is given twice"),
    ],
)
def test_bad_targets_are_one_line_and_write_nothing(capsys, tmp_path, targets, words):
    code, _, err = sweep(capsys, tmp_path / "bad", "--targets", targets)
    assert code == 2 and words in err and err.count("\n") == 1, err
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize(
    "extra,code,words",
    [
        (("--target-flops", "0.5"), 2, "sweep takes its budgets from --targets"),
        (("--max-acc-drop", "1"), 2, "leave out --max-acc-drop"),
        (("--finetune-steps", "2"), 2, "use --finetune-steps 1 with sweep"),
        (("--targets", "0.5,0.01"), 1, "--targets 0.01: the budget"),
    ],
)
def test_what_a_sweep_cannot_take(capsys, tmp_path, extra, code, words):
    got, _, err = sweep(capsys, tmp_path / "bad", *extra)
    assert got == code and words in err and err.count("\n") == 1, err
    assert not (tmp_path / "bad").exists() or not any((tmp_path / "bad").iterdir())
