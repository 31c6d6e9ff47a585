"""Torch-Pruning 1.6.1 on the bundled reference models: prune to a MAC target, fine-tune one epoch, test.

Torch-Pruning is a peer tool, not a dependency of edgeprune, so it lives in a venv of its own:

    python -m venv /work/venv-peer
    /work/venv-peer/bin/pip install torch==2.13.0
    /work/venv-peer/bin/pip install torch-pruning==1.6.1 onnx numpy

Run from the repository root (the whole grid takes over an hour on 2 cores; rows already in the results
file are reused unless --force, so an interrupted run resumes where it stopped):

    PYTHONPATH=$PWD:$PWD/benchmarks nice -n 10 /work/venv-peer/bin/python benchmarks/peer_torch_pruning.py

Smoke test (a few minutes; write it elsewhere so that its rows are not mixed into the real results):

    PYTHONPATH=$PWD:$PWD/benchmarks /work/venv-peer/bin/python benchmarks/peer_torch_pruning.py \\
        --models vgg_fmnist --targets 1/2 --limit-train 512 --out /tmp/peer_smoke.json

Recompute chosen rows only, e.g. the plain-torch epoch row on an idle machine:

    PYTHONPATH=$PWD:$PWD/benchmarks nice -n 10 /work/venv-peer/bin/python benchmarks/peer_torch_pruning.py \\
        --models resnet20_fmnist --importances l1 --scopes global --round-to 8 --targets 1/5 --force

What each row does:

1. The reference model (edgeprune/reference/<name>.onnx) is rebuilt as its edgeprune.zoo torch architecture
   with the ONNX weights (``reference_torchscript.rebuild``). The export folded every BatchNorm into its
   conv, so the BatchNorms are identities carrying the folded bias; the rebuilt module's test accuracy must
   equal the record's ``onnx_test_accuracy``.
2. ``tp.pruner.MetaPruner`` with L1 magnitude (``MagnitudeImportance(p=1)``) or Taylor importance
   (``TaylorImportance()``, fed the gradients of the cross-entropy loss on 8 labelled train batches of 128
   before every step), global or per-layer (uniform) ranking, the final classifier ignored, pruning_ratio
   1.0 spread over 50 iterative steps. It steps until the MACs (``tp.utils.count_ops_and_params`` on a
   1x1x28x28 input) are at most the target fraction of the original; the achieved fraction is reported,
   and a target not reached within the 50 steps is marked as such. One run of steps serves all targets
   of a configuration: the model is copied when it first meets each target, which is the model a
   separate run to that target would stop at (the Taylor batches depend only on the step number), and
   ``prune_s`` is the time from the pruner's construction to that point.
3. Fine-tune: exactly the recipe of ``_recipe.py`` (one epoch over all 60,000 train images, SGD Nesterov,
   lr 0.01 cosine to 0 per step, batch 128, flips and 2-pixel shifts, seed 0). BatchNorm layers stay in
   eval mode: their running statistics are the identity the folded export left, and train-mode batch
   statistics would change the network before any training. Their affine weight and bias still train.
4. Test accuracy on all 10,000 test images of the original, the pruned and the fine-tuned model.

Wall times are only comparable on an otherwise idle machine: each row records the 1-minute load average
before and after its fine-tune (``load_avg_1min``; 2 cores, so about 2 means this run alone).

The fine-tune of resnet20 L1 global 1/5 (round_to=8) is also the plain-torch epoch time reference
(``plain_torch_epoch`` in the results). Results go to benchmarks/results/peer_torch_pruning.json (written
atomically after every row) and a Markdown table is printed.
"""

from __future__ import annotations

import argparse
import copy
import importlib.metadata
import json
import os
import sys
import time
from fractions import Fraction
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import _recipe  # noqa: E402
import fashion_mnist  # noqa: E402

