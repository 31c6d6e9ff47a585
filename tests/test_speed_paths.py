"""The fast paths give the results of the slow ones: reconstruction level by level (passes that compute each
node once, fits from streamed sums, rows spooled to disk, fits from scoring's statistics) against refitting
one layer at a time from its whole rows, and the in-place greedy removal against copying its matrices."""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import pytest
from corpus import export_corpus_model
from onnx import numpy_helper

from edgeprune.analysis import analyze
from edgeprune.calibration import load_calibration
from edgeprune.capture.grams import capture_grams, fixed_inputs
from edgeprune.capture.references import rows_at
from edgeprune.capture.rows import outputs_at, patches
from edgeprune.capture.session import ActivationRunner
from edgeprune.capture.spool import Spool, SpoolBudget
from edgeprune.graph import load_model
from edgeprune.graph.load import export_clean
from edgeprune.graph.model import ModelGraph
from edgeprune.reconstruct import reconstruct
from edgeprune.reconstruct.levels import sites
from edgeprune.reconstruct.segments import SegmentedRun
from edgeprune.reconstruct.solve import rectified_fit, relative_error, ridge_fit
from edgeprune.reconstruct.targets import find_targets, reference_tensors
from edgeprune.reconstruct.weights import parameters, store
from edgeprune.scoring.removal import removal_scores
from edgeprune.surgery import apply_plan, simple_plan

SETTINGS = {"samples_per_image": 8, "ridge": 1e-3, "batch_size": 16, "provider": "cpu", "seed": 0}


def _case(corpus_dir, tmp_path, name: str, images: int = 48, ratio: float = 0.5):
    model = load_model(export_corpus_model(name, "legacy", corpus_dir))
    analysis = analyze(model)
    shape = tuple(model.shapes[model.input_names[0]][1:])
    values = np.random.default_rng(0).standard_normal((images, *shape)).astype(np.float32)
    np.savez(tmp_path / f"{name}.npz", **{model.input_names[0]: values})
    data = load_calibration(tmp_path / f"{name}.npz", model)
    plan = simple_plan(analysis, ratio)
    return model, analysis, data, plan, apply_plan(model, analysis, plan)


def _one_by_one(original, pruned, analysis, plan, data, samples_per_image, ridge, batch_size, provider, seed):
    """Reconstruction as it was first written: each layer in topological order, its whole rows taken by a full
    pass of the current network, fitted by `solve` (the reference the level-by-level path must match)."""
    keep = analysis.keep_mask(plan.kept)
    targets, _ = find_targets(original, analysis, keep, "downstream")
    runner = ActivationRunner(original, sorted({t.reference for t in targets}), provider)
    for t in targets:
        t.y_rows, t.positions = [], sites(t, original.shapes[t.output], data.count, samples_per_image, seed)
    first = 0
    for batch, values in runner.stream(data.batches(batch_size)):
        n = len(batch.indices)
        for t in targets:
            ref = values[t.reference]
            at = (
                None
                if t.positions is None
                else t.positions[(t.positions[:, 0] >= first) & (t.positions[:, 0] < first + n)]
            )
            t.y_rows.append(
                ref[:, t.kept_out].reshape(n, -1) if at is None else outputs_at(ref[:, t.kept_out], first, at)
            )
        first += n
    graph = pruned.gs_graph()
    nodes = {node.name: node for node in graph.nodes}
    errors = []
    for t in targets:
        current = ModelGraph(export_clean(graph), {}, {})
        addend = t.addend if t.addend in graph.tensors() else None
        rows = ActivationRunner(current, [t.input] + ([addend] if addend else []), provider)
        x_rows, s_rows, first = [], [], 0
        for batch, values in rows.stream(data.batches(batch_size)):
            n = len(batch.indices)
            if t.positions is None:
                x_rows.append(values[t.input].reshape(n, -1))
            else:
                at = t.positions[(t.positions[:, 0] >= first) & (t.positions[:, 0] < first + n)]
                x_rows.append(patches(values[t.input], first, at, t.geometry))
                if addend:
                    s_rows.append(outputs_at(values[addend], first, at))
            first += n
        x, y = np.concatenate(x_rows), np.concatenate(t.y_rows)
        offset = np.concatenate(s_rows) if s_rows else np.zeros((1, y.shape[1]))
        y = y - offset
        matrix, bias = parameters(t, nodes[t.node], nodes)
        groups = t.geometry.groups if t.geometry is not None else 1
        new_matrix, new_bias = matrix.astype(np.float64).copy(), bias.astype(np.float64).copy()
        before = after = 0.0
        rows_out, cols = matrix.shape[0] // groups, x.shape[1] // groups
        for g in range(groups):
            out = slice(g * rows_out, (g + 1) * rows_out)
            xs, ys, shift = x[:, g * cols : (g + 1) * cols], y[:, out], offset[:, out]
            w, b = ridge_fit(xs, ys, ridge, t.intercept)
            if t.rectified:
                w, b = rectified_fit(xs, ys, ridge, w, b, shift, intercept=t.intercept)
            before += relative_error(xs, ys, matrix[out], bias[out], shift, t.rectified) ** 2
            after += relative_error(xs, ys, w, b, shift, t.rectified) ** 2
            new_matrix[out], new_bias[out] = w, b
        before, after = np.sqrt(before / groups), np.sqrt(after / groups)
        if after < before:
            store(t, nodes[t.node], nodes, new_matrix, new_bias)
        errors.append((t.node, float(before), float(min(before, after)), bool(after < before)))
    return ModelGraph(export_clean(graph), {}, {}), errors


