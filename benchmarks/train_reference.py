"""Train a reference CNN on the real Fashion-MNIST data and export it to ONNX with a JSON record.

    python benchmarks/train_reference.py --arch resnet20 --epochs 12 --seed 0 --threads 2 --out edgeprune/reference

Recipe (the same for every architecture): SGD with Nesterov momentum 0.9, weight decay 5e-4, a one-cycle
learning rate peaking at 0.1, batch 128, cross-entropy (label smoothing 0 by default); augmentation by random
horizontal flips and random shifts of up to 2 pixels (zero padding then a random 28x28 crop), done in torch
on whole batches; inputs scaled by 1/255 then standardised with the Fashion-MNIST mean 0.2860 and std
0.3530. Seeded and deterministic on CPU for a given seed, thread count and torch build.

At the end the model is evaluated on all 10,000 test images, exported with ``edgeprune.export.export_torch``
(legacy exporter, dynamic batch, input "input", output "logits"), and the ONNX model's accuracy in ONNX
Runtime must equal the torch accuracy within 0.05 points, else the run fails and writes no record.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fashion_mnist  # noqa: E402

# Builder keyword arguments that make each zoo architecture take 1x28x28 grey images.
ARCH_KWARGS: dict[str, dict[str, int]] = {
    "resnet20": {"in_channels": 1},
    "vgg": {"in_channels": 1, "image_size": 28},
    "mobilenet_v2": {"in_channels": 1},
}
BATCH = 128
MAX_LR = 0.1
MOMENTUM = 0.9
WEIGHT_DECAY = 5e-4
SHIFT = 2
EVAL_BATCH = 500
MAX_ONNX_GAP = 0.05  # accuracy points


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", choices=sorted(ARCH_KWARGS), required=True)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch and ONNX Runtime CPU threads")
    parser.add_argument("--out", type=Path, default=Path("edgeprune/reference"))
    parser.add_argument("--label-smoothing", type=float, default=0.0)
    parser.add_argument("--data", type=Path, default=None, help="folder of the IDX gz files")
    parser.add_argument("--limit", type=int, default=0, help="train on the first N images only (smoke tests)")
    return parser.parse_args(argv)


def build_model(arch: str, seed: int) -> nn.Module:
    """The zoo architecture with torch's default initialisation (not ``zoo.build``'s test-only weights)."""
    from edgeprune.zoo import ARCHITECTURES

    torch.manual_seed(seed)
    return ARCHITECTURES[arch](**ARCH_KWARGS[arch])


def normalise(x: torch.Tensor) -> torch.Tensor:
    """Scaled [0, 1] images -> standardised, exactly as ``fashion_mnist.normalise`` does on uint8."""
    return (x - fashion_mnist.MEAN) / fashion_mnist.STD


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random horizontal flips and shifts of up to SHIFT pixels on a batch (B, 1, 28, 28) of [0, 1] images.

    Shifting pads with zeros (the black background) before normalising, then crops one random 28x28 window
    per image with a single gather.
    """
    b, _, h, w = x.shape
    flip = torch.rand(b, generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    padded = nn.functional.pad(x, (SHIFT, SHIFT, SHIFT, SHIFT))
    dy = torch.randint(0, 2 * SHIFT + 1, (b,), generator=gen)
    dx = torch.randint(0, 2 * SHIFT + 1, (b,), generator=gen)
    rows = (dy[:, None] + torch.arange(h))[:, :, None]
    cols = (dx[:, None] + torch.arange(w))[:, None, :]
    return padded[torch.arange(b)[:, None, None], 0, rows, cols][:, None]


@torch.no_grad()
def torch_accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> tuple[int, float]:
    """Correct count and accuracy in percent on normalised ``images``, in eval mode."""
    model.eval()
    correct = 0
    for start in range(0, len(images), EVAL_BATCH):
        logits = model(images[start:start + EVAL_BATCH])
        correct += int((logits.argmax(1) == labels[start:start + EVAL_BATCH]).sum())
    return correct, 100.0 * correct / len(images)


def onnx_accuracy(path: Path, images: np.ndarray, labels: np.ndarray, threads: int) -> tuple[int, float]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    correct = 0
    for start in range(0, len(images), EVAL_BATCH):
        (logits,) = session.run(["logits"], {"input": images[start:start + EVAL_BATCH]})
        correct += int((logits.argmax(1) == labels[start:start + EVAL_BATCH]).sum())
    return correct, 100.0 * correct / len(images)


def train_epoch(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor], optimizer: torch.optim.Optimizer,
                scheduler: torch.optim.lr_scheduler.LRScheduler, loss_fn: nn.Module,
                gen: torch.Generator) -> float:
    """One pass over the shuffled training set; returns the mean training loss."""
    images, labels = data
    model.train()
    order = torch.randperm(len(images), generator=gen)
    total, seen = 0.0, 0
    for start in range(0, len(images), BATCH):
        index = order[start:start + BATCH]
        x = normalise(augment(images[index], gen))
        loss = loss_fn(model(x), labels[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        total += float(loss.detach()) * len(index)
        seen += len(index)
    return total / seen


def train(args: argparse.Namespace, model: nn.Module, train_set: tuple[torch.Tensor, torch.Tensor],
          test_set: tuple[torch.Tensor, torch.Tensor]) -> list[dict[str, float]]:
    """The full schedule; prints and returns one row per epoch."""
    steps = (len(train_set[0]) + BATCH - 1) // BATCH
    optimizer = torch.optim.SGD(model.parameters(), lr=MAX_LR, momentum=MOMENTUM, nesterov=True,
                                weight_decay=WEIGHT_DECAY)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=MAX_LR, epochs=args.epochs,
                                                    steps_per_epoch=steps, cycle_momentum=False)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)
    gen = torch.Generator().manual_seed(args.seed)
    history: list[dict[str, float]] = []
    began = time.perf_counter()
    print(f"{'epoch':>5} {'train loss':>10} {'test acc %':>10} {'epoch s':>8} {'elapsed s':>9}", flush=True)
    for epoch in range(1, args.epochs + 1):
        tick = time.perf_counter()
        loss = train_epoch(model, train_set, optimizer, scheduler, loss_fn, gen)
        _, acc = torch_accuracy(model, *test_set)
        now = time.perf_counter()
        history.append({"epoch": epoch, "train_loss": round(loss, 5), "test_accuracy": round(acc, 2),
                        "seconds": round(now - tick, 1)})
        print(f"{epoch:>5} {loss:>10.4f} {acc:>10.2f} {now - tick:>8.1f} {now - began:>9.1f}", flush=True)
    return history


