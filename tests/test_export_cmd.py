"""`edgeprune export MODULE:FACTORY`: a checked ONNX file from a torch factory, and one-line errors that write nothing."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from cli_runner import run
from edgeprune.errors import InputError
from edgeprune.export_factory import parse_input_shape

MODULE = "epfactories"
SHAPE = "1,3,8,8"

FACTORIES = '''
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        return self.head(self.body(x).mean(dim=(2, 3)))


def build():
    return Net()


instance = build()
number = 3


def broken():
    raise ValueError("width must be even")


def needs_width(width):
    return Net()


def not_a_module():
    return [Net()]


def interrupted():
    raise KeyboardInterrupt


class Noisy(nn.Module):  # its ONNX graph draws other random numbers than torch does
    def forward(self, x):
        return x + torch.rand_like(x)


class BakedBatch(nn.Module):  # tracing turns int(x.shape[0]) into a constant: the ONNX batch is not dynamic
    def forward(self, x):
        return x.reshape(int(x.shape[0]), -1) * 2


class FixedBatch(nn.Module):  # runs at batch 1 only, even in torch
    def forward(self, x):
        return x.reshape(1, 3 * 8 * 8) * 2
'''


@pytest.fixture()
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder holding the factory module, as a user's project folder would; imports forgotten after."""
    (tmp_path / f"{MODULE}.py").write_text(textwrap.dedent(FACTORIES))
    (tmp_path / "broken_module.py").write_text("import torch\ndef build(:\n")
    (tmp_path / "missing_dependency.py").write_text("import torchvisionx\n")
    monkeypatch.chdir(tmp_path)
    for name in (MODULE, "broken_module", "missing_dependency"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    path_before = list(sys.path)
    yield tmp_path
    assert sys.path == path_before, "the current folder is on sys.path only while the factory loads"
    for name in (MODULE, "broken_module", "missing_dependency"):
        sys.modules.pop(name, None)


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` but the bytecode cache, hidden temporary files included."""
    return {
        os.path.relpath(os.path.join(root, name), folder): Path(root, name).read_bytes()
        for root, dirs, names in os.walk(folder) if "__pycache__" not in root
        for name in names
    }


def _torch_model():
    return sys.modules[MODULE].build().eval()


def _ort(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def _dim0(path: Path) -> str | int:
    dim = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim[0]
    return dim.dim_param or dim.dim_value


@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
def test_export_writes_a_model_with_a_dynamic_batch_that_matches_torch(capsys, folder: Path, exporter: str) -> None:
    code, out, err = run(capsys, "export", f"{MODULE}:build", "--input-shape", SHAPE, "-o", "out/model.onnx",
                         "--exporter", exporter)
    assert code == 0, err
    path = folder / "out" / "model.onnx"
    assert out.startswith(f"wrote out/model.onnx ({exporter} exporter, opset ")
    assert "dynamic batch)" in out and "max relative difference" in out and "at batch 1 and 2" in out
    assert _dim0(path) == "batch"
    model = _torch_model()
    for batch in (1, 3):
        x = np.random.default_rng(batch).standard_normal((batch, 3, 8, 8)).astype(np.float32)
        with torch.no_grad():
            expected = model(torch.from_numpy(x)).numpy()
        got = _ort(path, x)
        assert got.shape == (batch, 4)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    assert sorted(tree(folder)) == sorted(["broken_module.py", "missing_dependency.py", f"{MODULE}.py",
                                           "out/model.onnx"]), "no temporary file is left"


def test_static_batch_and_opset(capsys, folder: Path) -> None:
    code, out, err = run(capsys, "export", f"{MODULE}:build", "--input-shape", "2,3,8,8", "-o", "m.onnx",
                         "--static-batch", "--opset", 13)
    assert code == 0, err
    assert "(legacy exporter, opset 13, static batch)" in out and "at batch 2\n" in out
    assert _dim0(folder / "m.onnx") == 2
    assert next(o.version for o in onnx.load("m.onnx").opset_import if o.domain in ("", "ai.onnx")) == 13
    x = np.zeros((2, 3, 8, 8), np.float32)
    assert _ort(folder / "m.onnx", x).shape == (2, 4)


def test_a_module_instance_and_a_model_that_needs_a_static_batch(capsys, folder: Path) -> None:
    code, out, err = run(capsys, "export", f"{MODULE}:instance", "--input-shape", SHAPE, "-o", "a.onnx")
    assert code == 0, err
    code, out, err = run(capsys, "export", f"{MODULE}:FixedBatch", "--input-shape", SHAPE, "-o", "b.onnx",
                         "--static-batch")
    assert code == 0, err
    assert _dim0(folder / "b.onnx") == 1


def test_a_failed_check_keeps_the_existing_file(capsys, folder: Path) -> None:
    (folder / "m.onnx").write_bytes(b"previous model")
    code, out, err = run(capsys, "export", f"{MODULE}:Noisy", "--input-shape", SHAPE, "-o", "m.onnx")
    assert code == 1 and out == ""
    assert "does not compute what the torch model computes: max relative difference" in err
    assert (folder / "m.onnx").read_bytes() == b"previous model"


def _not_a_folder(t: Path) -> list[object]:
    (t / "a_file").write_text("")
    return [f"{MODULE}:build", "--input-shape", SHAPE, "-o", t / "a_file" / "sub" / "m.onnx"]


def _folder(t: Path) -> list[object]:
    (t / "models").mkdir()
    return [f"{MODULE}:build", "--input-shape", SHAPE, "-o", t / "models"]


def _args(spec: str, shape: str = SHAPE) -> object:
    return lambda t: [spec, f"--input-shape={shape}", "-o", t / "m.onnx"]


BAD_INPUTS = [  # (id, arguments after "export", exit code, words of the message)
    ("module-not-found", _args("no_such_models:build"), 2,
     "could not import module 'no_such_models': ModuleNotFoundError: No module named 'no_such_models'"),
    ("dependency-not-found", _args("missing_dependency:build"), 2,
     "could not import module 'missing_dependency': ModuleNotFoundError: No module named 'torchvisionx'"),
    ("module-syntax-error", _args("broken_module:build"), 2,
     "could not import module 'broken_module': SyntaxError:"),
    ("not-module-colon-factory", _args(MODULE), 2, f"'{MODULE}' is not MODULE:FACTORY"),
    ("no-such-attribute", _args(f"{MODULE}:biuld"), 2,
     f"module '{MODULE}' has no attribute 'biuld'; did you mean 'build'?"),
    ("not-callable", _args(f"{MODULE}:number"), 2, f"{MODULE}:number is not callable (its type is int)"),
    ("factory-raised", _args(f"{MODULE}:broken"), 2,
     f"the factory {MODULE}:broken raised ValueError: width must be even"),
    ("factory-needs-arguments", _args(f"{MODULE}:needs_width"), 2,
     f"the factory {MODULE}:needs_width raised TypeError: needs_width() missing 1 required positional argument"),
    ("not-an-nn-module", _args(f"{MODULE}:not_a_module"), 2,
     f"the factory {MODULE}:not_a_module returned a list, not a torch.nn.Module"),
    ("shape-not-integers", _args(f"{MODULE}:build", "1,3,x,8"), 2, "input shape '1,3,x,8' is not valid"),
    ("shape-zero", _args(f"{MODULE}:build", "1,3,0,8"), 2, "input shape '1,3,0,8' is not valid"),
    ("shape-negative", _args(f"{MODULE}:build", "-1,3,8,8"), 2, "input shape '-1,3,8,8' is not valid"),
    ("shape-empty", _args(f"{MODULE}:build", ""), 2, "input shape '' is not valid"),
    ("shape-does-not-fit", _args(f"{MODULE}:build", "1,4,8,8"), 2,
     "input shape 1,4,8,8 does not fit the model: RuntimeError:"),
    ("batch-cannot-be-dynamic", _args(f"{MODULE}:FixedBatch"), 2,
     "the model runs at batch 1 but not at batch 2: RuntimeError:"),
    ("batch-baked-into-the-graph", _args(f"{MODULE}:BakedBatch"), 1,
     "the exported model's outputs have shapes [(1, 384)] at batch 2 where torch's have [(2, 192)]"),
    ("outputs-differ", _args(f"{MODULE}:Noisy"), 1, "does not compute what the torch model computes"),
    ("output-is-a-folder", _folder, 2, "is a folder; give a file path such as"),
    ("output-under-a-file", _not_a_folder, 2, "a_file is not a folder"),
]


@pytest.mark.parametrize(("build", "code", "words"), [case[1:] for case in BAD_INPUTS],
                         ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_is_one_line_and_writes_nothing(capsys, folder: Path, build, code: int, words: str) -> None:
    args = build(folder)
    before = tree(folder)
    got, out, err = run(capsys, "export", *args)
    assert got == code, err
    assert err.startswith("edgeprune: error: ") and err.count("\n") == 1, err
    assert words in err
    assert "Traceback" not in err and out == ""
    assert tree(folder) == before  # nothing written, no temporary file left


def test_torch_not_installed(capsys, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    code, out, err = run(capsys, "export", f"{MODULE}:build", "--input-shape", SHAPE, "-o", "m.onnx")
    assert code == 2
    assert "exporting needs torch, which is not installed; install it with `pip install 'edgeprune[torch]'`" in err
    assert not (folder / "m.onnx").exists()


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder(capsys, folder: Path) -> None:
    locked = folder / "locked"
    locked.mkdir(mode=0o555)
    code, _, err = run(capsys, "export", f"{MODULE}:build", "--input-shape", SHAPE, "-o", locked / "m.onnx")
    assert code == 2 and "no permission to write in" in err
    assert list(locked.iterdir()) == []


def test_ctrl_c_in_the_factory_exits_130(capsys, folder: Path) -> None:
    before = tree(folder)
    code, _, err = run(capsys, "export", f"{MODULE}:interrupted", "--input-shape", SHAPE, "-o", "m.onnx")
    assert code == 130 and "interrupted; nothing was written" in err
    assert tree(folder) == before


def test_ctrl_c_while_checking_exits_130(capsys, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupt(*_args):
        raise KeyboardInterrupt

    monkeypatch.setattr("edgeprune.export_factory._max_rel_diff", interrupt)
    before = tree(folder)
    code, _, err = run(capsys, "export", f"{MODULE}:build", "--input-shape", SHAPE, "-o", "m.onnx")
    assert code == 130 and "interrupted; nothing was written" in err
    assert tree(folder) == before


def test_parse_input_shape() -> None:
    assert parse_input_shape(" 1, 3,224,224") == (1, 3, 224, 224)
    assert parse_input_shape([2, 3]) == (2, 3)
    with pytest.raises(InputError, match=r"input shape '1,2\.5' is not valid"):
        parse_input_shape("1,2.5")


def test_help_names_the_options(capsys) -> None:
    code, out, _ = run(capsys, "export", "--help")
    assert code == 0
    for option in ("--input-shape", "--opset", "--exporter", "--static-batch", "-o, --output"):
        assert option in out