def _weights(model) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t).astype(np.float64) for t in model.proto.graph.initializer}


def _worst(a: dict, b: dict) -> float:
    """The largest relative difference (Frobenius) of any weight."""
    assert a.keys() == b.keys()
    return max(np.linalg.norm(a[k] - b[k]) / max(np.linalg.norm(b[k]), 1e-12) for k in b)


@pytest.mark.parametrize("name", ["resnet_basic", "mobilenet_v2", "yolox"])
def test_levels_give_the_fits_of_one_layer_at_a_time(name, corpus_dir, tmp_path):
    model, analysis, data, plan, pruned = _case(corpus_dir, tmp_path, name)
    reference, errors = _one_by_one(model, pruned, analysis, plan, data, **SETTINGS)
    rebuilt, report = reconstruct(model, pruned, analysis, plan, data, **SETTINGS)
    fitted = [(r.node, r.error_before, r.error_after, r.applied) for r in report.layers if r.rows]
    assert [f[0] for f in fitted] == [e[0] for e in errors]
    assert [f[3] for f in fitted] == [e[3] for e in errors]  # the same layers kept their refit
    np.testing.assert_allclose([f[1:3] for f in fitted], [e[1:3] for e in errors], rtol=1e-6, atol=1e-9)
    assert _worst(_weights(rebuilt), _weights(reference)) < 1e-4  # float32 weights: rounding carries down the chain


def test_a_projection_shortcut_is_fitted_before_the_branch_it_is_added_to(corpus_dir, tmp_path):
    """The projection's target is the sum minus the other branch as it stands before that branch's refit;
    the branch then fits the sum minus the refitted projection (the order of one layer at a time)."""
    model, analysis, data, plan, pruned = _case(corpus_dir, tmp_path, "resnet_basic")
    from edgeprune.reconstruct.levels import levels

    keep = analysis.keep_mask(plan.kept)
    targets, _ = find_targets(model, analysis, keep, "downstream")
    level = dict(zip((t.node for t in targets), levels(targets, pruned.gs_graph())))
    projection = next(t for t in targets if "shortcut" in t.node)
    branch = next(t for t in targets if t.addend is not None and projection.output == t.addend)
    assert level[projection.node] < level[branch.node]


@pytest.mark.parametrize("name", ["mobilenet_v2", "convnext"])
def test_fits_from_the_scoring_statistics_equal_fits_from_a_pass(name, corpus_dir, tmp_path):
    model, analysis, data, plan, pruned = _case(corpus_dir, tmp_path, name, images=64)
    grams = fixed_inputs(model, analysis, capture_grams(model, analysis, data, samples_per_image=8, batch_size=16))
    plain, _ = reconstruct(model, pruned, analysis, plan, data, **SETTINGS)
    reused, report = reconstruct(model, pruned, analysis, plan, data, **SETTINGS, statistics=grams)
    a, b = _weights(reused), _weights(plain)
    reused_layers = {t.consumer.node for t in grams.grams}
    refit = [k for k in a if k.endswith(".refit") and any(k.startswith(n + ".") for n in reused_layers)]
    assert refit, "some layer was fitted from the statistics"
    assert max(np.linalg.norm(a[k] - b[k]) / np.linalg.norm(b[k]) for k in refit) < 1e-5
    assert _worst(a, b) < 1e-4
    assert report.layers  # and reported like the others


