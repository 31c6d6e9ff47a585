"""The command line: what `inspect`, `plan` and `prune` print and write, and one-line errors for bad input."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx_graphsurgeon.logger import G_LOGGER

from builders import (
    assert_close,
    conv_bn_relu_model,
    lrn_model,
    random_inputs,
    run_model,
    single_conv_model,
    two_group_model,
    write_model,
)
from edgeprune.cli import cli, main
from edgeprune.errors import InputError
from edgeprune.graph import load_model

G_LOGGER.severity = G_LOGGER.ERROR

TWO_GROUP_MACS = 8 * 3 * 9 * 64 + 6 * 8 * 9 * 64 + 4 * 6 * 64  # conv_a + conv_b + conv_c on 8x8


def invoke(*args: object):
    """Run the click group in-process; a result with exit code 0 is asserted."""
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def run_main(capsys, *args: object) -> tuple[int, str, str]:
    """Call the real entry point ``main``; return (exit code, stdout, stderr)."""
    capsys.readouterr()
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden temp files included) with its bytes."""
    return {
        os.path.relpath(os.path.join(root, name), folder): Path(root, name).read_bytes()
        for root, _, names in os.walk(folder)
        for name in names
    }


@pytest.fixture()
def model(tmp_path: Path) -> Path:
    return write_model(two_group_model(), tmp_path / "model.onnx")


@pytest.fixture()
def plan_file(tmp_path: Path, model: Path) -> Path:
    invoke("plan", model, "--ratio", 0.5, "-o", tmp_path / "plan.json")
    return tmp_path / "plan.json"


# ---------------------------------------------------------------- inspect


def test_inspect_text(model: Path) -> None:
    out = invoke("inspect", model).output
    assert "input   x  float32  [1, 3, 8, 8]" in out
    assert "output  y  float32  [1, 4, 8, 8]" in out
    assert "Conv x3" in out and "Relu x2" in out
    assert "43.0K MACs" in out
    assert "groups  2 prunable, 1 frozen" in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    assert "8 ch  prunable" in lines["conv_a"] and "6 ch  prunable" in lines["conv_b"]
    assert "frozen" in lines["conv_c"] and "output" in lines["conv_c"]


