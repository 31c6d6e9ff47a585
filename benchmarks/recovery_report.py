"""The recovery comparison as Markdown, from the two benchmarks' result files (nothing is re-measured).

    python benchmarks/recovery_report.py [--ours benchmarks/results/recovery.json]
        [--peer benchmarks/results/peer_torch_pruning.json] [--out docs/results-recovery-table.md]

Per model, channel counts (free, or in steps of 8) and MAC target: every Torch-Pruning row (importance,
scope), then edgeprune's rows; test accuracy on the 10,000 test images, drop in points, wall seconds.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGETS = {0.5: "1/2", 0.2: "1/5", 0.1: "1/10"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ours", default=str(REPO / "benchmarks" / "results" / "recovery.json"))
    parser.add_argument("--peer", default=str(REPO / "benchmarks" / "results" / "peer_torch_pruning.json"))
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    ours = json.loads(Path(args.ours).read_text())
    peer = json.loads(Path(args.peer).read_text())["rows"] if Path(args.peer).exists() else []
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
                lines.append(f"| {model} | {counts} | {target:.0%} | Torch-Pruning {row['importance']} {row['scope']}, "
                             f"1 epoch | {kept} | {row['acc_finetuned']:.2f}% | {drop:.2f} | "
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
