"""Text rendering of API results for a terminal."""

from __future__ import annotations


def human(count: float) -> str:
    for unit in ("", "K", "M", "G", "T"):
        if abs(count) < 1000:
            return f"{count:.1f}{unit}" if unit else f"{int(count)}"
        count /= 1000
    return f"{count:.1f}P"


def model_text(d: dict, limit: int | None = 40) -> str:
    lines = [f"model   {d['model']}  (opset {d['opset']}, sha256 {d['sha256'][:12]})"]
    for kind in ("inputs", "outputs"):
        for t in d[kind]:
            lines.append(f"{kind[:-1]:7} {t['name']}  {t['dtype']}  {t['shape']}")
    lines.append("ops     " + ", ".join(f"{op} x{n}" for op, n in d["ops"].items()))
    lines.extend(_cost_lines(d))
    lines.append(f"groups  {d['prunable_groups']} prunable, {d['frozen_groups']} frozen")
    groups = d["groups"] if limit is None else d["groups"][:limit]
    width = max((len(g["id"]) for g in groups), default=5)
    for g in groups:
        status = (
            "prunable"
            if g["prunable"]
            else "frozen: " + "; ".join(f"{r['node']} ({r['op']}) {r['reason']}" for r in g["frozen"][:2])
        )
        multiple = f" x{g['multiple']}" if g["multiple"] > 1 else ""
        lines.append(f"  {g['id']:<{width}} {g['channels']:>6} ch{multiple}  {status}")
    if limit is not None and len(d["groups"]) > limit:
        lines.append(f"  ... {len(d['groups']) - limit} more groups (--all-groups or --json to see them)")
    lines.extend(_block_lines(d))
    return "\n".join(lines)


def _block_lines(d: dict) -> list[str]:
    """The residual blocks depth pruning may remove, and why each other residual join may not go."""
    blocks, others = d.get("blocks", []), d.get("residual_joins_not_removable", [])
    if not blocks and not others:
        return []
    lines = [f"blocks  {len(blocks)} removable residual blocks, {len(others)} residual joins not removable"]
    width = max((len(b["id"]) for b in blocks + others), default=5)
    for b in blocks:
        macs = human(b["macs"]) if b["macs"] is not None else "?"
        inside = "" if b["internal_groups"] else "  (no group of its own: only a plan naming it removes it)"
        lines.append(f"  {b['id']:<{width}} {len(b['nodes']):>3} nodes, {b['layers']} layers, {macs} MACs{inside}")
    lines.extend(f"  {r['id']:<{width}} not removable: {r['reason']}" for r in others)
    return lines


def _cost_lines(d: dict) -> list[str]:
    """The cost at the stated input size; with height or width dynamic, which dimensions and how to fix them."""
    cost = d["cost"]
    if cost is None:
        from edgeprune.graph.shapes import template

        shapes = {t["name"]: tuple(None if x == "?" else x for x in t["shape"]) for t in d["inputs"]}
        open_dims: dict[str, list[str]] = {}
        for dim in d.get("dynamic", ()):
            named = f"'{dim['symbol']}'" if dim["symbol"] else "unnamed"
            open_dims.setdefault(dim["input"], []).append(f"axis {dim['axis']} ({named})")
        lines = [f"dynamic input '{name}': {', '.join(axes)}" for name, axes in open_dims.items()]
        specs = " ".join(f"--input-shape {template(name, shapes.get(name))}" for name in open_dims)
        return lines + [f"cost    not computed: the input size is dynamic; give it with {specs}"]
    at = " ".join(f"{name}={','.join(map(str, dims))}" for name, dims in d.get("input_shapes", {}).items())
    line = (
        f"cost    {human(cost['macs'])} MACs ({human(cost['flops'])} FLOPs), {human(cost['params'])} params, "
        f"{human(cost['weight_bytes'])}B weights, {human(cost['peak_activation_bytes'])}B peak activations per image"
    )
    return [line + (f" at {at}" if at else "")]


def prune_text(result: dict) -> str:
    before, after = result["cost_before"], result["cost_after"]
    lines = [f"wrote {result['output']}"]
    for key, label in (("macs", "MACs"), ("params", "params"), ("weight_bytes", "weight bytes")):
        ratio = after[key] / before[key] if before[key] else 1.0
        lines.append(f"  {label:<13} {human(before[key]):>9} -> {human(after[key]):>9}  ({ratio:.1%} kept)")
    proof = result.get("verification")
    if proof is None:
        lines.append("  proof         skipped (--no-verify)")
    else:
        lines.append(
            f"  proof         matches the masked original: max relative difference {proof['max_rel']:.2e} "
            f"(tolerance {proof['tolerance']:.0e})"
        )
    return "\n".join(lines)


def _pct(value) -> str:
    return "n/a" if value is None else f"{value:.2%}"


