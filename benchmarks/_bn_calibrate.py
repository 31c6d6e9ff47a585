"""BatchNorms that can train again in a model rebuilt from a BatchNorm-folded export (torch only).

The ONNX exports fold every BatchNorm into its conv, so a rebuilt torch module carries identity BatchNorms
(mean 0, variance 1, scale 1, the folded bias as shift). Fine-tuned in train mode, such a BatchNorm would
normalise by the batch's statistics and change the network before the first step. ``calibrate`` gives
each BatchNorm the real statistics of its input on training images and the affine that undoes them:
in eval mode the network computes exactly what it did, in train mode about the same, and fine-tuning
with train-mode BatchNorm (the usual recipe, and what Torch-Pruning's benchmarks do) behaves as designed.
"""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def calibrate(model: nn.Module, images: torch.Tensor, batch: int = 256, batches: int = 20) -> None:
    """Set every BatchNorm's running statistics to its input's per-channel mean and variance on ``images``
    (the first ``batches`` batches), and its scale and shift so that its output is unchanged."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    sums = {id(m): [0.0, 0.0, 0] for m in norms}

    def record(module, inputs, _output):
        x = inputs[0].transpose(0, 1).reshape(inputs[0].shape[1], -1).double()
        entry = sums[id(module)]
        entry[0] = entry[0] + x.sum(1)
        entry[1] = entry[1] + (x * x).sum(1)
        entry[2] += x.shape[1]

    hooks = [m.register_forward_hook(record) for m in norms]
    model.eval()
    try:
        for start in range(0, min(len(images), batch * batches), batch):
            model(images[start:start + batch])
    finally:
        for hook in hooks:
            hook.remove()
    for m in norms:
        total, squares, count = sums[id(m)]
        mean = total / count
        var = (squares / count - mean * mean).clamp_min(0.0)
        # y = (x - mean_old) / sqrt(var_old + eps) * w_old + b_old, with the identity's mean_old = 0,
        # var_old + eps = 1, w_old = 1; keep y while the statistics become the real ones.
        old_scale = m.weight / torch.sqrt(m.running_var + m.eps)
        old_shift = m.bias - m.running_mean * old_scale
        new_std = torch.sqrt(var.to(m.running_var.dtype) + m.eps)
        m.running_mean.copy_(mean.to(m.running_mean.dtype))
        m.running_var.copy_(var.to(m.running_var.dtype))
        m.weight.copy_(old_scale * new_std)
        m.bias.copy_(old_shift + old_scale * m.running_mean)