@pytest.mark.parametrize("name", ["resnet_basic", "mobilenet_v2", "convnext", "flatten_gemm_head"])
@pytest.mark.parametrize("memory", [None, 0])  # reconstruction's spools in memory, and in temporary files
def test_targets_kept_by_the_capture_pass_give_the_fits_of_a_pass_of_the_original(
    name, memory, corpus_dir, tmp_path, caplog
):
    model, analysis, data, plan, pruned = _case(corpus_dir, tmp_path, name, images=40)
    wanted = reference_tensors(model, analysis)
    grams = capture_grams(model, analysis, data, samples_per_image=8, batch_size=16, references=wanted)
    grams = replace(grams, grams=())  # only the kept tensors: no layer fitted from the Gram sums
    keep = analysis.keep_mask(plan.kept)
    targets, _ = find_targets(model, analysis, keep, "downstream")
    assert {t.reference for t in targets} <= set(grams.references)  # every target's tensor was kept
    options = {} if memory is None else {"memory": memory}
    with caplog.at_level(logging.INFO, logger="edgeprune.reconstruct.refit"):
        plain, _ = reconstruct(model, pruned, analysis, plan, data, **SETTINGS, **options)
        kept, report = reconstruct(model, pruned, analysis, plan, data, **SETTINGS, **options, statistics=grams)
    passes = [int(r.getMessage().split(" in ")[1].split()[0]) for r in caplog.records if "passes" in r.getMessage()]
    assert passes[1] < passes[0]  # the pass of the original was left out
    # the rows are the original's to float32 rounding (two sessions, fused differently); fits on 320 rows
    # of up to a few hundred columns carry that to about 1e-5 of the weights
    assert _worst(_weights(kept), _weights(plain)) < 1e-4
    assert [r.node for r in report.layers]
    runner = ActivationRunner(model, [t.reference for t in targets], "cpu")
    for t in targets:
        t.positions = sites(t, model.shapes[t.output], data.count, 8, 0)
        assert grams.references[t.reference].matches(t.positions, data.count)
        first, expected = 0, []
        for batch in data.batches(16):
            values = runner.run(batch.inputs)[t.reference]
            at = (
                None
                if t.positions is None
                else t.positions[(t.positions[:, 0] >= first) & (t.positions[:, 0] < first + len(values))]
            )
            expected.append(rows_at(values, t.layout, first, at))
            first += len(values)
        got = np.concatenate(list(grams.references[t.reference].spool.chunks()))
        np.testing.assert_allclose(got, np.concatenate(expected), rtol=1e-5, atol=1e-6 * np.abs(got).max())


@pytest.mark.parametrize("name", ["resnet_basic", "resnet_bottleneck", "mobilenet_v2", "convnext", "yolox"])
def test_the_capture_pass_computes_the_targets_from_the_rows_it_cuts(name, corpus_dir, tmp_path, monkeypatch):
    """Outputs, residual sums and bias Adds follow from the consumers' rows: the session is asked for nothing
    more than the consumers' inputs (the earlier test shows they are the tensors themselves)."""
    model, analysis, data, _, _ = _case(corpus_dir, tmp_path, name, images=16)
    asked, init = [], ActivationRunner.__init__

    def spy(self, graph, names, *args, **kwargs):
        asked.append(set(names))
        init(self, graph, names, *args, **kwargs)

    monkeypatch.setattr(ActivationRunner, "__init__", spy)
    grams = capture_grams(model, analysis, data, samples_per_image=8, references=reference_tensors(model, analysis))
    assert grams.references and asked == [{g.consumer.input for g in grams.grams}]


def test_targets_kept_at_other_sites_are_not_used(corpus_dir, tmp_path, caplog):
    model, analysis, data, plan, pruned = _case(corpus_dir, tmp_path, "resnet_basic", images=40)
    wanted = reference_tensors(model, analysis)
    grams = capture_grams(model, analysis, data, samples_per_image=4, batch_size=16, references=wanted)
    grams = replace(grams, grams=())
    with caplog.at_level(logging.INFO, logger="edgeprune.reconstruct.refit"):
        plain, _ = reconstruct(model, pruned, analysis, plan, data, **SETTINGS)
        kept, _ = reconstruct(model, pruned, analysis, plan, data, **SETTINGS, statistics=grams)  # 8 a image here
    passes = [r.getMessage().split(" in ")[1] for r in caplog.records if "passes" in r.getMessage()]
    assert passes[0] == passes[1]  # the original's pass still ran for every conv
    # only the classifier's rows (one an image, whatever the samples) were taken from the capture
    assert _worst(_weights(kept), _weights(plain)) < 1e-4


