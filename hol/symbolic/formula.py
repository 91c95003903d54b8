"""The formula an MLP computes, as sympy expressions of named input variables.

Following the network (pykan's ``symbolic_formula``, Liu et al. 2024, arXiv:2404.19756, §2.5.2):

* ``input_scaling`` (:class:`hol.networks.InputScaling`): ``(x_i - c_i) / h_i``;
* a layer with links (:class:`~hol.layers.HighOrderLinear`, :class:`~hol.symbolic.fix.SymbolicLinear`):
  ``y_o = sum_i f_oi(u_i) (+ bias_o)``, product units ``prod_i (1 + f_oi) - 1 - (1 - alpha) sum_i f_oi
  (+ bias_o)``, each link ``f_oi`` written as

  - its symbolic form when a :class:`SymbolicLinear` has fixed it (its parameters as they are now), or when
    ``fits`` gives it a fit of R² at least ``min_r2``;
  - otherwise it is numeric: with ``numeric="polynomial"`` a link of one polynomial piece (kinds
    ``polynomial``, ``continuous``/``discontinuous`` with one segment, their product units; ``product``'s
    linear links) is written as that polynomial in monomials of its local coordinate ``t = 2 (u - c) / w``
    (exact up to rounding, which grows with the degree; outside the domain it is the layer's link only with
    ``extrapolation="polynomial"``); piecewise and Fourier links cannot be (no ``Piecewise`` is written).
    Numeric links that cannot be written raise one ``ValueError`` naming them ``(layer, output, input)``
    with their best R² (from ``fits``);
* ``nn.Linear`` baselines (``linear``, ``relu``, ``tanh`` kinds): ``W u + b``, then ``Max(0, .)`` or ``tanh``;
* between layers the normalization ``none`` (identity) or ``tanh``; the others depend on all units of a
  sample (``max_abs``, ``layer_norm``, ...) or on batch statistics and have no per-unit formula (one-line
  ``ValueError``). Dropout is left out (the formula is the network in eval mode).

Constants are sympy Floats of the float64 values (whole numbers as integers); no simplification is done here
(:mod:`hol.symbolic.simplify`).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import sympy  # type: ignore[import-untyped]
import torch
from torch import nn

from ..expr import check_variable_names
from ..layers.baselines import ReLULinear, TanhLinear
from ..layers.bases import IdentityBasis, LagrangeBasis
from ..layers.domain import CENTRE, WIDTH
from ..layers.fully_connected import HighOrderLinear
from ..ops.lagrange import lagrange_transform
from .fit import MIN_R2, LinkFit, number
from .fix import SymbolicLinear
from .links import check_mlp

NUMERIC = ("error", "polynomial")
_LISTED = 10  # numeric links named in the error, at most


def polynomial_link(layer: HighOrderLinear, o: int, i: int, u: sympy.Expr) -> sympy.Expr | None:
    """Link ``(o, i)`` of ``layer`` as a polynomial of its input ``u`` (module docstring), or ``None`` where
    it is no single polynomial (piecewise, Fourier, tensor-product links)."""
    basis = layer.basis
    weight = layer.weight.detach().cpu().double()[o, i]
    if isinstance(basis, IdentityBasis):
        return number(float(weight[0])) * u if weight[0] != 0 else sympy.Integer(0)
    if not isinstance(basis, LagrangeBasis) or basis.segments != 1:
        return None
    chebyshev = lagrange_transform(basis.n) @ weight  # f(t) = sum_j T_j(t) (C w)_j, hol.layers.bases
    monomials = np.polynomial.chebyshev.cheb2poly(chebyshev.numpy())
    centre, width = (float(getattr(layer, name)[i]) for name in (CENTRE, WIDTH))
    t = 2 * (u - number(centre)) / number(width)
    return sympy.Add(*(number(float(p)) * t**m for m, p in enumerate(monomials) if p != 0))


def _combine(links: list[sympy.Expr], product: bool, alpha: float, bias: float | None) -> sympy.Expr:
    if product:  # (terms multiplied by an exact 0 are left out: sympy would ask whether they are finite)
        y = sympy.Mul(*(1 + f for f in links)) - 1
        if alpha != 1:
            y -= number(1 - alpha) * sympy.Add(*links)
    else:
        y = sympy.Add(*links)
    return y if bias is None else y + number(bias)


def _layer_formula(layer: nn.Module, index: int, u: list[sympy.Expr],
                   fits: Mapping[tuple[int, int, int], LinkFit], min_r2: float, numeric: str,
                   missing: list[str]) -> list[sympy.Expr]:
    """The outputs of layer ``index`` of inputs ``u``; numeric links that cannot be written go to
    ``missing``."""
    if isinstance(layer, nn.Linear):
        weight = layer.weight.detach().cpu().double()
        bias = None if layer.bias is None else layer.bias.detach().cpu().double()
        outputs = [sympy.Add(*(number(float(w)) * x for w, x in zip(row, u, strict=True) if w != 0))
                   + (0 if bias is None else number(float(bias[o]))) for o, row in enumerate(weight)]
        if isinstance(layer, ReLULinear):
            return [sympy.Max(0, y) for y in outputs]
        return [sympy.tanh(y) for y in outputs] if isinstance(layer, TanhLinear) else outputs
    symbolic: dict[tuple[int, int], LinkFit] = {}
    if isinstance(layer, SymbolicLinear):
        symbolic, layer = layer.link_fits(), layer.numeric
    if not isinstance(layer, HighOrderLinear) or layer.dims is not None:
        raise ValueError(f"layer {index} ({type(layer).__name__}) cannot be written as a formula; allowed: "
                         "HighOrderLinear with links of one variable, SymbolicLinear, nn.Linear baselines")
    outputs = []
    for o in range(layer.out_features):
        links = []
        for i in range(layer.in_features):
            fit = symbolic.get((o, i)) or fits.get((index, o, i))
            if fit is not None and ((o, i) in symbolic or fit.r2 >= min_r2):
                links.append(fit.expression(u[i]))
                continue
            polynomial = polynomial_link(layer, o, i, u[i]) if numeric == "polynomial" else None
            if polynomial is None:
                r2 = "not fitted" if fit is None else f"best R² {fit.r2:.6g}"
                missing.append(f"({index}, {o}, {i}) {r2}")
                polynomial = sympy.Integer(0)
            links.append(polynomial)
        constant = None if layer.bias is None else float(layer.bias[o])
        outputs.append(_combine(links, layer.product, layer.alpha, constant))
    return outputs


def formula(net: nn.Module, variables: Sequence[str],
            fits: Mapping[tuple[int, int, int], LinkFit] | None = None, *, min_r2: float = MIN_R2,
            numeric: str = "error") -> list[sympy.Expr]:
    """The formula ``net`` computes, one sympy expression per output (module docstring).

    Args:
        net: a :class:`hol.networks.MLP` (its layers ``HighOrderLinear``, ``SymbolicLinear`` or ``nn.Linear``
            baselines; normalization ``none`` or ``tanh``).
        variables: a name per input (Python identifiers other than ``pi`` and ``e``), the sympy symbols of the
            formula.
        fits: ``{(layer, output, input): LinkFit}`` for the links of ``HighOrderLinear`` layers (and the
            numeric links of ``SymbolicLinear`` ones), e.g. from :func:`hol.symbolic.links.fit_network`.
        min_r2: the R² from which a fit is used.
        numeric: ``"error"``: a numeric link raises; ``"polynomial"``: written as its polynomial where it is
            one.

    Returns:
        ``[expression of output 0, ...]``.

    Raises:
        ValueError: one line: bad arguments, a layer or normalization with no formula, or numeric links that
            cannot be written (named ``(layer, output, input)`` with their best R²).
    """
    net = check_mlp(net)
    names = check_variable_names(variables)
    first = net.layers[0]
    inputs = getattr(first, "in_features", None)
    if len(names) != inputs:
        raise ValueError(f"variables must name the network's {inputs} inputs, got {list(names)}")
    if numeric not in NUMERIC:
        raise ValueError(f"unknown numeric {numeric!r}; allowed: {', '.join(NUMERIC)}")
    u: list[sympy.Expr] = [sympy.Symbol(name) for name in names]
    if net.input_scaling is not None:
        centre, half = (getattr(net.input_scaling, key).detach().double() for key in ("centre", "half_width"))
        u = [(x - number(float(c))) / number(float(h)) for x, c, h in zip(u, centre, half, strict=True)]
    missing: list[str] = []
    with torch.no_grad():
        for index, layer in enumerate(net.layers):
            u = _layer_formula(layer, index, u, fits or {}, min_r2, numeric, missing)
            if index < len(net.norms):
                u = _normalized(net.norms[index], index, u)
    if missing:
        more = f" and {len(missing) - _LISTED} more" if len(missing) > _LISTED else ""
        raise ValueError(f"{len(missing)} numeric link(s) (layer, output, input) cannot be written as a "
                         f"formula: {', '.join(missing[:_LISTED])}{more}; fit them (R² >= {min_r2:g}) or "
                         "pass numeric='polynomial' for one-piece "
                         "polynomial links")
    return u


def _normalized(norm: nn.Module, index: int, u: list[sympy.Expr]) -> list[sympy.Expr]:
    if isinstance(norm, nn.Identity):
        return u
    if isinstance(norm, nn.Tanh):
        return [sympy.tanh(value) for value in u]
    raise ValueError(f"the normalization after layer {index} ({type(norm).__name__}) cannot be written as a "
                     "formula: it depends on all units of a sample or on batch statistics; allowed: none, "
                     "tanh")
