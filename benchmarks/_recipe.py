"""The one fine-tune recipe every tool in the recovery benchmark gets after pruning (numpy and torch only).

One epoch over the 60,000 labelled Fashion-MNIST train images, cross-entropy with the labels:

- SGD with Nesterov momentum 0.9, weight decay 5e-4 on every parameter, batch 128, the gradient's global
  norm clipped to CLIP_NORM = 1.0 before each step (the exports fold BatchNorm into the convs, and
  without clipping plain SGD at 0.01, even at 0.001, diverges within a few steps on these folded networks);
- learning rate 0.01 on a per-step cosine from LR down to 0 over all the epoch's steps, no warm-up
  (``cosine_lr``; the last batch is the partial one, 60,000 = 468 x 128 + 96, so 469 steps);
- one ``torch.Generator`` seeded with SEED draws, in this order, the epoch's shuffle
  (``torch.randperm(n, generator=g)``) and then, batch by batch, the augmentation (``augment``);
- augmentation as in the reference training: random horizontal flips (p = 0.5) and random shifts of up
  to SHIFT pixels each way (zero padding, then a random crop back to the original size). It runs on
  images scaled to [0, 1], before standardising, so the zero padding is the black background.
"""

from __future__ import annotations

import math

import torch

EPOCHS = 1
LR = 0.01
MOMENTUM = 0.9
NESTEROV = True
WEIGHT_DECAY = 5e-4
BATCH = 128
SEED = 0
FLIP_P = 0.5
SHIFT = 2


def steps_per_epoch(n: int, batch: int = BATCH) -> int:
    """Optimizer steps in one epoch over ``n`` images (the last batch may be partial)."""
    return (n + batch - 1) // batch


def cosine_lr(step: int, total: int, base_lr: float = LR) -> float:
    """The learning rate of optimizer step ``step`` (0-based) of ``total``: base_lr at step 0, towards 0 at the end."""
    return 0.5 * base_lr * (1.0 + math.cos(math.pi * step / total))


def augment(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Randomly flipped and shifted copy of an NCHW float batch of [0, 1] images.

    Per image, in this order of draws from ``generator``: a flip decision (rand < FLIP_P), then the crop
    offsets dy and dx in [0, 2 * SHIFT] of the zero-padded image (SHIFT means no shift).
    """
    b, c, h, w = batch.shape
    flip = torch.rand(b, generator=generator) < FLIP_P
    x = torch.where(flip[:, None, None, None], batch.flip(-1), batch)
    padded = torch.nn.functional.pad(x, (SHIFT, SHIFT, SHIFT, SHIFT))
    dy = torch.randint(0, 2 * SHIFT + 1, (b,), generator=generator)
    dx = torch.randint(0, 2 * SHIFT + 1, (b,), generator=generator)
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :]
    return padded[torch.arange(b)[:, None, None, None], torch.arange(c)[None, :, None, None], rows, cols]


CLIP_NORM = 1.0


class ClippedSGD(torch.optim.SGD):
    """SGD whose ``step`` first clips the global gradient norm of its parameters to CLIP_NORM."""

    def step(self, closure=None):
        params = [p for group in self.param_groups for p in group["params"] if p.grad is not None]
        torch.nn.utils.clip_grad_norm_(params, CLIP_NORM)
        return super().step(closure)


def make_optimizer(params) -> torch.optim.SGD:
    """SGD of the recipe (gradient norm clipped); set each step's lr with ``cosine_lr`` before ``optimizer.step()``."""
    return ClippedSGD(params, lr=LR, momentum=MOMENTUM, nesterov=NESTEROV, weight_decay=WEIGHT_DECAY)
