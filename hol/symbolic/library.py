"""The candidate functions a link is fitted with: each one a torch function, the same function in sympy, a
complexity, where it is defined, and its canonical parameters.

A link is fitted as ``a f(b x + c) + d`` (:mod:`hol.symbolic.fit`) for every candidate ``f`` of a library, as
pykan's ``SYMBOLIC_LIB`` (Liu et al. 2024, "KAN: Kolmogorov-Arnold Networks", arXiv:2404.19756, §2.5.1):

=============  ==============  ==========  ===============================================================
name           f(z)            complexity  defined / canonical ``(a, b, c, d)``
=============  ==============  ==========  ===============================================================
``0``          0               0           everywhere; ``a = 0``, ``b = 1``, ``c = 0``
``x``          z               1           everywhere; ``b = 1``, ``c = 0``
``x**2``       z²              2           everywhere; ``b = 1``
``x**3``       z³              3           everywhere; ``b = 1``
``x**4``       z⁴              4           everywhere; ``b = 1``
``exp``        e^z             3           everywhere; ``c = 0``
``log``        log z           3           ``z > 0``; ``b = ±1``
``sqrt``       √z              3           ``z > 0`` (not at 0, where its slope is infinite); ``b = ±1``
``1/x``        1/z             3           ``z ≠ 0``; ``b = 1``
``sin``        sin z           3           everywhere; ``b > 0``, ``-π/2 < c ≤ π/2``
``abs``        |z|             3           everywhere; ``b = 1``
``tanh``       tanh z          4           everywhere; ``b > 0``
``gaussian``   exp(-z²)        4           everywhere; ``b > 0``
``arctan``     arctan z        4           everywhere; ``b > 0``
=============  ==============  ==========  ===============================================================

The canonical parameters remove the redundancy of ``a f(b x + c) + d`` (``a (b x + c)² = a b² (x + c/b)²``,
``a e^(b x + c) = a e^c e^(b x)``, ``a sin(z) = -a sin(z + π)``, ...): equivalent fits get the same numbers.
The complexity orders candidates that fit equally well (:func:`hol.symbolic.fit.fit_link` prefers the simpler
one); cos is ``sin`` with a phase.

A library is a list of names and :class:`Candidate` objects (:func:`candidates`): a user adds a function as
``Candidate("j0", torch.special.bessel_j0, lambda z: sympy.besselj(0, z))``, where its values are finite.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import sympy  # type: ignore[import-untyped]
import torch
from torch import Tensor

from ..checks import check_choice

Parameters = tuple[float, float, float, float]
"""``(a, b, c, d)`` of ``a f(b x + c) + d``."""


@dataclass(frozen=True)
class Candidate:
    """One candidate function ``f`` of the fits ``a f(b x + c) + d``.

    Attributes:
        name: its name in a library (and in :class:`hol.symbolic.fit.LinkFit`).
        torch_function: ``f`` on tensors, elementwise and differentiable.
        sympy_function: ``f`` of a sympy expression.
        complexity: a small integer ordering candidates that fit equally well (simpler first).
        domain: a boolean mask of the points ``z`` where ``f`` is defined; ``None``: wherever its values are
            finite (the fits also exclude non-finite values of every candidate).
        canonical: the equivalent canonical ``(a, b, c, d)`` of fitted ones (module docstring); ``None``:
            kept as fitted.
    """

    name: str
    torch_function: Callable[[Tensor], Tensor]
    sympy_function: Callable[[sympy.Expr], sympy.Expr]
    complexity: int = 4
    domain: Callable[[Tensor], Tensor] | None = None
    canonical: Callable[[float, float, float, float], Parameters] | None = None

    def evaluate(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """``f(z)`` and where it is defined and finite (a boolean tensor of ``z``'s shape)."""
        values = self.torch_function(z)
        defined = torch.isfinite(values)
        return values, defined if self.domain is None else defined & self.domain(z)


# ------------------------------------------------------------------------------------------ canonical forms


def _unit_power(power: int) -> Callable[[float, float, float, float], Parameters]:
    """``a (b x + c)^k = a b^k (x + c/b)^k``."""
    def canonical(a: float, b: float, c: float, d: float) -> Parameters:
        return (a * b**power, 1.0, c / b, d) if b != 0 else (a, b, c, d)
    return canonical


def _line(a: float, b: float, c: float, d: float) -> Parameters:
    return a * b, 1.0, 0.0, a * c + d


def _inverse(a: float, b: float, c: float, d: float) -> Parameters:
    return (a / b, 1.0, c / b, d) if b != 0 else (a, b, c, d)


def _abs(a: float, b: float, c: float, d: float) -> Parameters:
    return (a * abs(b), 1.0, c / b, d) if b != 0 else (a, b, c, d)


def _sqrt(a: float, b: float, c: float, d: float) -> Parameters:
    return (a * math.sqrt(abs(b)), math.copysign(1.0, b), c / abs(b), d) if b != 0 else (a, b, c, d)


def _log(a: float, b: float, c: float, d: float) -> Parameters:
    return (a, math.copysign(1.0, b), c / abs(b), d + a * math.log(abs(b))) if b != 0 else (a, b, c, d)


def _exp(a: float, b: float, c: float, d: float) -> Parameters:
    return a * math.exp(c), b, 0.0, d


def _odd(a: float, b: float, c: float, d: float) -> Parameters:
    return (-a, -b, -c, d) if b < 0 else (a, b, c, d)


def _even(a: float, b: float, c: float, d: float) -> Parameters:
    return (a, -b, -c, d) if b < 0 else (a, b, c, d)


def _sin(a: float, b: float, c: float, d: float) -> Parameters:
    a, b, c, d = _odd(a, b, c, d)
    c = math.remainder(c, 2 * math.pi)  # in [-pi, pi]
    if c > math.pi / 2:
        a, c = -a, c - math.pi
    elif c <= -math.pi / 2:
        a, c = -a, c + math.pi
    return a, b, c, d


def _zero(a: float, b: float, c: float, d: float) -> Parameters:
    return 0.0, 1.0, 0.0, d


BUILTIN: dict[str, Candidate] = {candidate.name: candidate for candidate in (
    Candidate("0", lambda z: z * 0, lambda z: sympy.Integer(0), 0, canonical=_zero),
    Candidate("x", lambda z: z, lambda z: z, 1, canonical=_line),
    Candidate("x**2", lambda z: z**2, lambda z: z**2, 2, canonical=_unit_power(2)),
    Candidate("x**3", lambda z: z**3, lambda z: z**3, 3, canonical=_unit_power(3)),
    Candidate("x**4", lambda z: z**4, lambda z: z**4, 4, canonical=_unit_power(4)),
    Candidate("exp", torch.exp, sympy.exp, 3, canonical=_exp),
    Candidate("log", torch.log, sympy.log, 3, domain=lambda z: z > 0, canonical=_log),
    Candidate("sqrt", torch.sqrt, sympy.sqrt, 3, domain=lambda z: z > 0, canonical=_sqrt),
    Candidate("1/x", torch.reciprocal, lambda z: 1 / z, 3, domain=lambda z: z != 0, canonical=_inverse),
    Candidate("sin", torch.sin, sympy.sin, 3, canonical=_sin),
    Candidate("abs", torch.abs, sympy.Abs, 3, canonical=_abs),
    Candidate("tanh", torch.tanh, sympy.tanh, 4, canonical=_odd),
    Candidate("gaussian", lambda z: torch.exp(-(z**2)), lambda z: sympy.exp(-(z**2)), 4, canonical=_even),
    Candidate("arctan", torch.atan, sympy.atan, 4, canonical=_odd),
)}
"""The built-in candidates by name (module docstring)."""


def candidates(library: Iterable[str | Candidate] | None = None) -> dict[str, Candidate]:
    """The candidates of ``library`` by name: built-in names (:data:`BUILTIN`) and :class:`Candidate` objects
    of one's own, in order; ``None``: every built-in one.

    Raises:
        ValueError: an unknown name (one line listing the built-in names), an item that is neither, an empty
            library or a name given twice.
    """
    if library is None:
        return dict(BUILTIN)
    if isinstance(library, str):
        library = [library]
    chosen: dict[str, Candidate] = {}
    for item in library:
        if isinstance(item, str):
            item = BUILTIN[check_choice("symbolic function", item, BUILTIN)]
        elif not isinstance(item, Candidate):
            raise ValueError(f"a symbolic library lists names or Candidate objects, got {item!r}")
        if item.name in chosen:
            raise ValueError(f"symbolic function {item.name!r} is given twice")
        chosen[item.name] = item
    if not chosen:
        raise ValueError("a symbolic library needs at least one function, got none")
    return chosen
