"""Modules with random parameters, for tests that compare a transformed network with the original."""
from __future__ import annotations

import torch
from torch import nn


def randomize(module: nn.Module, seed: int = 0, scale: float = 1.0) -> nn.Module:
    """Every parameter ~ N(0, scale^2), in place: links far from the (nearly trivial) default initialization.
    Returns ``module``."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(scale * torch.randn(parameter.shape, generator=generator, dtype=parameter.dtype))
    return module
