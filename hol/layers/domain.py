"""The per-input domains of a layer: buffers, the map into reference coordinates, old checkpoints.

Input ``i`` of a layer has the domain ``[c_i - w_i/2, c_i + w_i/2]``; the layer maps it onto its basis'
reference domain ``[-L/2, L/2]`` by ``z = (x - c_i) L / w_i`` (:func:`hol.ops.lagrange.reference_coordinates`)
before the dense expansion, the segment-sparse path and product units, which work in reference coordinates
only; the fused path (:func:`hol.functional.fused_lagrange_linear`) folds the same map into its segment
coordinate, from ``c`` and ``w`` themselves. ``c`` and ``w`` are the persistent buffers ``domain_centre`` and
``domain_width``, of shape ``[I]`` for fully connected layers (``[I, d]`` for
tensor-product links), ``[C_in]`` for convolutions. State dicts and checkpoints carry them; a state dict
without them (written before they existed, or by high-order-layers-torch) loads with the default domain
``c = 0``, ``w = L``. Layers with linear links (``product``, the identity basis) have no domain.

:func:`hol.adapt_domains` moves the domains to the ranges a layer's inputs take, keeping the link functions.
"""
from __future__ import annotations

from typing import cast

import torch
from torch import Tensor, nn

from ..ops.lagrange import reference_coordinates
from .bases import Basis, IdentityBasis

CENTRE, WIDTH = "domain_centre", "domain_width"


def has_domain(basis: Basis) -> bool:
    """Whether links in ``basis`` have a domain (every basis but the identity basis of linear links)."""
    return not isinstance(basis, IdentityBasis)


def register_domain(layer: nn.Module, shape: tuple[int, ...], length: float, device=None, dtype=None) -> None:
    """Register the buffers ``domain_centre`` (zeros) and ``domain_width`` (``length``) of ``shape`` on
    ``layer``: the default domain ``[-length/2, length/2]`` for every input."""
    layer.register_buffer(CENTRE, torch.zeros(shape, device=device, dtype=dtype))
    layer.register_buffer(WIDTH, torch.full(shape, float(length), device=device, dtype=dtype))


def reset_domain(layer: nn.Module) -> None:
    """Set ``layer``'s domain buffers (where it has them) to the default domain ``[-L/2, L/2]``: part of its
    ``reset_parameters``, so a layer built on the meta device and materialized with ``to_empty()`` gets
    them."""
    centre = getattr(layer, CENTRE, None)
    if centre is not None:
        with torch.no_grad():
            centre.zero_()
            getattr(layer, WIDTH).fill_(cast(float, layer.length))


def to_reference(layer: nn.Module, x: Tensor) -> Tensor:
    """``x`` (the layer's inputs, the domain's shape last) in the layer's reference coordinates; ``x`` itself
    for a layer without a domain."""
    centre = getattr(layer, CENTRE, None)
    if centre is None:
        return x
    return reference_coordinates(x, centre, getattr(layer, WIDTH), cast(float, layer.length))


def fill_missing_domain(layer: nn.Module, state_dict: dict, prefix: str) -> None:
    """Put the default domain into a ``state_dict`` being loaded into ``layer`` when it has none (a state
    dict from before per-input domains existed), so it loads as it did."""
    for name in (CENTRE, WIDTH):
        buffer = getattr(layer, name, None)
        if buffer is not None and prefix + name not in state_dict:
            default = 0.0 if name == CENTRE else cast(float, layer.length)
            state_dict[prefix + name] = torch.full_like(buffer, default)