def optimize_text(result, verbose: int | None = None) -> str:
    """A short headline and where the files are; with ``-v`` (the group's option, read from the click
    context when not given) the channels of every group and the latency of every layer too."""
    if verbose is None:
        verbose = _verbosity()
    report = result.report
    before, after = report.cost_before, report.cost_after
    folder = result.report_path.parent
    names = ", ".join(name for name in _RUN_FILES if (folder / name).is_file())
    lines = [f"wrote {folder}/: {names}"]
    lines.append("  " + _headline(report))
    cuts = [
        f"{label} {human(before[key])} -> {human(after[key])} ({after[key] / before[key] if before[key] else 1.0:.1%} kept)"
        for key, label in (("macs", "MACs"), ("params", "params"), ("weight_bytes", "size"))
    ]
    lines.append("  cost      " + ", ".join(cuts))
    if verbose:
        lines.extend(_channel_lines(report.layers))
    final, plain = report.final_comparison, report.comparison_pruned
    if final.get("accuracy_original") is not None:
        lines.append(
            f"  accuracy  {_pct(final['accuracy_original'])} -> {_pct(final['accuracy_pruned'])} "
            f"on {final['images']} held-out images (without reconstruction {_pct(plain['accuracy_pruned'])})"
        )
    lines.append(
        f"  agreement {_pct(final.get('agreement'))} top-1 with the original, output error "
        f"{final['output_error']:.4f} (without reconstruction {_pct(plain.get('agreement'))}, "
        f"{plain['output_error']:.4f})"
    )
    if report.recovery:
        lines.extend(_recovery_lines(report.recovery))
    lines.append(f"  proof     pruned == masked original within {report.verification['max_rel']:.1e} (relative)")
    if report.latency:
        from edgeprune.cli.render_latency import latency_lines

        lines.extend(latency_lines(report.latency, layers=bool(verbose)))
    lines += [
        f"  warning   {text}" for text in report.warnings if text not in (report.latency or {}).get("warnings", ())
    ]
    if not verbose:
        lines.append(f"  (-v: the channels and latency of every layer; {folder / 'report.html'}: the figures)")
    return "\n".join(lines)


_RUN_FILES = ("model.pruned.onnx", "plan.json", "report.json", "report.md", "report.html", "sweep.json", "sweep.md")


def _verbosity() -> int:
    import click

    ctx = click.get_current_context(silent=True)
    return int(ctx.find_root().params.get("verbose") or 0) if ctx is not None else 0


def _headline(report) -> str:
    from edgeprune.reporting.text import headline

    return headline(report.to_dict()).split("; ")[0]  # the costs follow on their own line


def _channel_lines(layers) -> list[str]:
    changed = [row for row in layers if row["kept"] != row["channels"]]
    lines = [f"  channels  {len(changed)} of {len(layers)} groups pruned:"]
    for row in layers:
        if row["prunable"]:
            lines.append(f"    {row['group']:<48} {row['channels']:>5} -> {row['kept']:<5}")
    return lines


def _recovery_lines(recovery: dict) -> list[str]:
    """One line per distillation run: held-out measure before and after, steps, time."""
    lines = []
    runs = [step["recovery"] for step in recovery["steps"]] or [recovery["final"]]
    for index, run in enumerate(runs, 1):
        label = "recovery " if len(runs) == 1 else f"cut {index}/{len(runs)}"
        pct = run["measure"] != "neg_rel_error"
        before = f"{run['before']:.2%}" if pct else f"{run['before']:.4g}"
        best = f"{run['best']:.2%}" if pct else f"{run['best']:.4g}"
        lines.append(
            f"  {label} distilled {run['steps']} steps ({run['epochs']:g} epochs) in {run['seconds']:.0f} s: "
            f"held-out {run['measure'].replace('neg_rel_error', '-rel. error')} {before} -> {best}"
            f"{'' if run['stopped'] == 'length' else ' (stopped: ' + run['stopped'] + ')'}"
        )
    return lines


def optimize_summary(result) -> dict:
    """What `optimize --json` prints: the paths, the cuts, the held-out measure and the speed-ups."""
    report = result.report
    before, after = report.cost_before, report.cost_after
    final = report.final_comparison
    latency = report.latency or {}
    host = latency.get("measured_host") or {}
    return {
        "model": str(result.model_path),
        "plan": str(result.plan_path),
        "report": str(result.report_path),
        "report_md": str(result.report_path.with_suffix(".md")),
        "report_html": str(result.report_path.with_suffix(".html")),
        "macs_kept": after["macs"] / before["macs"] if before["macs"] else 1.0,
        "params_kept": after["params"] / before["params"] if before["params"] else 1.0,
        "measure": final.get("measure"),
        "drop_points": final.get("drop_points"),
        "device": latency.get("device"),
        "predicted_speedup": latency.get("predicted_speedup"),
        "measured_speedup_here": host.get("speedup"),
        "goal": None if report.goal is None else {k: report.goal[k] for k in ("max_drop_points", "measure")},
    }


def dry_run_text(profile) -> str:
    """The search profile of `optimize --dry-run`."""
    return "\n".join(
        [
            f"{profile.model} on {profile.device}: {profile.groups_prunable} prunable groups, {profile.groups_frozen} frozen; "
            f"floor {profile.floor:.0%}, channels in steps of {profile.alignment}",
            f"  MACs      {human(profile.macs):>9} -> down to {profile.min_macs_fraction:.1%} kept",
            f"  params    {human(profile.params):>9} -> down to {profile.min_params_fraction:.1%} kept",
            f"  latency   {profile.latency_ms:.3g} ms predicted -> down to {profile.min_latency_ms:.3g} ms "
            f"({profile.max_speedup:.2f}x at most)",
            f"  asked     {profile.budget}: {'reachable' if profile.reachable else 'NOT reachable'}",
            f"            {profile.reason}",
        ]
    )
