"""Using a formula outside sympy: its values on a tensor of points (``sympy.lambdify`` with numpy and
scipy), and its text, which ``sympy.sympify`` parses back.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import sympy  # type: ignore[import-untyped]
import torch
from torch import Tensor

from ..expr import check_variable_names


def _symbols(variables: Sequence[str]) -> list[sympy.Symbol]:
    return [sympy.Symbol(name) for name in check_variable_names(variables)]


def evaluate(expressions: sympy.Expr | Sequence[sympy.Expr], variables: Sequence[str],
             points: Tensor) -> Tensor:
    """The values of formulas at ``points``, computed in float64 by numpy and scipy (``sympy.lambdify``; where
    a formula is undefined, e.g. ``log`` of a negative number, the value is NaN, without warnings).

    Args:
        expressions: one sympy expression, or a sequence of them (e.g. :func:`hol.symbolic.formula.formula`).
        variables: the names of the variables, in the order of ``points``' last dimension.
        points: ``[..., len(variables)]``.

    Returns:
        ``[...]`` for one expression, ``[..., len(expressions)]`` for a sequence; float64 on ``points``'
        device.

    Raises:
        ValueError: ``points`` of the wrong shape, or a formula with a symbol that is not among ``variables``
            (one line).
    """
    symbols = _symbols(variables)
    single = isinstance(expressions, sympy.Basic)
    listed: list[sympy.Expr] = [expressions] if single else [sympy.sympify(e) for e in expressions]
    if points.dim() < 1 or points.shape[-1] != len(symbols):
        raise ValueError(f"points must have shape [..., {len(symbols)}] (one value per variable), got "
                         f"{list(points.shape)}")
    unknown = sorted({str(s) for e in listed for s in e.free_symbols} - {str(s) for s in symbols})
    if unknown:
        raise ValueError(f"the formula uses {', '.join(unknown)}, not among the variables "
                         f"{', '.join(map(str, symbols))}")
    columns = points.detach().to("cpu", torch.float64).numpy()
    function = sympy.lambdify(symbols, listed, modules=["scipy", "numpy"])
    with np.errstate(all="ignore"):
        values = function(*(columns[..., k] for k in range(len(symbols))))
    shape = columns.shape[:-1]  # a constant formula gives one number
    stacked = np.stack([np.broadcast_to(np.asarray(v, dtype=np.float64), shape) for v in values], -1)
    result = torch.from_numpy(stacked).to(points.device)
    return result[..., 0] if single else result


def formula_string(expression: sympy.Expr) -> str:
    """``expression`` as text (every Float with its 15 significant digits) that :func:`parse_formula` (or
    ``sympy.sympify`` with the variables as ``locals``) parses back."""
    return sympy.sstr(expression, full_prec=True)


def parse_formula(text: str, variables: Sequence[str]) -> sympy.Expr:
    """The sympy expression of ``text`` (:func:`formula_string`) with ``variables`` as its symbols (so a
    variable may be named ``beta`` or ``S`` without meaning sympy's)."""
    return sympy.sympify(text, locals={str(s): s for s in _symbols(variables)})