MODELS = ("resnet20_fmnist", "vgg_fmnist", "mobilenet_v2_fmnist")
TARGETS = ("1/2", "1/5", "1/10")
IMPORTANCES = ("l1", "taylor")
SCOPES = ("global", "uniform")
ITERATIVE_STEPS = 50
PRUNING_RATIO = 1.0
TAYLOR_BATCHES = 8
TAYLOR_SEED = 1000  # step k draws its Taylor batches from a generator seeded TAYLOR_SEED + k
EVAL_BATCH = 500
THREADS = 2
MAX_ACCURACY_GAP = 0.05  # points, rebuilt torch module vs. the record's ONNX accuracy
PLAIN_EPOCH_ROW = ("resnet20_fmnist", "l1", "global", 8, "1/5")
DEFAULT_OUT = HERE / "results" / "peer_torch_pruning.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--targets", nargs="+", default=list(TARGETS),
                        help="MAC fractions of the original, e.g. 1/2 1/5 1/10")
    parser.add_argument("--importances", nargs="+", choices=IMPORTANCES, default=list(IMPORTANCES))
    parser.add_argument("--scopes", nargs="+", choices=SCOPES, default=list(SCOPES))
    parser.add_argument("--round-to", nargs="+", choices=("8", "free"), default=["8", "free"],
                        help="channel counts: multiples of 8, or free (resnet20 only)")
    parser.add_argument("--limit-train", type=int, default=0, help="first N train images only (smoke tests)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--force", action="store_true", help="recompute rows already in --out")
    parser.add_argument("--bn", choices=("eval", "train"), default="eval",
                        help="eval: BatchNorms stay the folded identities, in eval mode; train: BatchNorms get the "
                        "real statistics of their inputs (benchmarks/_bn_calibrate.py) and fine-tune in train mode")
    parser.add_argument("--threads", type=int, default=THREADS)
    parser.add_argument("--clip5", action="store_true",
                        help="the recipe with the gradient norm clipped to 5 and no weight decay (the variant a "
                        "validation split preferred for edgeprune's distillation), instead of clip 1, decay 5e-4")
    args = parser.parse_args(argv)
    for target in args.targets:
        if not 0 < Fraction(target) < 1:
            parser.error(f"target {target} is not a fraction between 0 and 1")
    return args


def round_tos(model: str, chosen: list[str]) -> list[int | None]:
    """round_to=8 for every model; free channel counts (round_to=None) for resnet20 as well."""
    offered = ["8", "free"] if model.startswith("resnet20") else ["8"]
    return [8 if r == "8" else None for r in offered if r in chosen]


def row_key(row: dict) -> tuple:
    return (row["model"], row["importance"], row["scope"], row["round_to"], row["target"], row["train_images"],
            row.get("bn", "eval"), row.get("clip_norm", 1.0))


# ---------------------------------------------------------------- data, evaluation, fine-tune


def normalise(scaled: torch.Tensor) -> torch.Tensor:
    """[0, 1] images -> standardised, as ``fashion_mnist.normalise`` does on uint8 (and the reference training)."""
    return (scaled - fashion_mnist.MEAN) / fashion_mnist.STD


@torch.no_grad()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    model.eval()
    correct = 0
    for start in range(0, len(images), EVAL_BATCH):
        correct += int((model(images[start:start + EVAL_BATCH]).argmax(1) == labels[start:start + EVAL_BATCH]).sum())
    return round(100.0 * correct / len(images), 2)


