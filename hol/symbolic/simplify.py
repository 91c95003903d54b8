"""Simplifying a formula within a tolerance on its values, in bounded time.

``sympy.simplify`` can take without bound on the formulas of networks, and cannot know that a fitted
``0.9999999997`` is 1. :func:`simplify_formula` instead:

1. expands products over sums and exponentials of sums (``sympy.expand`` with ``mul``, ``power_exp``; not
   powers of sums), so the constants of nested links meet (``0.37 (2.7 sin(...) + ...)`` becomes ``1.0
   sin(...) + ...``, ``exp(u + 0.2)`` becomes ``1.22 exp(u)``); only for formulas of at most
   ``max_operations`` operations (``sympy.count_ops``), as a product unit's expansion grows exponentially;
2. replaces each Float, smallest first, by ``0``, the nearest integer, or a short exact number that
   ``sympy.nsimplify`` finds with ``pi`` within a relative ``1e-9`` (at most 8 characters: ``1/3``, ``pi``,
   ``3*pi/4``; a constant fitted less precisely is rounded in step 3 instead), the first that keeps the
   formula's values at ``points`` within ``tolerance`` of the given formula's;
3. rounds each remaining Float to the fewest significant digits (found by bisection) that keep the values
   within ``tolerance``;
4. recombines powers (``sympy.powsimp``: ``exp(a) exp(b) = exp(a + b)``).

Every step is kept only if the values at ``points`` (float64, :func:`hol.symbolic.evaluate.evaluate`) stay
within ``tolerance`` (absolute, the largest over points and the undefined points unchanged) of the formula
as given, so the result is never further than ``tolerance`` from it there (and elsewhere it is the same
formula up to the rounded constants). Cost: a few evaluations of the formula per constant.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import sympy  # type: ignore[import-untyped]
import torch
from torch import Tensor

from ..checks import check_int, check_number
from .evaluate import evaluate
from .fit import number

SHORT = 8  # characters of an exact number that replaces a Float
EXACT = 1e-9  # relative distance at which sympy.nsimplify recognizes one


def _within(reference: Tensor, variables: Sequence[str], points: Tensor,
            tolerance: float) -> Callable[[sympy.Expr], bool]:
    """Whether a formula's values at ``points`` are within ``tolerance`` of ``reference`` (NaN where it
    is)."""
    def within(expression: sympy.Expr) -> bool:
        values = evaluate(expression, variables, points)
        undefined = torch.isnan(reference)
        if not torch.equal(torch.isnan(values), undefined):
            return False
        return bool(((values - reference).abs()[~undefined] <= tolerance).all())
    return within


def _replace(expression: sympy.Expr, constant: sympy.Float, value: sympy.Expr,
             within: Callable[[sympy.Expr], bool]) -> sympy.Expr | None:
    trial = expression.xreplace({constant: value})
    return trial if trial != expression and within(trial) else None


def _exact(expression: sympy.Expr, constant: sympy.Float, tolerance: float,
           within: Callable[[sympy.Expr], bool]) -> sympy.Expr:
    """Step 2 for one constant."""
    value = float(constant)
    guesses = [sympy.Integer(0), sympy.Integer(round(value))]
    guess = sympy.nsimplify(value, [sympy.pi], tolerance=EXACT * max(1.0, abs(value)))
    if len(str(guess)) <= SHORT:
        guesses.append(guess)
    for guess in guesses:
        trial = _replace(expression, constant, guess, within)
        if trial is not None:
            return trial
    return expression


def _rounded(expression: sympy.Expr, constant: sympy.Float,
             within: Callable[[sympy.Expr], bool]) -> sympy.Expr:
    """Step 3 for one constant: bisection over 1..14 significant digits."""
    low, high, best = 1, 14, expression
    while low <= high:
        digits = (low + high) // 2
        trial = _replace(expression, constant, number(float(f"{float(constant):.{digits}g}")), within)
        if trial is None:
            low = digits + 1
        else:
            best, high = trial, digits - 1
    return best


def _constants(expression: sympy.Expr) -> list[sympy.Float]:
    return sorted(expression.atoms(sympy.Float), key=lambda f: abs(float(f)))


def simplify_formula(expression: sympy.Expr, variables: Sequence[str], points: Tensor, *,
                     tolerance: float = 1e-6, max_operations: int = 500) -> sympy.Expr:
    """A simpler formula whose values at ``points`` are within ``tolerance`` of ``expression``'s (module
    docstring).

    Args:
        expression: one formula (e.g. an output of :func:`hol.symbolic.formula.formula`).
        variables: the names of its variables, in the order of ``points``' last dimension.
        points: ``[N, len(variables)]`` where the values are compared (e.g. test inputs, or a grid of the
            input domain).
        tolerance: the largest change of a value allowed (absolute).
        max_operations: the expansion (step 1) is tried only up to this ``sympy.count_ops``.

    Raises:
        ValueError: bad arguments (one line; :func:`~hol.symbolic.evaluate.evaluate`'s too).

    Examples::

        >>> import sympy, torch
        >>> x = sympy.Symbol("x")
        >>> f = 0.5000000001 * sympy.exp(2.0000000003 * (x + 0.3465735903)) + 1e-9
        >>> simplify_formula(f, ["x"], torch.linspace(-1, 1, 11)[:, None].double())
        exp(2*x)
    """
    check_number("tolerance", tolerance, 0)
    check_int("max_operations", max_operations, 0)
    reference = evaluate(expression, variables, points)
    within = _within(reference, variables, points, tolerance)
    if sympy.count_ops(expression) <= max_operations:
        expanded = sympy.expand(expression, deep=True, mul=True, multinomial=False, power_exp=True,
                                power_base=False, log=False)
        if within(expanded):
            expression = expanded
    for constant in _constants(expression):
        if constant in expression.atoms(sympy.Float):  # an earlier replacement may have removed it
            expression = _exact(expression, constant, tolerance, within)
    for constant in _constants(expression):
        if constant in expression.atoms(sympy.Float):
            expression = _rounded(expression, constant, within)
    combined = sympy.powsimp(expression)
    return combined if within(combined) else expression
