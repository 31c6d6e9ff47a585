"""The real-architecture test corpus: zoo models exported to ONNX, and the onnx wheel's "light" topologies.

A helper module for tests (not a test file). Exports are cached by file name inside the folder given, so a
session-scoped folder (the ``corpus_dir`` fixture) exports each model once per test session.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

CORPUS_ARCHITECTURES: tuple[str, ...] = (
    "vgg",
    "resnet_basic",
    "resnet_bottleneck",
    "resnet20",
    "mobilenet_v2",
    "mobilenet_v3",
    "densenet",
    "shufflenet",
    "resnext",
    "flatten_gemm_head",
    "gap_gemm_head",
    "two_in_two_out",
    "unet",
    "convnext",
    "yolox",
)
EXPORTERS: tuple[str, ...] = ("legacy", "dynamo")

# The classic topologies the onnx wheel ships with weights replaced by ConstantOfShape.
LIGHT_MODELS: tuple[str, ...] = (
    "bvlc_alexnet",
    "densenet121",
    "inception_v1",
    "inception_v2",
    "resnet50",
    "shufflenet",
    "squeezenet",
    "vgg19",
    "zfnet512",
)


def corpus_model_path(name: str, exporter: str, folder: Path) -> Path:
    """Where ``export_corpus_model`` puts (and finds) the export of ``name`` by ``exporter``."""
    return Path(folder) / f"{name}.{exporter}.onnx"


def export_corpus_model(name: str, exporter: str, folder: Path) -> Path:
    """Build zoo model ``name`` with seed 0 and export it with ``exporter`` (cached by file name)."""
    path = corpus_model_path(name, exporter, folder)
    if not path.exists():
        from edgeprune import zoo
        from edgeprune.export import export_torch

        model, inputs = zoo.build(name, seed=0), zoo.example_inputs(name)
        export_torch(model, inputs, path, exporter=exporter)  # type: ignore[arg-type]
    return path


def export_corpus(pairs: Iterable[tuple[str, str]], folder: Path, workers: int | None = None) -> list[Path]:
    """Export many ``(name, exporter)`` corpus models, this process and worker processes sharing the work.

    A dynamo export costs 2-5 s of single-threaded Python, so with N cores the missing models are dealt
    round-robin (most expensive first) into N shares: this process exports one, N-1 spawned workers (one
    torch thread each) the others. Models already in ``folder`` are not exported again.
    """
    pairs = list(pairs)
    missing = sorted({p for p in pairs if not corpus_model_path(*p, folder).exists()}, key=lambda p: (-_cost(p), p))
    workers = min(workers or os.cpu_count() or 1, len(missing))
    if workers > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        shares = [missing[i::workers] for i in range(workers)]
        # spawn, not fork: forking a process that has started torch's thread pools can deadlock.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers - 1, mp_context=context, initializer=_init_worker) as pool:
            futures = [pool.submit(_export_share, share, folder) for share in shares[1:]]
            _export_share(shares[0], folder)
            for future in futures:
                future.result()
    return [export_corpus_model(name, exporter, folder) for name, exporter in pairs]


def _cost(pair: tuple[str, str]) -> int:
    """Dynamo exports cost seconds, legacy ones a tenth of that: deal the dynamo ones first."""
    return 10 if pair[1] == "dynamo" else 1


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def _export_share(share: list[tuple[str, str]], folder: Path) -> None:
    for name, exporter in share:
        export_corpus_model(name, exporter, folder)


def light_model_paths() -> list[Path]:
    """The onnx wheel's light models, sorted by name; they need no export and load with no weights."""
    import onnx

    folder = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
    return [folder / f"light_{name}.onnx" for name in LIGHT_MODELS]
