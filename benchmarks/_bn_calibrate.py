"""BatchNorms that can train again in a model rebuilt from a BatchNorm-folded export (torch only).

The ONNX exports fold every BatchNorm into its conv, so a rebuilt torch module carries identity BatchNorms
(mean 0, variance 1, scale 1, the folded bias as shift). Fine-tuned in train mode, such a BatchNorm would
normalise by the batch's statistics and change the network before the first step. ``calibrate`` gives
each BatchNorm the real statistics of its input on training images and the affine that undoes them
(`edgeprune.train.batchnorm.calibrate`, which edgeprune's own training uses): in eval mode the network
computes exactly what it did, in train mode about the same, and fine-tuning with train-mode BatchNorm
(the usual recipe, and what Torch-Pruning's benchmarks do) behaves as designed.
"""

from __future__ import annotations

import torch
from torch import nn

from edgeprune.train.batchnorm import calibrate as calibrate_norms


@torch.no_grad()
def calibrate(model: nn.Module, images: torch.Tensor, batch: int = 256, batches: int = 20) -> None:
    """Calibrate every BatchNorm of ``model`` on the first ``batches`` batches of ``images``."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    model.eval()

    def run_batches() -> None:
        for start in range(0, min(len(images), batch * batches), batch):
            model(images[start:start + batch])

    calibrate_norms(norms, run_batches)