def fine_tune(model: nn.Module, scaled: torch.Tensor, labels: torch.Tensor, bn: str = "eval") -> tuple[float, float]:
    """The ``_recipe`` epoch(s) with BatchNorms in eval mode (``bn="eval"``) or, calibrated first, in train
    mode (``bn="train"``); returns (seconds, mean train loss)."""
    torch.manual_seed(_recipe.SEED)
    if bn == "train":
        import _bn_calibrate

        _bn_calibrate.calibrate(model, normalise(scaled[:5120]))
    gen = torch.Generator().manual_seed(_recipe.SEED)
    optimizer = _recipe.make_optimizer(model.parameters())
    model.train()
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and bn == "eval":
            module.eval()
    n = len(scaled)
    per_epoch = _recipe.steps_per_epoch(n)
    total = _recipe.EPOCHS * per_epoch
    loss_sum, step = 0.0, 0
    began = time.perf_counter()
    for _ in range(_recipe.EPOCHS):
        order = torch.randperm(n, generator=gen)
        for i in range(per_epoch):
            index = order[i * _recipe.BATCH:(i + 1) * _recipe.BATCH]
            x = normalise(_recipe.augment(scaled[index], gen))
            for group in optimizer.param_groups:
                group["lr"] = _recipe.cosine_lr(step, total, _recipe.LR)
            loss = F.cross_entropy(model(x), labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += float(loss.detach()) * len(index)
            step += 1
    seconds = time.perf_counter() - began
    model.eval()
    return seconds, loss_sum / (n * _recipe.EPOCHS)


# ---------------------------------------------------------------- pruning


def classifier_of(model: nn.Module) -> nn.Linear:
    return [m for m in model.modules() if isinstance(m, nn.Linear)][-1]


def taylor_gradients(model: nn.Module, scaled: torch.Tensor, labels: torch.Tensor, step: int) -> None:
    """Accumulate the cross-entropy gradients of TAYLOR_BATCHES labelled train batches (eval mode)."""
    gen = torch.Generator().manual_seed(TAYLOR_SEED + step)
    index = torch.randperm(len(scaled), generator=gen)[:TAYLOR_BATCHES * _recipe.BATCH]
    model.eval()
    model.zero_grad(set_to_none=True)
    for start in range(0, len(index), _recipe.BATCH):
        chunk = index[start:start + _recipe.BATCH]
        F.cross_entropy(model(normalise(scaled[chunk])), labels[chunk]).backward()


def prune_trajectory(tp, base: nn.Module, importance: str, scope: str, round_to: int | None,
                     targets: list[str], scaled: torch.Tensor, labels: torch.Tensor) -> dict[str, dict]:
    """Step one MetaPruner until every target is met (or the steps run out); a snapshot per target."""
    example = torch.zeros(1, 1, 28, 28)
    model = copy.deepcopy(base).eval()
    base_macs, base_params = tp.utils.count_ops_and_params(model, example)
    began = time.perf_counter()
    imp = tp.importance.MagnitudeImportance(p=1) if importance == "l1" else tp.importance.TaylorImportance()
    pruner = tp.pruner.MetaPruner(
        model, example, importance=imp, global_pruning=scope == "global", pruning_ratio=PRUNING_RATIO,
        iterative_steps=ITERATIVE_STEPS, ignored_layers=[classifier_of(model)], round_to=round_to)
    pending = sorted(targets, key=Fraction, reverse=True)
    found: dict[str, dict] = {}
    macs, params = base_macs, base_params

    def snapshot(target: str, reached: bool) -> None:
        found[target] = {"model": copy.deepcopy(model), "macs": int(macs), "params": int(params),
                         "steps": pruner.current_step, "prune_s": time.perf_counter() - began,
                         "reached": reached, "macs_original": int(base_macs), "params_original": int(base_params)}

    while pending and pruner.current_step < pruner.iterative_steps:
        if importance == "taylor":
            taylor_gradients(model, scaled, labels, pruner.current_step)
        pruner.step()
        model.zero_grad(set_to_none=True)
        macs, params = tp.utils.count_ops_and_params(model, example)
        while pending and Fraction(int(macs), int(base_macs)) <= Fraction(pending[0]):
            snapshot(pending.pop(0), True)
    for target in pending:
        snapshot(target, False)
    return found


# ---------------------------------------------------------------- results


def note(row: dict) -> str:
    """Why a target was not reached, when it was not."""
    if row["reached"]:
        return ""
    text = f"target not reached: after {row['prune_steps']} steps the MACs are {row['achieved_mac_fraction']:.3f}"
    if row["round_to"] and all(c == row["round_to"] for c in row["conv_channels"]):
        text += f"; every conv is at the round_to floor of {row['round_to']} channels"
    return text


def load_results(path: Path) -> dict:
    if path.is_file():
        return json.loads(path.read_text())
    return {"rows": []}


def write_results(path: Path, results: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    os.replace(tmp, path)


def table(rows: list[dict]) -> str:
    head = ("| model | importance | scope | round_to | target | achieved MACs | params | acc original | "
            "acc pruned | acc fine-tuned | prune s | fine-tune s | note |")
    lines = [head, "|" + "---|" * 13]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['importance']} | {r['scope']} | {r['round_to'] or 'free'} | {r['target']} | "
            f"{r['achieved_mac_fraction']:.3f} | {r['params']:,} | {r['acc_original']:.2f} | {r['acc_pruned']:.2f} | "
            f"{r['acc_finetuned']:.2f} | {r['prune_s']:.1f} | {r['finetune_s']:.1f} | {r.get('note', '')} |")
    return "\n".join(lines)