def test_statistics_of_other_sites_are_not_reused(corpus_dir, tmp_path):
    model, analysis, data, plan, pruned = _case(corpus_dir, tmp_path, "mobilenet_v2")
    grams = capture_grams(model, analysis, data, samples_per_image=8, batch_size=16, seed=1)
    from edgeprune.reconstruct.reuse import reusable

    keep = analysis.keep_mask(plan.kept)
    targets, _ = find_targets(model, analysis, keep, "downstream")
    args = (grams, targets, model, pruned.gs_graph(), analysis, keep, data)
    assert reusable(*args, samples_per_image=8, seed=0) == {}
    assert reusable(*args, samples_per_image=8, seed=1)  # the same seed: reused


def test_rows_spooled_to_disk_give_the_same_reconstruction(corpus_dir, tmp_path):
    model, analysis, data, plan, pruned = _case(corpus_dir, tmp_path, "resnet_basic")
    in_memory, _ = reconstruct(model, pruned, analysis, plan, data, **SETTINGS)
    on_disk, _ = reconstruct(model, pruned, analysis, plan, data, **SETTINGS, memory=0)
    assert _worst(_weights(on_disk), _weights(in_memory)) < 1e-9


def test_reconstruction_says_how_far_it_got(corpus_dir, tmp_path):
    model, analysis, data, plan, pruned = _case(corpus_dir, tmp_path, "resnet_basic")
    calls = []
    _, report = reconstruct(model, pruned, analysis, plan, data, **SETTINGS, progress=lambda *a: calls.append(a))
    fitted = sum(1 for r in report.layers if r.rows)
    assert calls and calls[-1] == ("reconstruct", fitted, fitted)
    assert [c[1] for c in calls] == list(range(1, fitted + 1))


