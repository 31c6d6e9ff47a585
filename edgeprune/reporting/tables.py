"""The tables of a report made from the run's objects: channel groups, the plan in numbers, the per-layer
table (channels, MACs, latency on the device, the least-squares refit, what recovery moved), and the
warnings gathered from every stage."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

SMALL_HELD_OUT = 100  # below this many held-out images, one image moves the measure by more than a point
REFITTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def group_rows(analysis, plan, scores) -> tuple[dict, ...]:
    """One row per channel group that a layer produces: channels, kept, and why a frozen one is frozen."""
    rows = []
    for group in analysis.groups:
        if not group.producers:
            continue
        score = scores.get(group.id)
        rows.append(
            {
                "group": group.id,
                "channels": group.channels,
                "kept": len(plan.kept.get(group.id, range(group.channels))),
                "prunable": group.prunable,
                "frozen": [str(r) for r in group.frozen],
                "scored_by": (score.fallback or score.criterion) if score else None,
            }
        )
    return tuple(rows)


def plan_summary(plan, groups: Sequence[Mapping]) -> dict:
    """The plan in a few numbers: how it was chosen, how many groups it cut, the channels it kept."""
    prunable = [g for g in groups if g["prunable"]]
    return {
        "strategy": plan.strategy,
        "criterion": plan.criterion,
        "seed": plan.seed,
        "model_sha256": plan.model_sha256,
        "budget": dict(plan.settings.get("budget", {})),
        "groups": len(groups),
        "prunable_groups": len(prunable),
        "frozen_groups": len(groups) - len(prunable),
        "pruned_groups": sum(g["kept"] < g["channels"] for g in prunable),
        "channels_before": sum(int(g["channels"]) for g in prunable),
        "channels_after": sum(int(g["kept"]) for g in prunable),
    }


def layer_table(
    latency: Mapping | None, reconstruction: Mapping | None, moved: Mapping[str, float] | None
) -> list[dict]:
    """One row per layer the latency model prices (convs and gemms, in graph order), joined by node name with
    the refit of that layer and with how far recovery moved its weights.

    ``share``: the layer's part of the model's predicted latency before pruning; ``measured``: true when
    that figure comes from a latency table measured on the device, false when from the roofline."""
    rows = list((latency or {}).get("layers", ()))
    total = sum(float(r["predicted_ms_before"]) for r in rows) or 1.0
    refits = {r["node"]: r for r in (reconstruction or {}).get("layers", ())}
    table = []
    for row in rows:
        refit = refits.get(row["node"])
        table.append(
            {
                "node": row["node"],
                "op": row["op"],
                "channels_before": list(row["channels_before"]),
                "channels_after": list(row["channels_after"]),
                "macs_before": int(row["macs_before"]),
                "macs_after": int(row["macs_after"]),
                "predicted_ms_before": float(row["predicted_ms_before"]),
                "predicted_ms_after": float(row["predicted_ms_after"]),
                "share": float(row["predicted_ms_before"]) / total,
                "measured": row["source"] == "table",
                "refit_error_before": _finite(refit, "error_before"),
                "refit_error_after": _finite(refit, "error_after"),
                "refit_applied": bool(refit["applied"]) if refit else None,
                "recovery_change": None if moved is None else moved.get(row["node"]),
            }
        )
    return table


def _finite(row: Mapping | None, key: str) -> float | None:
    if row is None or row.get(key) is None:
        return None
    value = float(row[key])
    return value if np.isfinite(value) else None


def weight_change(before, after) -> dict[str, float]:
    """Per conv/gemm node, how far distillation moved its weight: ||W_after - W_before|| / ||W_before||
    (the models ``before`` and ``after`` recovery, same shapes)."""
    from onnx import numpy_helper

    initial = {t.name: t for t in before.proto.graph.initializer}
    trained = {t.name: t for t in after.proto.graph.initializer}
    moved = {}
    for node in after.proto.graph.node:
        if node.op_type not in REFITTED_OPS or len(node.input) < 2:
            continue
        name = node.input[1]
        if name not in initial or name not in trained:
            continue
        a, b = numpy_helper.to_array(initial[name]), numpy_helper.to_array(trained[name])
        if a.shape != b.shape:
            continue
        scale = float(np.linalg.norm(a))
        moved[node.name] = float(np.linalg.norm(b - a)) / scale if scale > 0 else 0.0
    return moved


def gather_warnings(latency: Mapping | None, recovery: Mapping | None, held_out: int, scoring: Mapping) -> list[str]:
    """Every stage's warnings in one list, and the report's own about how far its evidence goes."""
    found = list((latency or {}).get("warnings", ()))
    for run in _recovery_runs(recovery):
        found.extend(run.get("warnings", ()))
    if held_out < SMALL_HELD_OUT:
        found.append(
            f"the held-out split has {held_out} images: one image moves its measure by {100 / max(held_out, 1):.2g} "
            "points; judge on more (a larger --limit or --held-out)"
        )
    fallback = scoring.get("fallback_groups") or []
    if fallback:
        found.append(f"{len(fallback)} group(s) could not be scored by {scoring.get('criterion')} and fell back")
    return list(dict.fromkeys(found))  # once each, in order


def _recovery_runs(recovery: Mapping | None) -> list[Mapping]:
    if not recovery:
        return []
    runs = [step["recovery"] for step in recovery.get("steps", ())]
    return runs or ([recovery["final"]] if recovery.get("final") else [])
