"""Reference models shipped with edgeprune: real CNNs trained on the real Fashion-MNIST data.

Each model is an ONNX file taking ``input`` (batch, 1, 28, 28), grey images scaled by 1/255 then
standardised with mean 0.2860 and std 0.3530, and returning ``logits`` (batch, 10). Next to each file, a JSON
record says how it was trained (command, seed, epochs, time) and its accuracy on the 10,000 test images in
torch and in ONNX Runtime. ``calibration/fashion-mnist`` in the repository holds a labelled 500-image sample
of the test split, preprocessed the same way.

Nothing is loaded at import time: this module only names files.
"""

from __future__ import annotations

from pathlib import Path

from edgeprune.errors import InputError

__all__ = ["REFERENCE_MODELS", "model_path", "record_path"]

_HERE = Path(__file__).resolve().parent

# name -> file name inside this package.
REFERENCE_MODELS: dict[str, str] = {
    "resnet20_fmnist": "resnet20_fmnist.onnx",
    "vgg_fmnist": "vgg_fmnist.onnx",
    "mobilenet_v2_fmnist": "mobilenet_v2_fmnist.onnx",
}
# The training runs that produced the bundled files (also recorded, with the results, in each JSON record).
_TRAINING_ARGS = {
    "resnet20_fmnist": "--arch resnet20 --epochs 12 --seed 0 --threads 2",
    "vgg_fmnist": "--arch vgg --epochs 15 --seed 0 --threads 1",
    "mobilenet_v2_fmnist": "--arch mobilenet_v2 --epochs 12 --seed 0 --threads 1",
}


def _lookup(name: str) -> Path:
    if name not in REFERENCE_MODELS:
        valid = ", ".join(sorted(REFERENCE_MODELS))
        raise InputError(f"unknown reference model {name!r}; choose one of: {valid}")
    return _HERE / REFERENCE_MODELS[name]


def model_path(name: str = "resnet20_fmnist") -> Path:
    """The path of reference model ``name``; raises ``InputError`` if the name or the file is unknown."""
    path = _lookup(name)
    if not path.is_file():
        args = _TRAINING_ARGS.get(name, f"--arch {name.removesuffix('_fmnist')}")
        command = f"python benchmarks/train_reference.py {args} --out edgeprune/reference"
        raise InputError(
            f"reference model {name!r} is missing ({path}); regenerate it from a source checkout with "
            f"`{command}` (needs torch and `apt-get install -y dataset-fashion-mnist`)"
        )
    return path


def record_path(name: str = "resnet20_fmnist") -> Path:
    """The JSON training record of reference model ``name`` (it may be missing where the model is)."""
    return _lookup(name).with_suffix(".json")