def metadata(bn: str = "eval") -> dict:
    """What the rows were computed with (the last run's command)."""
    return {
        # The 1.6.1 wheel's tp.__version__ still says 1.6.0; the installed distribution's version is the truth.
        "tool": f"torch-pruning {importlib.metadata.version('torch-pruning')}",
        "torch": torch.__version__,
        "threads": THREADS,
        "pruner": {"class": "tp.pruner.MetaPruner", "pruning_ratio": PRUNING_RATIO,
                   "iterative_steps": ITERATIVE_STEPS, "ignored": "final classifier Linear",
                   "l1": "tp.importance.MagnitudeImportance(p=1)",
                   "taylor": f"tp.importance.TaylorImportance(), gradients of {TAYLOR_BATCHES} train batches "
                             f"of {_recipe.BATCH} before each step",
                   "macs": "tp.utils.count_ops_and_params on a 1x1x28x28 input"},
        "recipe": {"epochs": _recipe.EPOCHS, "optimizer": "SGD nesterov", "lr": _recipe.LR,
                   "schedule": "cosine to 0 per step, no warm-up", "momentum": _recipe.MOMENTUM,
                   "weight_decay": _recipe.WEIGHT_DECAY, "batch": _recipe.BATCH, "seed": _recipe.SEED,
                   "augmentation": f"hflip p={_recipe.FLIP_P}, shift <= {_recipe.SHIFT} px",
                   "batchnorm": "eval mode (folded identities)" if bn == "eval"
                   else "calibrated to the inputs' statistics (benchmarks/_bn_calibrate.py), then train mode"},
        "command": " ".join(["python", *sys.argv]),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch_pruning as tp
    from reference_torchscript import rebuild

    from edgeprune.reference import record_path

    torch.set_num_threads(args.threads)
    if args.clip5:
        _recipe.CLIP_NORM, _recipe.WEIGHT_DECAY = 5.0, 0.0
    torch.manual_seed(_recipe.SEED)
    train_images, train_labels = fashion_mnist.load_split("train")
    test_images, test_labels = fashion_mnist.load_split("test")
    if args.limit_train:
        train_images, train_labels = train_images[:args.limit_train], train_labels[:args.limit_train]
    scaled = torch.from_numpy(train_images).float()[:, None] / 255.0
    labels = torch.from_numpy(train_labels)
    test_x, test_y = torch.from_numpy(fashion_mnist.normalise(test_images)), torch.from_numpy(test_labels)
    n_train = len(scaled)

    results = load_results(args.out)
    results.update(metadata(args.bn))
    done = {row_key(r): dict(r, note=note(r)) for r in results["rows"]}
    targets = sorted(args.targets, key=Fraction, reverse=True)
    selected: list[tuple] = []

    for name in args.models:
        record = json.loads(record_path(name).read_text())
        base, _ = rebuild(name)
        acc_original = accuracy(base, test_x, test_y)
        print(f"{name}: rebuilt torch module test accuracy {acc_original:.2f}% "
              f"(record's ONNX accuracy {record['onnx_test_accuracy']:.2f}%)", flush=True)
        if abs(acc_original - record["onnx_test_accuracy"]) > MAX_ACCURACY_GAP:
            raise SystemExit(f"error: the rebuilt {name} does not match its ONNX model; no rows computed")
        for round_to in round_tos(name, args.round_to):
            for importance in args.importances:
                for scope in args.scopes:
                    keys = [(name, importance, scope, round_to, t, n_train, args.bn, _recipe.CLIP_NORM) for t in targets]
                    selected += keys
                    todo = [k[4] for k in keys if args.force or k not in done]
                    if not todo:
                        continue
                    print(f"  {importance} {scope} round_to={round_to}: pruning to {', '.join(todo)}", flush=True)
                    snaps = prune_trajectory(tp, base, importance, scope, round_to, todo, scaled, labels)
                    for target in todo:
                        snap = snaps[target]
                        model = snap["model"]
                        acc_pruned = accuracy(model, test_x, test_y)
                        load_before = os.getloadavg()[0]
                        seconds, loss = fine_tune(model, scaled, labels, args.bn)
                        load = [round(load_before, 2), round(os.getloadavg()[0], 2)]
                        fraction = snap["macs"] / snap["macs_original"]
                        row = {
                            "model": name, "importance": importance, "scope": scope, "round_to": round_to,
                            "target": target, "target_fraction": float(Fraction(target)),
                            "achieved_mac_fraction": round(fraction, 4), "reached": snap["reached"],
                            "macs": snap["macs"], "macs_original": snap["macs_original"],
                            "params": snap["params"], "params_original": snap["params_original"],
                            "conv_channels": [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)],
                            "acc_original": acc_original, "acc_pruned": acc_pruned,
                            "acc_finetuned": accuracy(model, test_x, test_y),
                            "prune_steps": snap["steps"], "prune_s": round(snap["prune_s"], 2),
                            "finetune_s": round(seconds, 2), "finetune_images_per_s": round(n_train / seconds, 1),
                            "finetune_train_loss": round(loss, 5), "train_images": n_train,
                            "load_avg_1min": load, "bn": args.bn, "clip_norm": _recipe.CLIP_NORM,
                            "weight_decay": _recipe.WEIGHT_DECAY,
                        }
                        row["note"] = note(row)
                        done[row_key(row)] = row
                        if (name, importance, scope, round_to, target) == PLAIN_EPOCH_ROW and args.bn == "eval":
                            results["plain_torch_epoch"] = {
                                "what": "one epoch of the fine-tune recipe in plain torch (augmentation, forward, "
                                        "backward, SGD step) of the Torch-Pruning-pruned nn.Module",
                                "model": name, "importance": importance, "scope": scope, "round_to": round_to,
                                "target": target, "images": n_train, "batch": _recipe.BATCH, "threads": THREADS,
                                "seconds": round(seconds, 2), "images_per_s": round(n_train / seconds, 1),
                                "load_avg_1min": load}
                        results["rows"] = [dict(r, note=note(r)) for r in done.values()]
                        write_results(args.out, results)
                        print(f"    {target}: MACs {fraction:.3f}{'' if snap['reached'] else ' (NOT REACHED)'}, "
                              f"{snap['params']:,} params, acc {acc_pruned:.2f} -> {row['acc_finetuned']:.2f}, "
                              f"prune {snap['prune_s']:.1f} s ({snap['steps']} steps), fine-tune {seconds:.1f} s",
                              flush=True)

    results["rows"] = [dict(r, note=note(r)) for r in done.values()]
    write_results(args.out, results)
    print()
    print(table([done[k] for k in selected if k in done]))
    if "plain_torch_epoch" in results:
        p = results["plain_torch_epoch"]
        print(f"\nplain-torch epoch ({p['model']} {p['importance']} {p['scope']} {p['target']}, "
              f"round_to={p['round_to']}): {p['seconds']:.1f} s, {p['images_per_s']:.0f} images/s")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
