"""Distillation: `edgeprune finetune`, `optimize --finetune-*`, the kept-index map, and their bad inputs."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from cli_runner import run
from edgeprune.analysis import analyze
from edgeprune.calibration import load_calibration
from edgeprune.graph import load_model
from edgeprune.surgery import PruningPlan, apply_plan, simple_plan
from edgeprune.train import DistillSettings, GraphModule, distill
from edgeprune.train.correspond import feature_pairs
from edgeprune.train.data import augment

REFERENCE = Path("edgeprune/reference")
TEACHER = REFERENCE / "vgg_fmnist.onnx"
SAMPLE = Path("calibration/fashion-mnist/sample.npz")


@pytest.fixture(scope="module")
def pruned(tmp_path_factory):
    """The VGG reference model with half of every group's channels, and its plan."""
    folder = tmp_path_factory.mktemp("pruned")
    model = load_model(TEACHER)
    analysis = analyze(model)
    plan = simple_plan(analysis, 0.5, random=True, seed=3)
    apply_plan(model, analysis, plan).save(folder / "student.onnx")
    plan.save(folder / "plan.json")
    return folder / "student.onnx", folder / "plan.json"


def _finetune(capsys, student, out, *extra):
    return run(capsys, "finetune", student, "--teacher", TEACHER, "--train-data", SAMPLE, "-o", out,
               "--steps", 3, "--batch-size", 32, *extra)


def test_finetune_writes_the_same_graph_with_new_weights_and_repeats_for_a_seed(capsys, tmp_path, pruned):
    student, plan = pruned
    code, out, err = _finetune(capsys, student, tmp_path / "a.onnx", "--report", tmp_path / "a.json")
    assert code == 0, err
    assert "held-out accuracy" in out
    before, after = onnx.load(student), onnx.load(tmp_path / "a.onnx")
    assert [n.op_type for n in after.graph.node] == [n.op_type for n in load_model(student).proto.graph.node]
    changed = [i.name for i in after.graph.initializer
               if not np.array_equal(numpy_helper.to_array(i), _initializer(before, i.name))]
    report = json.loads((tmp_path / "a.json").read_text())
    assert report["steps"] == 3 and report["labels_used"] and report["measure"] == "accuracy"
    assert report["best"] >= report["before"]  # the weights kept are never worse on the held-out split
    if report["best_step"] > 0:
        assert changed, "training changed no weight"
    assert _finetune(capsys, student, tmp_path / "b.onnx")[0] == 0
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()


def _initializer(proto, name):
    for init in proto.graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    return None


def test_distillation_lowers_the_training_loss_without_labels():
    teacher = load_model(TEACHER)
    analysis = analyze(teacher)
    student = apply_plan(teacher, analysis, simple_plan(analysis, 0.5, random=True, seed=1))
    data = load_calibration(SAMPLE, teacher)
    train, held = data.split(0.2, seed=0)
    unlabelled, held = replace(train, labels=None), replace(held, labels=None)
    _, report = distill(student, teacher, unlabelled, held, DistillSettings(epochs=3, batch_size=40, lr=0.01))
    assert report.measure == "agreement" and not report.labels_used
    first, last = report.loss_curve[0][1], report.loss_curve[-1][1]
    assert last < first


def test_ctrl_c_keeps_the_best_weights_and_writes_a_complete_model(tmp_path, pruned):
    from edgeprune.api import finetune_model

    student, _ = pruned

    def interrupt(step, total, loss, measure):
        if step == 2:
            raise KeyboardInterrupt

    report = finetune_model(student, TEACHER, SAMPLE, tmp_path / "out.onnx", DistillSettings(steps=10, batch_size=32),
                            progress=interrupt)
    assert report.stopped == "interrupted" and report.steps == 2
    onnx.checker.check_model(onnx.load(tmp_path / "out.onnx"), full_check=True)


