"""Fold inference-mode BatchNorm into the preceding convolution (one op less per layer at run time)."""

import torch
from torch import nn


def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    conv.weight = nn.Parameter(conv.weight * scale.view(-1, 1, 1, 1), requires_grad=False)
    conv.bias = nn.Parameter((bias - bn.running_mean) * scale + bn.bias, requires_grad=False)


def identity_batchnorm(state: dict, prefix: str, offset, eps: float, scale=None) -> None:
    """State-dict entries for a BatchNorm that an exporter folded into the convolution before it: it comes back
    as a BatchNorm that only adds the folded offset (times ``scale`` where the export kept one apart), with
    gamma 1, mean 0 and var 1 - eps, so that ``fold_batchnorm`` puts the exported convolution back as it was."""
    offset = torch.as_tensor(offset)
    n = offset.shape[0]
    state[prefix + "weight"] = torch.as_tensor(scale) if scale is not None else torch.ones(n)
    state[prefix + "bias"] = offset
    state[prefix + "running_mean"] = torch.zeros(n)
    state[prefix + "running_var"] = torch.full((n,), 1.0 - eps)
    state[prefix + "num_batches_tracked"] = torch.tensor(0, dtype=torch.int64)


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
