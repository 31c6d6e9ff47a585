"""docs/ci.md's workflow: its Optimize step is docs/ci/optimize.sh, and that script gates and summarises a run."""

from __future__ import annotations

import os
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "docs" / "ci" / "optimize.sh"
DOC = ROOT / "docs" / "ci.md"
MODEL = ROOT / "edgeprune" / "reference" / "resnet20_fmnist.onnx"
CALIB = ROOT / "calibration" / "fashion-mnist"
# An explicit budget on a subset keeps the run to seconds; the workflow's own flags ask for the accuracy goal.
FAST_FLAGS = "--preset fashion-mnist --device jetson-orin-nano --target-flops 0.5 --limit 64"


def run_step(tmp_path: Path, flags: str, model: Path = MODEL) -> tuple[subprocess.CompletedProcess, Path, Path]:
    """Run the script as the Optimize step does: Actions' bash flags, its environment, a summary file.

    ``edgeprune`` and ``python`` on the PATH are this interpreter, with this checkout importable.
    """
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, command in (("edgeprune", f'"{sys.executable}" -m edgeprune'), ("python", f'"{sys.executable}"')):
        (bin_dir / name).write_text(f'#!/bin/sh\nexec {command} "$@"\n')
        (bin_dir / name).chmod(0o755)
    summary, out = tmp_path / "summary.md", tmp_path / "out"
    summary.write_text("earlier step\n")  # Actions appends every step's summary to one file
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
        "MODEL": str(model), "CALIB": str(CALIB), "OUT": f"{out}/", "OPTIMIZE_FLAGS": flags,
        "GITHUB_STEP_SUMMARY": str(summary),
    }
    result = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(SCRIPT)], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=300)
    return result, summary, out


def test_a_met_budget_passes_and_summarises_the_report(tmp_path: Path) -> None:
    result, summary, out = run_step(tmp_path, FAST_FLAGS)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["model.pruned.onnx", "plan.json", "report.html", "report.json", "report.md"]
    assert "wrote" in result.stdout  # edgeprune's own output still reaches the job log
    text = summary.read_text()
    assert text.startswith("earlier step\n## edgeprune optimize ")
    assert ": exit 0 (success)" in text
    assert re.search(r"\| MACs \| [\d,]+ -> [\d,]+ \(\d+\.\d%\) \|", text), text
    for row in ("| parameters |", "| held-out accuracy | ", "| predicted latency on jetson-orin-nano |",
                "| proof | passed: True, max relative difference"):
        assert row in text, text


def test_the_default_goal_mode_passes_and_prints_its_summary_object(tmp_path: Path) -> None:
    flags = "--preset fashion-mnist --device jetson-orin-nano --max-acc-drop 1 --json --limit 120 --latency-rounds 0"
    result, summary, out = run_step(tmp_path, flags)
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["measure"] == "accuracy" and printed["drop_points"] <= 1.0 and printed["predicted_speedup"] > 1
    assert "no budget given" in result.stderr and ": exit 0 (success)" in summary.read_text()
    assert (out / "report.json").exists()


def test_an_unmet_goal_fails_the_step_with_the_reason(tmp_path: Path) -> None:
    result, summary, out = run_step(tmp_path, "--preset fashion-mnist --target-flops 0.01")
    assert result.returncode == 1
    text = summary.read_text()
    assert ": exit 1 (a goal, budget or guard was not met" in text
    assert "cannot be reached" in text and "No report was written" in text
    assert not out.exists() or not any(out.iterdir())


def test_bad_input_fails_the_step_with_exit_2(tmp_path: Path) -> None:
    result, summary, _ = run_step(tmp_path, FAST_FLAGS, model=tmp_path / "missing.onnx")
    assert result.returncode == 2
    text = summary.read_text()
    assert ": exit 2 (bad usage or input" in text
    assert re.search(r"^edgeprune: error: .*not found.*missing\.onnx", text, flags=re.M), text


def _workflow(doc: str) -> str:
    blocks = re.findall(r"^```yaml\n(.*?)^```$", doc, flags=re.S | re.M)
    assert len(blocks) == 1, "docs/ci.md holds one workflow"
    return blocks[0]


def _optimize_run_block(workflow: str) -> str:
    """The literal `run: |` block of the step named Optimize, with the YAML indentation removed."""
    lines = workflow.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "- name: Optimize")
    run = next(i for i in range(start, len(lines)) if lines[i].strip() == "run: |")
    outer = len(lines[run]) - len(lines[run].lstrip())
    body = []
    for line in lines[run + 1:]:
        if line.strip() and len(line) - len(line.lstrip()) <= outer:
            break
        body.append(line)
    indent = min(len(line) - len(line.lstrip()) for line in body if line.strip())
    while body and not body[-1].strip():
        body.pop()
    return "".join(f"{line[indent:]}\n" if line.strip() else "\n" for line in body)


def test_the_workflow_runs_the_script_verbatim() -> None:
    assert _optimize_run_block(_workflow(DOC.read_text())) == SCRIPT.read_text()


def test_the_workflow_is_valid_yaml_with_the_script_as_its_step() -> None:
    yaml = pytest.importorskip("yaml")
    workflow = yaml.safe_load(_workflow(DOC.read_text()))
    steps = {step.get("name", step.get("uses")): step for step in workflow["jobs"]["optimize"]["steps"]}
    assert steps["Optimize"]["run"] == SCRIPT.read_text()
    assert steps["Optimize"]["shell"] == "bash"
    assert steps["Upload the optimized model"]["with"]["path"] == "out/"
    assert steps["Optimize"]["env"]["OUT"] == "out/"


def test_the_doc_lists_every_exit_code() -> None:
    doc = DOC.read_text()
    for code in ("| 0 |", "| 1 |", "| 2 |", "| 130 |"):
        assert code in doc