def test_feature_pairs_map_student_channels_to_the_teachers_kept_channels():
    teacher = load_model(TEACHER)
    analysis = analyze(teacher)
    group = analysis.prunable_groups[0]
    plan = PruningPlan(analysis.model_sha256, {group.id: tuple(range(1, group.channels, 2))})
    student = apply_plan(teacher, analysis, plan)
    pairs = feature_pairs(analysis, plan, student)
    assert len(pairs) == 1
    x = torch.from_numpy(np.load(SAMPLE)["input"][:4])
    with torch.no_grad():
        _, t_maps = GraphModule(teacher)(x, extra_outputs=[pairs[0].teacher])
        _, s_maps = GraphModule(student)(x, extra_outputs=[pairs[0].student])
    expected = t_maps[pairs[0].teacher].index_select(1, pairs[0].positions)
    torch.testing.assert_close(s_maps[pairs[0].student], expected, rtol=1e-5, atol=1e-5)


def test_augmentation_is_seeded_and_shifts_and_flips():
    x = torch.zeros(64, 1, 6, 6)
    x[:, :, 2, 2] = 1.0
    first = augment({"input": x}, 2, torch.Generator().manual_seed(0))["input"]
    again = augment({"input": x}, 2, torch.Generator().manual_seed(0))["input"]
    torch.testing.assert_close(first, again)
    assert torch.all(first.sum(dim=(1, 2, 3)) == 1.0)  # a bright pixel away from the border is moved, not lost
    positions = {tuple(torch.nonzero(image[0])[0].tolist()) for image in first}
    assert len(positions) > 5


def test_optimize_with_finetune_reports_recovery_and_a_kept_index_map(capsys, tmp_path):
    out = tmp_path / "run"
    code, stdout, err = run(capsys, "optimize", TEACHER, "--calib", SAMPLE, "--target-flops", "0.5", "--out", out,
                            "--finetune-steps", 2, "--finetune-set", "optimizer-steps=2", "--finetune-set", "batch_size=32",
                            "--finetune-epochs", 1)
    assert code == 0, err
    report = json.loads((out / "report.json").read_text())
    assert [s["step"] for s in report["recovery"]["steps"]] == [1, 2]
    assert report["comparison_recovered"]["images"] == 100
    assert "cut 2/2 distilled" in stdout
    plan = json.loads((out / "plan.json").read_text())
    assert plan["index_map"]["initializers"], "the plan names the kept indices of the pruned initializers"
    # the composed plan replays on the original with proof, and gives the shipped model's shapes
    model, analysis = load_model(TEACHER), analyze(load_model(TEACHER))
    replayed = apply_plan(model, analysis, PruningPlan.load(out / "plan.json"))
    shipped = load_model(out / "model.pruned.onnx")
    assert [tuple(i.dims) for i in replayed.proto.graph.initializer] == [tuple(i.dims) for i in shipped.proto.graph.initializer]
    _check_index_map(model, plan, replayed)


def _check_index_map(model, plan, pruned) -> None:
    """Slicing the original initializers by the map gives the pruned model's initializers."""
    original = {i.name: numpy_helper.to_array(i) for i in model.proto.graph.initializer}
    pruned_by_node = {n.name: n for n in pruned.proto.graph.node}
    pruned_values = {i.name: numpy_helper.to_array(i) for i in pruned.proto.graph.initializer}
    checked = 0
    for node in model.proto.graph.node:
        for position, name in enumerate(node.input):
            axes = plan["index_map"]["initializers"].get(name)
            if not axes or any(isinstance(v, dict) for v in axes.values()):
                continue
            values = original[name]
            for axis, kept in axes.items():
                values = np.take(values, kept, axis=int(axis))
            np.testing.assert_array_equal(values, pruned_values[pruned_by_node[node.name].input[position]])
            checked += 1
    assert checked > 0


