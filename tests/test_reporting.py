"""report.json under its schema, report.md, the self-contained report.html, `edgeprune report DIR`, and the
short terminal summary of optimize. Real runs: the bundled ResNet-20 and the Fashion-MNIST images."""

from __future__ import annotations

import base64
import copy
import json
import re
import shutil
from pathlib import Path

import pytest
from cli_runner import run

from edgeprune.reporting.schema import SCHEMA_VERSION, errors, schema

REFERENCE = Path("edgeprune/reference/resnet20_fmnist.onnx").resolve()
IMAGES = Path("calibration/fashion-mnist").resolve()
FAST = ("--calib", IMAGES, "--preset", "fashion-mnist", "--limit", 64, "--latency-rounds", 2, "--device", "jetson")
RUN_FILES = ["model.pruned.onnx", "plan.json", "report.html", "report.json", "report.md"]


def optimize(capsys, out: Path, *extra) -> tuple[int, str, str]:
    return run(capsys, "optimize", REFERENCE, *FAST, "--out", out, *extra)


def run_quietly(*args) -> tuple[int, str, str]:
    """The command line in-process, its output captured without capsys (which module fixtures cannot use)."""
    import contextlib
    import io

    from edgeprune.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> dict[str, tuple[Path, str]]:
    """Three real runs, each once: an explicit budget, the goal mode, and a budget with recovery by
    distillation (8 optimiser steps). Each run's folder and what it printed."""
    base = tmp_path_factory.mktemp("reports")
    done = {}
    for name, extra in (
        ("budget", ("--target-flops", "2x")),
        ("goal", ()),
        ("recovery", ("--target-flops", "2x", "--finetune-epochs", 2, "--finetune-set", "batch-size=16")),
    ):
        code, stdout, err = run_quietly("optimize", REFERENCE, *FAST, "--out", base / name, *extra)
        assert code == 0, err
        done[name] = (base / name, stdout)
    return done


def report(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())


def test_every_report_written_conforms_to_the_schema(written):
    def no_constants(name):
        raise AssertionError(f"{name} is not JSON")

    for name, (out, _) in written.items():
        data = report(out)
        assert errors(data) == [], name
        json.loads((out / "report.json").read_text(), parse_constant=no_constants)  # strict: no NaN
        assert data["schema_version"] == SCHEMA_VERSION and data["edgeprune_version"]
        assert sorted(p.name for p in out.iterdir()) == RUN_FILES
    budget, goal, recovery = (report(written[n][0]) for n in ("budget", "goal", "recovery"))
    assert budget["goal"] is None and goal["goal"]["candidates"] and recovery["comparison_recovered"] is not None
    rows = budget["layer_table"]
    assert len(rows) == len(budget["latency"]["layers"]) and sum(r["share"] for r in rows) == pytest.approx(1.0)
    assert any(r["refit_error_after"] is not None and r["refit_error_after"] < r["refit_error_before"] for r in rows)
    assert all(r["recovery_change"] is None for r in rows)
    moved = [r["recovery_change"] for r in recovery["layer_table"] if r["recovery_change"] is not None]
    assert len(moved) == len(recovery["layer_table"])
    if recovery["recovery"]["final"]["best_step"] == 0:  # the weights kept are those before training
        assert max(moved) == 0
    else:
        assert max(moved) > 0
    model = budget["model"]
    assert model["inputs"][0]["name"] == "input" and model["outputs"][0]["shape"][-1] == 10 and model["opset"] > 0
    plan = budget["plan"]
    assert plan["pruned_groups"] > 0 and plan["channels_after"] < plan["channels_before"]
    assert any("held-out split has 13 images" in w for w in budget["warnings"])
    assert {"cpu", "platform", "torch"} <= set(budget["environment"])


def test_reports_also_pass_the_jsonschema_package(written):
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator.check_schema(schema())
    for out, _ in written.values():
        jsonschema.Draft202012Validator(schema()).validate(report(out))


def test_the_checker_finds_what_is_broken(written):
    good = report(written["budget"][0])
    cases = {
        "missing key 'plan'": lambda d: d.pop("plan"),
        "$.cost_after.macs: expected integer, got string": lambda d: d["cost_after"].update(macs="many"),
        "unexpected key 'extra'": lambda d: d.update(extra=1),
        "$.layer_table[0].share: 2 is above the maximum 1": lambda d: d["layer_table"][0].update(share=2),
        "$.schema_version: expected 1, got 2": lambda d: d.update(schema_version=2),
        "$.latency.layers[0].source: 'guess' is not one of": lambda d: d["latency"]["layers"][0].update(source="guess"),
    }
    for expected, breaks in cases.items():
        data = copy.deepcopy(good)
        breaks(data)
        found = errors(data)
        assert any(expected in problem for problem in found), (expected, found)
    with pytest.raises(ValueError, match="does not implement"):
        errors({}, root={"type": "object", "patternProperties": {}})


def test_the_headline_says_gained_when_the_pruned_model_does_better(written):
    from edgeprune.reporting.report import final_comparison
    from edgeprune.reporting.text import headline

    data = report(written["budget"][0])
    final = final_comparison(data)
    final["drop_points"] = -1.0
    assert "1.00 points of held-out accuracy gained" in headline(data) and "lost" not in headline(data)
    final["drop_points"] = 0.5
    assert "0.50 points of held-out accuracy lost" in headline(data)


