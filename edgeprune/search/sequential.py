"""Judging a plan as the network reconstruction would produce: reconstruction itself, without surgery.

`reconstruct` refits the layers after pruned channels one by one, in topological order, each from the
pruned network's own inputs (so later layers correct the drift of earlier ones): docs/methods.md#5. A
closed-form refit from the original network's statistics (`edgeprune.scoring.plan_refit`) leaves that drift
uncorrected and ranks plans poorly against the truth (docs/results-search.md). Here the original graph runs
once per plan in torch (the training executor's kernels), its channels masked to the plan as in
`MaskedEvaluator`, and each layer `reconstruct` would refit is refitted when the pass reaches it: its rows
are taken from its current input, the same ridge (and rectified) fit to the original model's outputs is
solved, and the pass goes on with the new weights. On the same images, seed and settings as a true
reconstruction, the outputs are that reconstructed model's (tested); on a few dozen images, a plan costs one
forward pass and a small solve per layer, so a search can judge hundreds.

The images are fixed when the evaluator is made: the first ``fit_images`` of them give the rows, and the
last ``judge_images`` are the ones whose outputs `evaluate` returns. Judging a plan on the images its refit
was fitted to flatters it (a refit of a few hundred rows per weight column fits them closely), so a search
gives both and keeps them apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from edgeprune.analysis.groups import ChannelAnalysis
from edgeprune.capture.rows import linear_positions, linear_rows, outputs_at, patches, sample_positions
from edgeprune.graph.model import ModelGraph
from edgeprune.reconstruct.targets import find_targets
from edgeprune.search.evaluator import MaskedEvaluator
from edgeprune.search.refit_fit import fit_target
from edgeprune.search.torch_graph import TorchGraph


class SequentialEvaluator(MaskedEvaluator):
    """``evaluate(kept)`` -> [outputs and ``extra_outputs`` of the plan's reconstructed network on the images]."""

    def __init__(
        self,
        model: ModelGraph,
        analysis: ChannelAnalysis,
        batches: Sequence[Mapping[str, np.ndarray]],
        extra_outputs: Sequence[str] = (),
        *,
        samples_per_image: int = 16,
        ridge: float = 1e-3,
        seed: int = 0,
        fit_images: int | None = None,
        judge_images: int | None = None,
    ) -> None:
        import torch

        self.model, self.analysis, self.groups = model, analysis, analysis.prunable_groups
        self.mask_inputs = {g.id: f"edgeprune.mask:{g.id}" for g in self.groups}
        self.output_names = tuple(model.output_names)
        self.extra_outputs = tuple(n for n in dict.fromkeys(extra_outputs) if n not in self.output_names)
        self.names = list(self.output_names + self.extra_outputs)
        self.ridge, self.seed, self.per_image = ridge, seed, samples_per_image
        self.graph = TorchGraph(ModelGraph.from_proto(self._graph(model, analysis)))
        self.inputs = {
            name: torch.from_numpy(np.ascontiguousarray(np.concatenate([b[name] for b in batches])))
            for name in batches[0]
        }
        self.count = len(next(iter(self.inputs.values())))
        self.fit_images = min(fit_images or self.count, self.count)
        self.judged = slice(self.count - min(judge_images or self.count, self.count), self.count)
        self._reference = self._original_references()
        self.last_fits: dict[str, dict] = {}
        self.last_errors: dict[str, float] = {}

    def _original_references(self) -> dict[str, tuple[np.ndarray | None, np.ndarray]]:
        """Per layer any plan may refit: its sampled sites and the original model's tensor to match there."""
        probe = np.ones(len(self.analysis.class_group), dtype=bool)
        for group in self.groups:  # one channel off every group: every layer any plan can reach is a target
            probe[self.analysis.members(group.id)[0]] = False
        targets, _ = find_targets(self.model, self.analysis, probe, "downstream")
        values = self.graph.run({**self.inputs, **self._masks({})}, names=[t.reference for t in targets])
        n = self.fit_images
        references = {}
        for t in targets:
            sites = _sites(t, self.model.shapes[t.output], n, self.per_image, self.seed)
            value = values[t.reference][:n].numpy()
            if sites is None:
                rows = value.reshape(n, -1)
            elif t.channels_last:
                rows = linear_rows(value, 0, sites)
            else:
                rows = outputs_at(value, 0, sites)
            references[t.node] = (sites, rows)
        return references

    def evaluate(self, kept: Mapping[str, Sequence[int]]) -> list[dict[str, np.ndarray]]:
        keep = self.analysis.keep_mask({gid: tuple(channels) for gid, channels in kept.items()})
        targets = {t.node: t for t in find_targets(self.model, self.analysis, keep, "downstream")[0]} if kept else {}

        def refit(node: str, inputs: list, peek) -> dict | None:
            target = targets.get(node)
            if target is None or node not in self._reference:
                return None
            sites, reference = self._reference[node]
            rows, held = self._rows(target, inputs[0][: self.fit_images], sites, keep)
            addend = None
            if target.addend is not None and target.geometry is not None and sites is not None:
                addend = outputs_at(peek(target.addend)[: self.fit_images].numpy(), 0, sites)
            found, error = fit_target(
                target, self.graph, node, inputs, (rows, held), reference, addend, keep, self.analysis, self.ridge
            )
            errors[node] = error
            if found:
                fits[node] = {key: value.numpy() for key, value in found.items()}
            return found

        fits: dict[str, dict] = {}
        errors: dict[str, float] = {}
        compute = _Narrow(self.analysis, keep) if kept else None
        values = self.graph.run({**self.inputs, **self._masks(kept)}, names=self.names, refit=refit, compute=compute)
        self.last_fits = fits  # what the last plan refitted: {layer: {(node, input index): new value}}
        self.last_errors = errors  # each refitted layer's relative error after its refit (the refit reward)
        return [{name: values[name][self.judged].numpy() for name in self.names}]

    def _masks(self, kept):
        import torch

        return {name: torch.from_numpy(mask) for name, mask in self.masks(kept).items()}

    def _rows(self, target, x, sites, keep) -> tuple[np.ndarray, np.ndarray | None]:
        """The layer's rows and which of its columns they hold (None: all). A plain conv's are cut from its
        kept input channels alone (the others are zero and left out of the fit anyway)."""
        if sites is None:
            return x.numpy().reshape(len(x), -1), None
        if target.channels_last:
            return linear_rows(x.numpy(), 0, sites), None
        kept = self.analysis.kept_positions(target.input, keep)
        if target.geometry.groups != 1 or kept is None or kept.all():
            return patches(x.numpy(), 0, sites, target.geometry), None
        channels = np.flatnonzero(kept)
        kernel = target.geometry.kernel[0] * target.geometry.kernel[1]
        held = (channels[:, None] * kernel + np.arange(kernel)).ravel()
        return patches(x[:, torch_index(channels)].numpy(), 0, sites, target.geometry), held


def reconstructing_evaluator(
    model: ModelGraph,
    analysis: ChannelAnalysis,
    rows: Sequence[Mapping[str, np.ndarray]],
    judged: Sequence[Mapping[str, np.ndarray]],
    extra_outputs: Sequence[str] = (),
    *,
    reconstruction=None,
    seed: int = 0,
) -> SequentialEvaluator:
    """The evaluator a search judges plans with as the run's reconstruction would leave them: each plan
    refitted from the batches ``rows`` with ``reconstruction``'s rows per image and ridge (the run's
    `ReconstructionSettings`; None: their defaults), its outputs returned on the batches ``judged`` alone."""
    return SequentialEvaluator(
        model,
        analysis,
        list(rows) + list(judged),
        extra_outputs,
        samples_per_image=getattr(reconstruction, "samples_per_image", 16),
        ridge=getattr(reconstruction, "ridge", 1e-3),
        seed=seed,
        fit_images=_images(rows),
        judge_images=_images(judged),
    )


def judged_and_rows(data, judged: int, seed: int):
    """``(judged images, refit images)`` of the calibration set ``data``, disjoint: ``judged`` of them (at most
    half, so that both have some) to judge plans on, the rest to refit from (a refit judged on its own rows
    flatters the plan); with fewer than two images, the refit reads the judged one too."""
    if data.count < 2:
        return data, data
    rows, chosen = data.split(min(judged, data.count // 2), seed=seed)
    return chosen, rows


def _images(batches: Sequence[Mapping[str, np.ndarray]]) -> int:
    return sum(len(next(iter(b.values()))) for b in batches)


def _sites(target, shape, count: int, per_image: int, seed: int) -> np.ndarray | None:
    """The sites `reconstruct` samples: (image, y, x) outputs of a conv, (image, site, 0) rows of a
    channels-last MatMul; None for a Gemm (every image is a row)."""
    if target.geometry is not None:
        return sample_positions(np.arange(count), int(shape[2]), int(shape[3]), per_image, seed)
    if target.channels_last and len(shape) > 2:
        return sample_positions(np.arange(count), linear_positions(shape), 1, per_image, seed)
    return None


def torch_index(positions: np.ndarray):
    import torch

    return torch.from_numpy(positions)


class _Narrow:
    """Runs each plain conv on the kept channels alone: its removed inputs are zero (masked) and its removed
    outputs are zeroed by the masks of every layer that reads them, so the pass computes what the pruned
    model does at a fraction of the cost (the full-width output is filled with zeros where channels went)."""

    def __init__(self, analysis: ChannelAnalysis, keep: np.ndarray) -> None:
        self.analysis, self.keep = analysis, keep

    def _kept(self, tensor: str):
        name = tensor.removesuffix(".masked")
        if name not in self.analysis.tensors:
            return None
        kept = self.analysis.kept_positions(name, self.keep)
        return None if kept is None or kept.all() else np.flatnonzero(kept)

    def __call__(self, step, inputs: list) -> list | None:
        import torch

        if step.spec.op != "Conv" or int(step.spec.attrs.get("group", 1)) != 1 or inputs[1].dim() != 4:
            return None
        columns, rows = self._kept(step.inputs[0]), self._kept(step.outputs[0])
        if columns is None and rows is None:
            return None
        x, weight, bias = inputs[0], inputs[1], inputs[2] if len(inputs) > 2 else None
        if columns is not None:
            x, weight = x[:, columns], weight[:, columns]
        if rows is not None:
            weight = weight[rows]
            bias = bias[rows] if bias is not None else None
        (narrow,) = step.kernel.fn(step.spec, [x, weight, bias])
        if rows is None:
            return [narrow]
        full = torch.zeros((narrow.shape[0], inputs[1].shape[0], *narrow.shape[2:]), dtype=narrow.dtype)
        full[:, torch.from_numpy(rows)] = narrow
        return [full]
