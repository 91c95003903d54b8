"""Name -> layer registries with ``fc`` / ``conv`` factories (timm-style).

Each registry maps a kind to a builder ``builder(kind, *sizes, **options) -> nn.Module``. Unknown names raise
``ValueError`` listing the sorted choices; registering a name twice warns and replaces the old builder.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable

from torch import nn

FC_LAYERS: dict[str, Callable[..., nn.Module]] = {}
CONV_LAYERS: dict[str, Callable[..., nn.Module]] = {}


def _register(registry: dict, name: str, what: str):
    def decorator(builder):
        if name in registry:
            warnings.warn(f"{what} kind {name!r} registered again; replacing {registry[name]!r}", stacklevel=2)
        registry[name] = builder
        return builder

    return decorator


def register_fc(name: str):
    """Decorator registering a fully connected layer builder under ``name``."""
    return _register(FC_LAYERS, name, "fc")


def register_conv(name: str):
    """Decorator registering a convolutional layer builder under ``name``."""
    return _register(CONV_LAYERS, name, "conv")


def get_builder(registry: dict, kind: str, what: str) -> Callable[..., nn.Module]:
    if not isinstance(kind, str) or kind not in registry:
        raise ValueError(f"unknown {what} layer kind {kind!r}; known kinds: {', '.join(sorted(registry))}")
    return registry[kind]


def kinds() -> list[str]:
    """The registered fully connected layer kinds, sorted."""
    return sorted(FC_LAYERS)


def conv_kinds() -> list[str]:
    """The registered convolutional layer kinds, sorted."""
    return sorted(CONV_LAYERS)


def fc(kind: str, in_features: int, out_features: int, **options) -> nn.Module:
    """Build a fully connected layer ``[..., in_features] -> [..., out_features]`` of a registered ``kind``.

    Keyword options (high-order kinds): ``n=3, segments=1, length=2.0, bias=False, init="linear",
    extrapolation="polynomial", alpha=1.0, dims=None, device=None, dtype=None``. The baselines ``linear`` and
    ``relu`` take ``bias`` (default True, as ``nn.Linear``), ``device`` and ``dtype`` and ignore the rest.

    Examples::

        >>> layer = hol.layers.fc("continuous", 784, 100, n=5, segments=2)
        >>> layer(torch.rand(32, 784) * 2 - 1).shape
        torch.Size([32, 100])
    """
    return get_builder(FC_LAYERS, kind, "fc")(kind, in_features, out_features, **options)


def conv(kind: str, in_channels: int, out_channels: int, kernel_size, **options) -> nn.Module:
    """Build a convolutional layer of a registered ``kind`` (see :mod:`hol.layers.conv`)."""
    return get_builder(CONV_LAYERS, kind, "conv")(kind, in_channels, out_channels, kernel_size, **options)