def write_json(path: Path, record: dict[str, object]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from edgeprune.export import export_torch

    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    try:
        train_images, train_labels = fashion_mnist.load_split("train", args.data)
        test_images, test_labels = fashion_mnist.load_split("test", args.data)
    except fashion_mnist.FashionMNISTError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.limit:
        train_images, train_labels = train_images[:args.limit], train_labels[:args.limit]
    train_set = (torch.from_numpy(train_images).float()[:, None] / 255.0, torch.from_numpy(train_labels))
    test_np = fashion_mnist.normalise(test_images)
    test_set = (torch.from_numpy(test_np), torch.from_numpy(test_labels))

    model = build_model(args.arch, args.seed)
    params = sum(p.numel() for p in model.parameters())
    print(f"{args.arch}: {params:,} parameters, {len(train_set[0]):,} training images, "
          f"{args.epochs} epochs, seed {args.seed}, {args.threads} threads", flush=True)
    began = time.perf_counter()
    history = train(args, model, train_set, test_set)
    seconds = time.perf_counter() - began
    torch_correct, torch_acc = torch_accuracy(model, *test_set)

    args.out.mkdir(parents=True, exist_ok=True)
    onnx_path = args.out / f"{args.arch}_fmnist.onnx"
    export_torch(model, (test_set[0][:1],), onnx_path, exporter="legacy", dynamic_batch=True,
                 input_names=["input"], output_names=["logits"])
    onnx_correct, onnx_acc = onnx_accuracy(onnx_path, test_np, test_labels, args.threads)
    print(f"test accuracy on {len(test_np):,} images: torch {torch_acc:.2f}%, onnx {onnx_acc:.2f}%", flush=True)
    if abs(onnx_acc - torch_acc) > MAX_ONNX_GAP:
        print(f"error: ONNX accuracy {onnx_acc:.2f}% differs from torch {torch_acc:.2f}% by more than "
              f"{MAX_ONNX_GAP} points; the export is wrong", file=sys.stderr)
        return 1
    record = {
        "arch": args.arch, "builder_kwargs": ARCH_KWARGS[args.arch], "epochs": args.epochs, "seed": args.seed,
        "threads": args.threads, "seconds": round(seconds, 1),
        "torch_test_accuracy": round(torch_acc, 2), "onnx_test_accuracy": round(onnx_acc, 2),
        "torch_test_correct": torch_correct, "onnx_test_correct": onnx_correct, "test_images": len(test_np),
        "train_images": len(train_set[0]), "parameters": params, "torch_version": torch.__version__,
        "command": " ".join(["python", *sys.argv]) if argv is None else " ".join(argv),
        "recipe": {"optimizer": "SGD nesterov", "momentum": MOMENTUM, "weight_decay": WEIGHT_DECAY,
                   "schedule": "one-cycle", "max_lr": MAX_LR, "batch": BATCH,
                   "label_smoothing": args.label_smoothing, "augmentation": f"hflip, shift <= {SHIFT} px"},
        "preprocessing": {"scale": "1/255", "mean": fashion_mnist.MEAN, "std": fashion_mnist.STD,
                          "layout": "NCHW", "shape": [1, 28, 28]},
        "onnx_sha256": hashlib.sha256(onnx_path.read_bytes()).hexdigest(),
        "history": history,
    }
    write_json(onnx_path.with_suffix(".json"), record)
    print(f"wrote {onnx_path} ({onnx_path.stat().st_size:,} bytes) and {onnx_path.with_suffix('.json').name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
