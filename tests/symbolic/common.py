"""Layers and networks with hand-set links for the tests of hol.symbolic."""
from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from hol.layers.domain import CENTRE, WIDTH
from hol.networks import MLP

DOUBLE = torch.float64


def set_links(layer, functions: Mapping[tuple[int, int], Callable[[torch.Tensor], torch.Tensor]]) -> None:
    """Set the node values of Lagrange links ``(output, input)`` to ``functions`` of the layer's input at its
    nodes (their interpolants; exact for polynomials of degree < n, within rounding for smooth functions at
    n = 20 on these ranges)."""
    nodes = layer.basis.node_positions().to(DOUBLE)  # reference coordinates
    with torch.no_grad():
        for (o, i), function in functions.items():
            centre, width = float(getattr(layer, CENTRE)[i]), float(getattr(layer, WIDTH)[i])
            layer.weight[o, i] = function(centre + nodes * width / layer.length).to(layer.weight.dtype)


def uniform(n: int, domains, seed: int = 0) -> torch.Tensor:
    """``n`` points uniform in the box ``domains`` (one ``[low, high]`` per variable), float64."""
    bounds = torch.tensor(domains, dtype=DOUBLE)
    u = torch.rand(n, len(domains), generator=torch.Generator().manual_seed(seed), dtype=DOUBLE)
    return bounds[:, 0] + u * (bounds[:, 1] - bounds[:, 0])


LIBRARY = ["x", "x**2", "sin", "exp"]
DOMAINS = [[0.0, 2.0], [-3.0, 1.0]]
FIRST = {(0, 0): lambda u: 2 * torch.sin(3 * u + 1) - 0.5, (0, 1): lambda u: 0.5 * u**2,
         (1, 0): lambda u: 0.3 * torch.exp(u), (1, 1): lambda u: 0.2 - 0.7 * u}
PRODUCT = {(0, 0): lambda u: 0.4 * torch.sin(2 * u), (0, 1): lambda u: 0.5 * (u - 0.2) ** 2 + 0.1}


def hand_set_mlp():
    """``MLP`` 2 -> 2 -> 1 on the inputs' intervals ``DOMAINS`` (``input_scaling``), ``tanh`` normalization, a
    sum layer then a product-unit layer (``alpha = 0.5``) with biases, every link a hand-set function of
    ``LIBRARY`` (one-segment n = 20 Lagrange links, exact to rounding)."""
    net = MLP("polynomial", 2, 1, widths=[2], n=20, normalization="tanh", input_domains=DOMAINS, bias=True,
              output_layer={"kind": "polynomial_prod", "alpha": 0.5}).double()
    set_links(net.layers[0], FIRST)
    set_links(net.layers[1], PRODUCT)
    with torch.no_grad():
        net.layers[0].bias.copy_(torch.tensor([0.1, -0.2]))
        net.layers[1].bias.fill_(0.3)
    return net