@pytest.mark.parametrize("args,message", [
    (("--epochs", 0), "--epochs must be positive"),
    (("--time-budget", -1), "--time-budget must be a positive"),
    (("--feature-weight", 1), "--feature-weight needs --plan"),
    (("--lr", 0), "--lr must be positive"),
])
def test_bad_training_settings_are_refused(capsys, tmp_path, pruned, args, message):
    code, _, err = _finetune(capsys, pruned[0], tmp_path / "out.onnx", *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out.onnx").exists()


def test_a_teacher_that_is_not_the_original_is_refused(capsys, tmp_path, pruned):
    code, _, err = run(capsys, "finetune", pruned[0], "--teacher", REFERENCE / "resnet20_fmnist.onnx",
                       "--train-data", SAMPLE, "-o", tmp_path / "out.onnx")
    assert code == 2 and "not a pruning of the teacher" in err
    assert not (tmp_path / "out.onnx").exists()


def test_training_data_of_the_wrong_shape_or_name_is_refused(capsys, tmp_path, pruned):
    np.savez(tmp_path / "wrong.npz", input=np.zeros((8, 3, 32, 32), np.float32))
    np.savez(tmp_path / "named.npz", image=np.zeros((8, 1, 28, 28), np.float32))
    np.savez(tmp_path / "double.npz", input=np.zeros((8, 1, 28, 28), np.float64))
    for data in ("wrong.npz", "named.npz", "double.npz"):
        code, _, err = run(capsys, "finetune", pruned[0], "--teacher", TEACHER, "--train-data", tmp_path / data,
                           "-o", tmp_path / "out.onnx")
        assert code == 2 and "input" in err, err
    assert not (tmp_path / "out.onnx").exists()


def test_output_over_an_input_and_cuda_without_cuda_are_refused(capsys, tmp_path, pruned):
    student = tmp_path / "student.onnx"
    student.write_bytes(pruned[0].read_bytes())
    code, _, err = run(capsys, "finetune", student, "--teacher", TEACHER, "--train-data", SAMPLE, "-o", student)
    assert code == 2 and "input model" in err
    assert student.read_bytes() == pruned[0].read_bytes()
    if not torch.cuda.is_available():
        code, _, err = _finetune(capsys, pruned[0], tmp_path / "out.onnx", "--train-device", "cuda")
        assert code == 2 and "no CUDA device" in err
        assert not (tmp_path / "out.onnx").exists()


def test_finetune_without_torch_says_how_to_install_it(tmp_path, pruned):
    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text("import sys\nsys.modules['torch'] = None\n")
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    code = ("from edgeprune.cli import main; main(['finetune', %r, '--teacher', %r, '--train-data', %r, '-o', %r])"
            % (str(pruned[0]), str(TEACHER), str(SAMPLE), str(tmp_path / "out.onnx")))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=Path.cwd())
    assert done.returncode == 2 and "pip install" in done.stderr, done.stderr
    assert not (tmp_path / "out.onnx").exists()
    helped = subprocess.run([sys.executable, "-c", "from edgeprune.cli import main; main(['--help'])"],
                            capture_output=True, text=True, env=env, cwd=Path.cwd())
    assert helped.returncode == 0 and "finetune" in helped.stdout


@pytest.mark.parametrize("args,message", [
    (("--finetune-epochs", 0), "--epochs must be positive"),
    (("--finetune-time", -5), "--time-budget must be a positive"),
    (("--finetune-epochs", 1, "--finetune-steps", 0), "finetune-steps must be a whole number"),
    (("--finetune-set", "colour=red", "--finetune-epochs", 1), "--finetune-set takes KEY=VALUE"),
    (("--train-data", SAMPLE), "train-data needs training: add finetune-epochs"),
    (("--finetune-epochs", 1, "--train-data", "missing.npz"), "missing.npz"),
])
def test_bad_recovery_options_of_optimize_are_refused_and_nothing_is_written(capsys, tmp_path, args, message):
    out = tmp_path / "run"
    code, _, err = run(capsys, "optimize", TEACHER, "--calib", SAMPLE, "--target-flops", "0.5", "--out", out, *args)
    assert code == 2 and message in err, err
    assert not out.exists() or not any(out.iterdir())


def test_finetune_on_a_flat_folder_of_unlabelled_images_judges_by_agreement(capsys, tmp_path, pruned):
    import shutil

    folder = tmp_path / "images"
    folder.mkdir()
    for index, image in enumerate(sorted(Path("calibration/fashion-mnist").rglob("*.png"))[::10]):
        shutil.copy(image, folder / f"{index:03d}.png")
    code, out, err = run(capsys, "finetune", pruned[0], "--teacher", TEACHER, "--train-data", folder,
                         "--preset", "fashion-mnist", "-o", tmp_path / "out.onnx", "--steps", 2, "--batch-size", 16,
                         "--report", tmp_path / "report.json")
    assert code == 0, err
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["measure"] == "agreement" and not report["labels_used"] and report["train_data"] == str(folder)
    assert "held-out agreement" in out