def test_segmented_passes_compute_what_one_full_pass_does(corpus_dir, tmp_path):
    model, analysis, data, plan, pruned = _case(corpus_dir, tmp_path, "yolox", images=20)
    convs = [n.output[0] for n in pruned.proto.graph.node if n.op_type == "Conv"]
    wanted = [convs[3], convs[10], convs[len(convs) // 2], convs[-4]]
    full = ActivationRunner(pruned, wanted, "cpu")
    run = SegmentedRun(pruned.gs_graph(), data, batch_size=8, provider="cpu", budget=SpoolBudget(0))
    for name in wanted:  # one tensor per pass, each pass starting from what the earlier ones kept
        for batch, values in run.values([name]):
            expected = full.run(batch.inputs)[name]
            np.testing.assert_allclose(values[name], expected, rtol=1e-5, atol=1e-5)
    assert run.sessions == len(wanted)
    run.close()


def test_a_spool_gives_back_its_rows_in_order_in_memory_and_on_disk():
    rows = [np.random.default_rng(i).standard_normal((n, 3, 2)).astype(np.float32) for i, n in enumerate((5, 7, 2))]
    for limit in (10**9, 0):
        budget = SpoolBudget(limit)
        spool = Spool((3, 2), np.float32, 14, budget)
        assert spool.in_memory == (limit > 0)
        for part in rows:
            spool.append(part)
        np.testing.assert_array_equal(np.concatenate(list(spool.chunks(rows=4))), np.concatenate(rows))
        take = spool.reader()
        np.testing.assert_array_equal(np.concatenate([take(3), take(11)]), np.concatenate(rows))
        one, other = spool.reader(), spool.reader()  # two readers at once (layers sharing one target)
        pieces = [(one(4), other(6)), (one(10), other(8))]
        np.testing.assert_array_equal(np.concatenate([p[0] for p in pieces]), np.concatenate(rows))
        np.testing.assert_array_equal(np.concatenate([p[1] for p in pieces]), np.concatenate(rows))
        spool.close()
        assert budget.used == 0


class _CopyingFit:
    """The greedy removal's consumer fit as first written: the inverse restricted by copying at each step."""

    def __init__(self, inverse, weight, y_square, owner, channels):
        order = np.argsort(owner, kind="stable")
        self.inverse, self.weight, self.scale = inverse[np.ix_(order, order)], weight[order], 1.0 / y_square
        present = np.unique(owner)
        self.slot = np.full(channels, -1)
        self.slot[present] = np.arange(len(present))
        self.columns = np.arange(len(owner)).reshape(len(present), -1)

    def costs(self, channels):
        result = np.zeros(len(channels))
        slots = self.slot[channels]
        cols = self.columns[slots[slots >= 0]]
        if len(cols):
            blocks = self.inverse[cols[:, :, None], cols[:, None, :]]
            w = self.weight[cols]
            result[slots >= 0] = np.einsum("cmk,cmk->c", w, np.linalg.solve(blocks, w)) * self.scale
        return result

    def remove(self, channels):
        slots = self.slot[channels]
        slots = slots[slots >= 0]
        if not len(slots):
            return 0.0
        cols = self.columns[slots].ravel()
        block_inverse = np.linalg.inv(self.inverse[np.ix_(cols, cols)])
        change = block_inverse @ self.weight[cols]
        added = float(np.sum(self.weight[cols] * change)) * self.scale
        keep = np.ones(len(self.weight), dtype=bool)
        keep[cols] = False
        across = self.inverse[:, cols][keep]
        self.weight = self.weight[keep] - across @ change
        self.inverse = self.inverse[np.ix_(keep, keep)] - across @ (block_inverse @ across.T)
        self.slot[channels] = -1
        self.columns = (np.cumsum(keep) - 1)[self.columns]
        return added


def test_in_place_removal_scores_equal_the_copying_ones(corpus_dir, tmp_path, monkeypatch):
    model, analysis, data, _, _ = _case(corpus_dir, tmp_path, "yolox", images=32)
    grams = capture_grams(model, analysis, data, samples_per_image=8, batch_size=16)
    fast = {g.id: removal_scores(grams, analysis, g) for g in analysis.prunable_groups}
    import edgeprune.scoring.removal as removal

    monkeypatch.setattr(removal, "_ConsumerFit", _CopyingFit)
    grams.solved.clear()
    slow = {g.id: removal_scores(grams, analysis, g) for g in analysis.prunable_groups}
    for gid, expected in slow.items():
        if expected is None:
            assert fast[gid] is None
            continue
        np.testing.assert_allclose(fast[gid], expected, rtol=1e-6, atol=1e-9 * np.abs(expected).max())


def test_scoring_says_how_far_it_got(corpus_dir, tmp_path):
    from edgeprune.scoring.measure import measure_and_score

    model, analysis, data, _, _ = _case(corpus_dir, tmp_path, "resnet_basic", images=16)
    calls = []
    scores, info = measure_and_score(model, analysis, data, "refit-error", progress=lambda *a: calls.append(a))
    stages = {c[0] for c in calls}
    assert stages == {"capture", "score"}
    assert calls[-1] == ("score", len(analysis.prunable_groups), len(analysis.prunable_groups))
    assert set(scores) == {g.id for g in analysis.prunable_groups}
    assert info.statistics is not None and dict(info)["criterion"] == "refit-error"


def test_removal_stays_exact_when_the_fit_is_ill_conditioned():
    """Fewer rows than columns (a classifier on a few hundred images): the ridge alone keeps the Gram matrix
    invertible, and each downdate must still give the inverse of what is left. (On ResNet-50's classifier
    at 410 images an update that let the matrix drift from symmetric ended on a singular block; that case
    is too large to keep here, this one checks the accuracy the symmetric update keeps.)"""
    import edgeprune.scoring.removal as removal

    rng = np.random.default_rng(0)
    rows, channels = 60, 256
    x = rng.standard_normal((rows, 24)) @ rng.standard_normal((24, channels)) * 1e3  # rank 24
    gram = x.T @ x
    gram[np.diag_indices_from(gram)] += 1e-3 * np.trace(gram) / channels
    weight = np.linalg.inv(gram) @ rng.standard_normal((channels, 4))
    fit = removal._ConsumerFit(np.linalg.inv(gram), weight, 1.0, np.arange(channels), channels)
    alive = np.arange(channels)
    while len(alive) > 8:
        costs = fit.costs(alive)
        take = np.argsort(costs, kind="stable")[: max(1, len(alive) // 32)]
        fit.remove(alive[take])
        alive = np.delete(alive, take)
        cols = fit.columns[fit.slot[alive]].ravel()
        truth = np.linalg.inv(gram[np.ix_(alive, alive)])
        assert np.abs(fit.inverse[np.ix_(cols, cols)] - truth).max() <= 1e-6 * np.abs(truth).max()
