"""Jumps of piecewise links at their segment breaks: the term a strong-form residual cannot see.

A collocation residual takes a link's derivatives inside its segments only. A continuous piecewise polynomial
is C0: its first derivative may jump at a break, and a second-order residual (Poisson, Burgers) then sees
nothing of the kink, so a fit can drive the residual to zero and still miss the solution (measured for
issue 22: a product unit of piecewise links reached a loss of 1.2e-6 at an error of 5.3e-2). A discontinuous
link may also jump in value. :func:`break_jumps` gives these jumps from the coefficients, exactly, and
``weights.breaks`` of an equation (:meth:`hol.pde.Equation.losses`) adds their mean square to the loss, which
makes the links C1 (C0 and C1 for discontinuous ones) in the limit: the strong form is then the weak form.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..layers import HighOrderLinear
from ..layers.bases import LagrangeBasis
from ..ops.lagrange import lagrange_basis_derivative


def layer_break_jumps(layer: HighOrderLinear) -> Tensor:
    """The jumps of every link of ``layer`` at its interior breaks: of the first derivative (in the units of
    the layer's input, through its domain), and for discontinuous links also of the value, flattened; empty
    for one segment or a basis without breaks.

    Shape: ``[O I (S - 1) J]`` with ``J = 1`` (continuous) or ``2`` (discontinuous).
    """
    basis = layer.basis
    if not isinstance(basis, LagrangeBasis) or basis.segments == 1:
        return layer.weight.new_zeros(0)
    n, segments = basis.n, basis.segments
    stride = n - 1 if basis.continuous else n
    index = (torch.arange(segments, device=layer.weight.device) * stride).unsqueeze(-1) + torch.arange(
        n, device=layer.weight.device)
    values = layer.weight[:, :, index]  # [O, I, S, n]: each segment's nodal values
    ends = torch.tensor([-1.0, 1.0], dtype=basis.transform.dtype, device=basis.transform.device)
    slopes = values @ lagrange_basis_derivative(ends, basis.transform).T  # [O, I, S, 2]: d/dt at both ends
    # t is the local coordinate: dt/dx = 2 S / w for input domain width w
    width = getattr(layer, "domain_width", None)
    scale = 2 * segments / (width if width is not None else torch.full_like(layer.weight[0, :, 0], 2.0))
    jumps = [(slopes[:, :, :-1, 1] - slopes[:, :, 1:, 0]) * scale[:, None]]
    if not basis.continuous:
        jumps.append(values[:, :, :-1, -1] - values[:, :, 1:, 0])
    return torch.stack(jumps, dim=-1).flatten()


def break_jumps(module: nn.Module) -> Tensor:
    """:func:`layer_break_jumps` of every fully connected hol layer in ``module``, concatenated (empty when
    no link has a break). Differentiable in the coefficients."""
    jumps = [layer_break_jumps(layer) for layer in module.modules() if isinstance(layer, HighOrderLinear)]
    return torch.cat(jumps) if jumps else torch.zeros(0)
