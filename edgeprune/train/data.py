"""Training batches: a `CalibrationSet` streamed from disk in a seeded order, with seeded image augmentation."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from edgeprune.calibration.dataset import CalibrationSet


def epoch_batches(data: CalibrationSet, batch_size: int, rng: np.random.Generator) -> Iterator:
    """One pass over ``data`` in a fresh seeded order; only one batch is decoded at a time."""
    order = rng.permutation(data.count)
    return data.batches(batch_size, indices=order.tolist())


def to_tensors(inputs: dict[str, np.ndarray], device) -> dict[str, torch.Tensor]:
    return {name: torch.from_numpy(np.ascontiguousarray(array)).to(device) for name, array in inputs.items()}


def augment(inputs: dict[str, torch.Tensor], shift: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """The same random horizontal flip and shift (up to ``shift`` px) for every image input.

    The border is repeated into the space a shift opens (the inputs are already normalised, so there is
    no value that means "background" in every model; a dark or plain border stays dark or plain).

    Image inputs are the float NCHW tensors; the teacher sees the augmented batch too, so the student
    learns to match the original model on it, whatever the task.
    """
    images = [name for name, t in inputs.items() if t.dim() == 4 and t.is_floating_point()]
    if not images:
        return inputs
    n = inputs[images[0]].shape[0]
    flip = torch.rand(n, generator=generator) < 0.5
    offsets = (
        torch.randint(-shift, shift + 1, (n, 2), generator=generator) if shift else torch.zeros(n, 2, dtype=torch.long)
    )
    out = dict(inputs)
    for name in images:
        x = inputs[name]
        if x.shape[0] != n:
            continue
        x = torch.where(flip.view(-1, 1, 1, 1).to(x.device), x.flip(-1), x)
        if shift:
            x = _shift(x, offsets.to(x.device), shift)
        out[name] = x
    return out


def _shift(x: torch.Tensor, offsets: torch.Tensor, shift: int) -> torch.Tensor:
    """Translate each image by its (dy, dx), filling with zeros: pad by ``shift``, crop back per image."""
    h, w = x.shape[-2:]
    padded = torch.nn.functional.pad(x, [shift, shift, shift, shift], mode="replicate")
    rows = torch.arange(h, device=x.device).view(1, h) + shift - offsets[:, :1]  # n, h
    cols = torch.arange(w, device=x.device).view(1, w) + shift - offsets[:, 1:]  # n, w
    index_rows = rows.view(-1, 1, h, 1).expand(-1, x.shape[1], h, padded.shape[-1])
    picked = padded.gather(2, index_rows)
    index_cols = cols.view(-1, 1, 1, w).expand(-1, x.shape[1], h, w)
    return picked.gather(3, index_cols)
