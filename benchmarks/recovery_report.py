"""The recovery comparison as Markdown, from the two benchmarks' result files (nothing is re-measured).

    python benchmarks/recovery_report.py [--ours benchmarks/results/recovery.json]
        [--peer benchmarks/results/peer_torch_pruning.json] [--out docs/results-recovery-table.md]

Per model, channel counts (free, or in steps of 8) and MAC target: every Torch-Pruning row (importance,
scope, BatchNorm mode), then edgeprune's rows; test accuracy on the 10,000 test images, drop in points, wall seconds.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGETS = {0.5: "1/2", 0.2: "1/5", 0.1: "1/10"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ours", nargs="+", default=[str(REPO / "benchmarks" / "results" / f"{name}.json")
                                                      for name in ("recovery", "recovery_clip5")])
    parser.add_argument("--peer", nargs="+", default=[str(REPO / "benchmarks" / "results" / f"{name}.json")
                                                      for name in ("peer_torch_pruning", "peer_torch_pruning_bn_train",
                                                                   "peer_torch_pruning_clip5")])
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    ours = [row for path in map(Path, args.ours) if path.exists() for row in json.loads(path.read_text())]
    peer = [row for path in map(Path, args.peer) if path.exists() for row in json.loads(path.read_text())["rows"]]
    text = render(ours, peer)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    return 0


def render(ours: list[dict], peer: list[dict]) -> str:
    lines = ["| model | counts | MACs target | tool and row | MACs kept | test accuracy | drop (points) | wall s |",
             "|---|---|---|---|---|---|---|---|"]
    keys = sorted({(r["model"], r["align"], r["target"]) for r in ours}, key=lambda k: (k[0], k[1], -k[2]))
    for model, align, target in keys:
        counts = "free" if align == 1 else "x8"
        for row in peer:
            if row["model"] == model and row["target"] == TARGETS.get(target) and (row["round_to"] or 1) == align:
                kept = f"{row['achieved_mac_fraction']:.1%}" + ("" if row["reached"] else " (not reached)")
                drop = row["acc_original"] - row["acc_finetuned"]
                bn = "BatchNorm calibrated, train mode" if row.get("bn") == "train" else "BatchNorm frozen"
                bn += ", clip 5" if row.get("clip_norm", 1.0) == 5.0 else ""
                lines.append(f"| {model} | {counts} | {target:.0%} | Torch-Pruning {row['importance']} {row['scope']}, "
                             f"1 epoch, {bn} | {kept} | {row['acc_finetuned']:.2f}% | {drop:.2f} | "
                             f"{row['prune_s'] + row['finetune_s']:.0f} |")
        for r in ours:
            if (r["model"], r["align"], r["target"]) != (model, align, target):
                continue
            if "unreachable" in r:
                lines.append(f"| {model} | {counts} | {target:.0%} | edgeprune {r['row']} | unreachable | | | |")
                continue
            lines.append(f"| {model} | {counts} | {target:.0%} | edgeprune {r['row']} | {r['macs_kept']:.1%} | "
                         f"{r['accuracy'] * 100:.2f}% | {r['drop_points']:.2f} | {r['seconds']:.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