def test_report_md_has_the_headline_the_tables_and_the_warnings(written):
    out, _ = written["budget"]
    text = (out / "report.md").read_text()
    data = report(out)
    first = text.splitlines()[2]
    assert first.startswith("**") and "x predicted on jetson-orin-nano" in first and "measured on this machine" in first
    assert "points of held-out accuracy lost" in first and "MACs -" in first and "params -" in first
    assert re.search(r"\| MACs \| [\d,]+ -> [\d,]+ \(\d+\.\d%\) \|", text)
    for row in ("| held-out accuracy | ", "| predicted latency on jetson-orin-nano |", "| proof | passed: True"):
        assert row in text
    layer_rows = [line for line in text.splitlines() if line.startswith("| blocks.") or line.startswith("| stem.")]
    assert len(layer_rows) + 1 == len(data["layer_table"])  # and the head's Gemm
    assert "#### Warnings" in text and "held-out split has 13 images" in text
    goal_text = (written["goal"][0] / "report.md").read_text()
    assert "#### Goal: the fastest plan within 1 points" in goal_text and "(chosen)" in goal_text


def images(html: str) -> list[bytes]:
    sources = re.findall(r'<img [^>]*src="([^"]+)"', html)
    assert all(s.startswith("data:image/png;base64,") for s in sources), "every image is inlined"
    return [base64.b64decode(s.split(",", 1)[1], validate=True) for s in sources]


@pytest.mark.parametrize("name,count", [("budget", 4), ("goal", 5), ("recovery", 5)])
def test_report_html_is_one_self_contained_file(written, name, count):
    html = (written[name][0] / "report.html").read_text()
    assert not re.search(r"https?://", html), "nothing is fetched from the network"
    assert "<link" not in html and "<script" not in html
    pngs = images(html)
    assert len(pngs) == count and all(png.startswith(b"\x89PNG\r\n\x1a\n") for png in pngs)
    assert html.count("<table>") >= count, "every figure has a table beside it"


def test_report_dir_rerenders_the_same_files_and_adds_an_analyze_curve(capsys, written, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(written["budget"][0], folder)
    originals = {name: (folder / name).read_bytes() for name in ("report.md", "report.html")}
    for name in originals:
        (folder / name).unlink()
    code, out, err = run(capsys, "report", folder)
    assert code == 0, err
    assert out.startswith("wrote ") and all((folder / n).read_bytes() == b for n, b in originals.items())
    code, _, err = run(capsys, "analyze", REFERENCE, *FAST[:4], "--limit", 16, "--out", folder)
    assert code == 0, err
    assert run(capsys, "report", folder)[0] == 0
    html = (folder / "report.html").read_text()
    assert "Superization curve" in html and len(images(html)) == 5


@pytest.mark.parametrize(
    "damage,words",
    [
        (lambda d: d.update(schema_version=2), "is report schema version 2 (edgeprune"),
        (lambda d: d.pop("schema_version"), "has no schema_version"),
        (lambda d: d.pop("layer_table"), "is damaged: $: missing key 'layer_table'"),
        (lambda d: d.pop("settings"), "is not an edgeprune report.json"),
        (lambda d: d.update(settings=[]), "is damaged: $.settings: expected object, got array"),
    ],
)
def test_report_dir_refuses_other_versions_and_damaged_reports(capsys, written, tmp_path, damage, words):
    folder = tmp_path / "bad"
    shutil.copytree(written["budget"][0], folder)
    data = report(folder)
    damage(data)
    (folder / "report.json").write_text(json.dumps(data))
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    code, _, err = run(capsys, "report", folder)
    assert code == 2 and words in err and err.count("\n") == 1, err
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before, "nothing was written"
    if "version 2" in words:
        assert "this edgeprune reads version 1" in err and "edgeprune optimize --config" in err


def test_report_dir_refuses_a_truncated_file_and_a_missing_folder(capsys, written, tmp_path):
    folder = tmp_path / "cut"
    shutil.copytree(written["budget"][0], folder)
    text = (folder / "report.json").read_text()
    (folder / "report.json").write_text(text[: len(text) // 2])
    code, _, err = run(capsys, "report", folder)
    assert code == 2 and "is damaged: not valid JSON" in err and err.count("\n") == 1
    code, _, err = run(capsys, "report", tmp_path / "nowhere")
    assert code == 2 and "is not a folder" in err and not (tmp_path / "nowhere").exists()
    (folder / "report.json").unlink()
    code, _, err = run(capsys, "report", folder)
    assert code == 2 and "report.json not found" in err


def test_the_terminal_summary_is_a_headline_and_the_layers_are_behind_v(capsys, written, tmp_path):
    _, stdout = written["budget"]
    lines = stdout.splitlines()
    assert lines[0].startswith("wrote ") and lines[0].endswith("model.pruned.onnx, plan.json, report.json, report.md, report.html")
    assert "x predicted on jetson-orin-nano" in lines[1] and len(lines) <= 14
    assert "/body/" not in stdout and "report.html: the figures" in stdout
    code, verbose, err = run(capsys, "-v", "optimize", REFERENCE, *FAST, "--target-flops", "2x", "--out", tmp_path / "v")
    assert code == 0, err
    assert "groups pruned:" in verbose and "MACs cut" in verbose and len(verbose.splitlines()) > 30
    code, summary, err = optimize(capsys, tmp_path / "j", "--target-flops", "2x", "--json")
    assert code == 0, err
    paths = json.loads(summary)
    assert Path(paths["report_md"]).is_file() and Path(paths["report_html"]).is_file()
