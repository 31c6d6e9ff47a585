"""BatchNorm for training a BatchNorm-folded network, folded back into the convs afterwards.

Exports fold every BatchNorm into its conv, and such networks train badly: each channel keeps the scale
the fold gave it, so a plain SGD step that suits one layer blows up another. Fine-tuning therefore puts a
BatchNorm after each conv while training (train-mode batch statistics keep every layer well conditioned,
as when the model was first trained), starting as the identity: its statistics are the real statistics of
the conv's output on training data, and its scale and shift undo them. After training each BatchNorm's
running statistics and affine are folded back into its conv's weight and bias, so the ONNX graph, its
nodes and its initializers stay exactly as they were; only their values change.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


@torch.no_grad()
def calibrate(norms: Iterable[nn.modules.batchnorm._BatchNorm], run_batches) -> None:
    """Give each BatchNorm its input's per-channel mean and variance over the batches ``run_batches()``
    feeds through the network (with every BatchNorm still the identity), and the scale and shift that
    keep its output unchanged (so in eval mode the network computes exactly what it did)."""
    norms = list(norms)
    sums: dict[int, list] = {id(m): [0.0, 0.0, 0] for m in norms}

    def record(module, inputs, _output):
        x = inputs[0].transpose(0, 1).reshape(inputs[0].shape[1], -1).double()
        entry = sums[id(module)]
        entry[0] = entry[0] + x.sum(1)
        entry[1] = entry[1] + (x * x).sum(1)
        entry[2] += x.shape[1]

    hooks = [m.register_forward_hook(record) for m in norms]
    modes = [m.training for m in norms]
    for m in norms:
        m.eval()
    try:
        run_batches()
    finally:
        for hook, m, mode in zip(hooks, norms, modes):
            hook.remove()
            m.train(mode)
    for m in norms:
        total, squares, count = sums[id(m)]
        if not count:
            continue
        mean = total / count
        var = (squares / count - mean * mean).clamp_min(0.0)
        running_mean, running_var = m.running_mean, m.running_var
        assert running_mean is not None and running_var is not None  # identity_norm tracks running statistics
        # keep y = x * scale + shift while the statistics become the real ones
        scale = m.weight / torch.sqrt(running_var + m.eps)
        shift = m.bias - running_mean * scale
        running_mean.copy_(mean.to(running_mean.dtype))
        running_var.copy_(var.to(running_var.dtype))
        m.weight.copy_(scale * torch.sqrt(running_var + m.eps))
        m.bias.copy_(shift + scale * running_mean)


def identity_norm(channels: int, rank: int, dtype: torch.dtype) -> nn.modules.batchnorm._BatchNorm:
    """A BatchNorm over ``channels`` that computes the identity in eval mode (until calibrated)."""
    norm = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[rank](channels, dtype=dtype)
    assert norm.running_var is not None  # BatchNorm tracks running statistics by default
    with torch.no_grad():
        norm.running_var.fill_(1.0 - norm.eps)
    return norm


@torch.no_grad()
def fold(weight: torch.Tensor, bias: torch.Tensor, norm) -> tuple[torch.Tensor, torch.Tensor]:
    """The conv weight and bias that compute norm(conv(x)) in eval mode."""
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    shape = (-1,) + (1,) * (weight.dim() - 1)
    return weight * scale.reshape(shape), (bias - norm.running_mean) * scale + norm.bias