def test_inspect_json(model: Path) -> None:
    data = json.loads(invoke("inspect", "--json", model).output)
    assert {"inputs", "outputs", "ops", "cost", "groups"} <= set(data)
    assert data["inputs"] == [{"name": "x", "shape": [1, 3, 8, 8], "dtype": "float32"}]
    assert [t["name"] for t in data["outputs"]] == ["y"]
    assert data["ops"] == {"Conv": 3, "Relu": 2}
    assert data["cost"]["macs"] == TWO_GROUP_MACS
    assert data["sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    groups = {g["id"]: g for g in data["groups"]}
    assert set(groups) == {"conv_a", "conv_b", "conv_c"}
    for group in groups.values():
        assert {"id", "channels", "prunable", "frozen"} <= set(group)
        assert group["prunable"] == (not group["frozen"])
    assert (groups["conv_a"]["channels"], groups["conv_b"]["channels"]) == (8, 6)


def test_inspect_names_why_a_group_is_frozen(tmp_path: Path) -> None:
    path = write_model(lrn_model(), tmp_path / "lrn.onnx")
    groups = {g["id"]: g for g in json.loads(invoke("inspect", "--json", path).output)["groups"]}
    assert groups["conv2"]["prunable"] and not groups["conv1"]["prunable"]
    reason = groups["conv1"]["frozen"][0]
    assert (reason["node"], reason["op"]) == ("lrn1", "LRN")
    assert "across channels" in reason["reason"]
    text = invoke("inspect", path).output
    assert "frozen: lrn1 (LRN)" in next(line for line in text.splitlines() if line.strip().startswith("conv1 "))


# ---------------------------------------------------------------- plan


def test_plan_is_tied_to_the_model_file(model: Path, plan_file: Path) -> None:
    data = json.loads(plan_file.read_text())
    assert data["model_sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert data["kept"] == {"conv_a": [0, 1, 2, 3], "conv_b": [0, 1, 2]}
    assert data["settings"]["ratio"] == 0.5


def test_plan_random_is_seeded(tmp_path: Path, model: Path) -> None:
    paths = [tmp_path / name for name in ("a.json", "b.json", "c.json")]
    for path, seed in zip(paths, (3, 3, 4)):
        out = invoke("plan", model, "--ratio", 0.5, "--random", "--seed", seed, "-o", path).output
        assert out.startswith(f"wrote {path}")
    assert paths[0].read_bytes() == paths[1].read_bytes()
    first, other = (json.loads(p.read_text()) for p in (paths[0], paths[2]))
    assert (first["strategy"], first["seed"]) == ("random", 3)
    assert first["kept"] != other["kept"]
    assert all(len(first["kept"][g]) == len(other["kept"][g]) for g in first["kept"])


@pytest.mark.parametrize("builder", [two_group_model, conv_bn_relu_model])
def test_full_ratio_prune_reproduces_the_model(tmp_path: Path, builder) -> None:
    path = write_model(builder(), tmp_path / "model.onnx")
    invoke("plan", path, "--ratio", 1.0, "-o", tmp_path / "all.json")
    invoke("prune", path, "--plan", tmp_path / "all.json", "-o", tmp_path / "out.onnx")
    feeds = random_inputs(builder(), seed=5)
    pruned = run_model(tmp_path / "out.onnx", feeds)
    for got, want in zip(pruned, run_model(load_model(path).proto, feeds)):
        assert np.array_equal(got, want)
    assert_close(pruned, run_model(path, feeds), rtol=1e-5)


# ---------------------------------------------------------------- prune


def test_prune_writes_a_smaller_valid_model(tmp_path: Path, model: Path, plan_file: Path) -> None:
    before = model.read_bytes()
    output = tmp_path / "out" / "pruned.onnx"
    out = invoke("prune", model, "--plan", plan_file, "-o", output).output
    assert out.splitlines()[0] == f"wrote {output}"
    macs = next(line for line in out.splitlines() if line.strip().startswith("MACs"))
    assert "43.0K ->" in macs and "kept)" in macs
    assert "proof         matches the masked original" in out
    assert model.read_bytes() == before
    pruned = onnx.load(str(output))
    onnx.checker.check_model(pruned, full_check=True)
    assert pruned.ir_version <= 10
    assert output.stat().st_size < model.stat().st_size
    weights = {t.name: tuple(t.dims) for t in pruned.graph.initializer}
    assert sorted(d[0] for d in weights.values() if len(d) == 4) == [3, 4, 4]
    assert run_model(output, random_inputs(pruned))[0].shape == (1, 4, 8, 8)
    assert sorted(os.listdir(output.parent)) == ["pruned.onnx"]  # no temp file left


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_outputs_get_ordinary_permissions(tmp_path: Path, model: Path, plan_file: Path) -> None:
    invoke("prune", model, "--plan", plan_file, "-o", tmp_path / "o.onnx")
    umask = os.umask(0)
    os.umask(umask)
    for path in (plan_file, tmp_path / "o.onnx"):
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask, oct(path.stat().st_mode)


def test_prune_no_verify_says_so(tmp_path: Path, model: Path, plan_file: Path) -> None:
    out = invoke("prune", model, "--plan", plan_file, "-o", tmp_path / "o.onnx", "--no-verify").output
    assert "proof         skipped" in out


# ---------------------------------------------------------------- errors


def _plan_with(tmp_path: Path, model: Path, **kept) -> list[object]:
    invoke("plan", model, "--ratio", 0.5, "-o", tmp_path / "base.json")
    data = json.loads((tmp_path / "base.json").read_text())
    data["kept"].update(kept)
    (tmp_path / "edited.json").write_text(json.dumps(data))
    return ["prune", model, "--plan", tmp_path / "edited.json", "-o", tmp_path / "out.onnx"]


def _external_without_data(t: Path, m: Path) -> list[object]:
    ext = write_model(two_group_model(), t / "ext.onnx", external=True)
    (t / "ext.onnx.data").unlink()
    return ["inspect", ext]


def _frozen_subset(t: Path, m: Path) -> list[object]:
    lrn = write_model(lrn_model(), t / "lrn.onnx")
    invoke("plan", lrn, "--ratio", 0.5, "-o", t / "lrn.json")
    data = json.loads((t / "lrn.json").read_text())
    data["kept"]["conv1"] = [0, 1, 2]
    (t / "lrn.json").write_text(json.dumps(data))
    return ["prune", lrn, "--plan", t / "lrn.json", "-o", t / "out.onnx"]


def _other_model_plan(t: Path, m: Path) -> list[object]:
    other = write_model(conv_bn_relu_model(), t / "other.onnx")
    invoke("plan", other, "--ratio", 0.5, "-o", t / "other.json")
    return ["prune", m, "--plan", t / "other.json", "-o", t / "out.onnx"]


def _case(name: str, words: str, build: Callable[[Path, Path], list[object]], *marks):
    return pytest.param(build, words, id=name, marks=marks)


def _write(t: Path, name: str, data: bytes) -> Path:
    (t / name).write_bytes(data)
    return t / name


ERROR_CASES = [
    _case("missing-model", "not found", lambda t, m: ["inspect", t / "nope.onnx"]),
    _case("directory", "is a directory", lambda t, m: ["plan", t, "--ratio", 0.5, "-o", t / "p.json"]),
    _case("not-onnx", "not a readable ONNX", lambda t, m: ["inspect", _write(t, "a.onnx", b"hello\nworld\n")]),
    _case("truncated", "truncated", lambda t, m: ["inspect", _write(t, "cut.onnx", m.read_bytes()[:1500])]),
    _case("missing-external-data", "external", _external_without_data),
    _case("no-prunable-group", "no prunable channel group",
          lambda t, m: ["plan", write_model(single_conv_model(), t / "one.onnx"), "--ratio", 0.5, "-o", t / "p.json"]),
    _case("plan-for-another-model", "another model", _other_model_plan),
    _case("index-out-of-range", "out of range", lambda t, m: _plan_with(t, m, conv_a=[0, 8])),
    _case("negative-index", "out of range", lambda t, m: _plan_with(t, m, conv_a=[-1, 0])),
    _case("duplicate-indices", "duplicate", lambda t, m: _plan_with(t, m, conv_a=[1, 1])),
    _case("empty-kept", "keeps no channel", lambda t, m: _plan_with(t, m, conv_b=[])),
    _case("unknown-group", "does not have", lambda t, m: _plan_with(t, m, nosuch=[0])),
    _case("frozen-group-subset", "frozen", _frozen_subset),
    _case("non-integer-index", "integer", lambda t, m: _plan_with(t, m, conv_a=[0.5, 1.5])),
    _case("plan-not-json", "not a JSON plan",
          lambda t, m: ["prune", m, "--plan", _write(t, "p.json", b"{not json"), "-o", t / "o.onnx"]),
    _case("missing-plan", "plan file not found", lambda t, m: ["prune", m, "--plan", t / "no.json", "-o", t / "o.onnx"]),
    _case("prune-output-is-input", "is the input model",
          lambda t, m: ["prune", m, "--plan", _plan_with(t, m)[3], "-o", t / "sub" / ".." / m.name]),
    _case("plan-output-is-input", "is the input model", lambda t, m: ["plan", m, "--ratio", 0.5, "-o", m]),
    _case("ratio-zero", "--ratio", lambda t, m: ["plan", m, "--ratio", 0, "-o", t / "p.json"]),
    _case("ratio-above-one", "--ratio", lambda t, m: ["plan", m, "--ratio", 1.5, "-o", t / "p.json"]),
    _case("output-is-a-directory", "directory",
          lambda t, m: ["plan", m, "--ratio", 0.5, "-o", (t / "dir").mkdir() or t / "dir"]),
    _case("output-parent-is-a-file", "directory",
          lambda t, m: ["plan", m, "--ratio", 0.5, "-o", m.parent / "model.onnx" / "p.json"]),
]


@pytest.mark.parametrize(("build", "words"), ERROR_CASES)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, model: Path, capsys, build, words: str) -> None:
    args = build(tmp_path, model)
    before = tree(tmp_path)
    code, out, err = run_main(capsys, *args)
    assert code == 2, err
    assert err.startswith("edgeprune: error: ") and err.endswith("\n")
    assert err.count("\n") == 1, err
    assert "Traceback" not in err and out == ""
    assert words in err
    assert tree(tmp_path) == before  # nothing written, no temp file left


def test_debug_lets_the_error_propagate(tmp_path: Path, capsys) -> None:
    with pytest.raises(InputError, match="not found"):
        main(["--debug", "inspect", str(tmp_path / "nope.onnx")])
    result = CliRunner().invoke(cli, ["--debug", "inspect", str(tmp_path / "nope.onnx")])
    assert isinstance(result.exception, InputError)


def test_real_process_errors_and_debug_traceback(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.onnx")
    plain = subprocess.run([sys.executable, "-m", "edgeprune", "inspect", missing], capture_output=True, text=True)
    assert plain.returncode == 2
    assert plain.stderr.startswith("edgeprune: error: model file not found") and plain.stderr.count("\n") == 1
    debug = subprocess.run(
        [sys.executable, "-m", "edgeprune", "--debug", "inspect", missing], capture_output=True, text=True
    )
    assert debug.returncode != 0
    assert "Traceback" in debug.stderr and "InputError" in debug.stderr


# ---------------------------------------------------------------- help


@pytest.mark.parametrize("args", [[], ["inspect"], ["plan"], ["prune"]], ids=["group", "inspect", "plan", "prune"])
def test_help(args: list[str], capsys) -> None:
    result = CliRunner().invoke(cli, [*args, "--help"])
    assert result.exit_code == 0 and result.output.startswith("Usage:")
    code, out, _ = run_main(capsys, *args, "--help")
    assert code == 0 and "Usage:" in out
    if not args:
        assert all(command in result.output for command in ("inspect", "plan", "prune"))


def test_python_dash_m_help() -> None:
    done = subprocess.run([sys.executable, "-m", "edgeprune", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Usage: edgeprune" in done.stdout or "Usage: python -m edgeprune" in done.stdout
    assert "prune" in done.stdout


def test_ctrl_c_in_any_command_exits_130_without_a_traceback(capsys, monkeypatch):
    """click turns KeyboardInterrupt into Abort, which has no message: both must give exit 130 and one line."""
    import edgeprune.api

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(edgeprune.api, "inspect_model", interrupted)
    code, _, err = run_main(capsys, "inspect", "edgeprune/reference/vgg_fmnist.onnx")
    assert code == 130 and "interrupted; nothing was written" in err and "Traceback" not in err


def test_top_level_help_imports_neither_numpy_nor_onnx() -> None:
    code = ("import sys\nfrom edgeprune.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'onnx', 'onnxruntime', 'torch'))\n"
            "print('HEAVY', heavy)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "HEAVY []" in done.stdout, done.stdout + done.stderr
    assert "optimize" in done.stdout and "export" in done.stdout
