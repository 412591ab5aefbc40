"""Fold inference-mode BatchNorm into the preceding convolution (one op less per layer at run time)."""

import torch
from torch import nn


def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    conv.weight = nn.Parameter(conv.weight * scale.view(-1, 1, 1, 1), requires_grad=False)
    conv.bias = nn.Parameter((bias - bn.running_mean) * scale + bn.bias, requires_grad=False)


@torch.no_grad()
def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Folds every Conv2d->BatchNorm2d pair, whether adjacent in a Sequential or named convN/bnN (ResNet)."""
    for module in list(model.modules()):
        if isinstance(module, nn.Sequential):
            for i in range(len(module) - 1):
                if isinstance(module[i], nn.Conv2d) and isinstance(module[i + 1], nn.BatchNorm2d):
                    _fold(module[i], module[i + 1])
                    module[i + 1] = nn.Identity()
        for n in (1, 2, 3):
            conv, bn = getattr(module, f"conv{n}", None), getattr(module, f"bn{n}", None)
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                _fold(conv, bn)
                setattr(module, f"bn{n}", nn.Identity())
    return model
