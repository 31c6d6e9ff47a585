"""Markdown tables of `bench_allocation.py` and `bench_evaluator_rank.py` results (their --json files).

    python benchmarks/allocation_report.py --allocation a.json b.json --rank r.json s.json > tables.md

One table per model: test accuracy (and validation) per strategy, MAC target and alignment, with search
time; the validation summary the default strategy was chosen on; the rank correlations of the evaluators.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

ORDER = ("uniform, l1", "global ranking, l1", "mi + refit-error (old default)", "knapsack",
         "rl, entropy reward", "rl, accuracy reward", "rl, agreement reward", "rl, refit reward")
TARGETS = ("2x", "5x", "10x")


def merged(paths) -> dict:
    """model -> {"original": ..., "rows": [...]}: later files add rows (and replace a row of the same key)."""
    found: dict = {}
    for path in paths:
        for model, data in json.loads(Path(path).read_text()).items():
            entry = found.setdefault(model, {"original": data["original"], "rows": {}})
            for row in data["rows"]:
                entry["rows"][(row["target"], row["align"], row["method"])] = row
    return found


def accuracy_table(model: str, entry: dict, split: str = "test") -> str:
    rows, original = entry["rows"], entry["original"][split]
    aligns = sorted({a for _, a, _ in rows})
    columns = [(t, a) for a in aligns for t in TARGETS if any((t, a, m) in rows for m in ORDER)]
    head = " | ".join(f"{t} {'free' if a == 1 else f'steps of {a}'}" for t, a in columns)
    lines = [f"Model `{model}`: {split} accuracy {original:.2%} unpruned.", "",
             f"| method | {head} |", "|---|" + "---|" * len(columns)]
    for method in ORDER:
        cells = []
        for t, a in columns:
            row = rows.get((t, a, method))
            cells.append(f"{row[split]:.2%} ({row['search_s']:.0f} s)" if row else "")
        if any(cells):
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def gains(found: dict, split: str) -> str:
    """Per model and column: the best new strategy's gain over the old default, in points."""
    lines = [f"| model | column | best new ({split}) | gain over the old default (points) |", "|---|---|---|---|"]
    for model, entry in found.items():
        rows = entry["rows"]
        for t, a in sorted({(t, a) for t, a, _ in rows}, key=lambda k: (k[1], TARGETS.index(k[0]))):
            old = rows.get((t, a, "mi + refit-error (old default)"))
            new = [rows[(t, a, m)] for m in ORDER[3:] if (t, a, m) in rows]
            if old and new:
                best = max(new, key=lambda r: r[split])
                lines.append(f"| {model} | {t}, align {a} | {best['method']} {best[split]:.2%} | "
                             f"{(best[split] - old[split]) * 100:+.2f} |")
    return "\n".join(lines)


def rank_table(paths) -> str:
    from bench_evaluator_rank import spearman

    lines = ["| model | figure | 5x | 10x | ms per plan |", "|---|---|---|---|---|"]
    for path in paths:
        for model, data in json.loads(Path(path).read_text()).items():
            rows = data["rows"]
            for label in [k for k in rows[0] if k not in ("target", "plan", "truth") and not k.endswith(" s")]:
                cells = []
                for target in ("5x", "10x"):
                    mine = [r for r in rows if r["target"] == target]
                    cells.append(f"{spearman([r[label] for r in mine], [r['truth'] for r in mine]):+.2f}" if mine else "")
                evaluator = label.split(",")[0]
                ms = np.mean([r[f"{evaluator} s"] for r in rows]) * 1000 if f"{evaluator} s" in rows[0] else float("nan")
                lines.append(f"| {model} | {label} | " + " | ".join(cells) + f" | {ms:.0f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--allocation", nargs="*", default=[])
    parser.add_argument("--rank", nargs="*", default=[])
    args = parser.parse_args(argv)
    found = merged(args.allocation)
    for model, entry in found.items():
        print(accuracy_table(model, entry), end="\n\n")
    for split in ("validation", "test"):
        print(gains(found, split), end="\n\n")
    if args.rank:
        print(rank_table(args.rank))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
