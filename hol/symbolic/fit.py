"""Fitting one link: the best ``y ≈ a f(b x + c) + d`` over a library of candidate functions ``f``, with R².

For each candidate (as pykan's ``fit_params``, Liu et al. 2024, arXiv:2404.19756, §2.5.1):

1. Coordinates. ``x`` is mapped onto ``t`` in ``[-1, 1]`` and ``y`` standardized, so the search ranges below
   mean the same for a link on ``[-1, 1]`` and for one on a narrow hidden range such as ``[3.20, 3.26]``.
2. Grid. A ``grid x grid`` grid of ``(β, γ)`` in ``[-extent, extent]²`` (default 61 x 61 in ``[-10, 10]²``),
   each with the linear least squares for ``(a, d)``: the R² of ``a f(β t + γ) + d``. A ``(β, γ)`` at which
   ``f`` is undefined (:meth:`~hol.symbolic.library.Candidate.evaluate`: outside its domain or not finite)
   at any sample excludes the candidate there; a candidate defined at no grid point is left out. The grid uses
   at most 256 of the samples (evenly spread in ``t``).
3. Refinement. From the ``starts`` best local maxima of the grid's R², ``scipy.optimize.least_squares``
   refines all four parameters on all samples by variable projection (Golub and Pereyra): it moves ``(β,
   γ)`` (trust-region reflective, within ``[-2 extent, 2 extent]``, Kaufman's Jacobian from autograd's
   ``f'``) with ``(a, d)`` the linear least squares at every step, which stays well conditioned where
   ``a f + d`` cancels (a narrow range, where ``f`` is nearly linear) and converges where refining the four
   together crawled. A trial step leaving the candidate's domain gets a large residual and is rejected, so
   every iterate stays where ``f`` is defined. The best result over the starts is kept (never worse than
   its grid point).
4. Back to ``x`` and ``y``, then the candidate's canonical parameters (:mod:`hol.symbolic.library`), and R²
   measured on all samples with them.

R² is ``1 - SS_res / (SS_tot + N (1e-12 max|y|)²)``: the usual coefficient of determination for a link that
varies, and about 1 for every candidate on a constant link (which each fits with ``a = 0``), where the
simplest (``0``) is then chosen. It is never NaN.

:func:`fit_link` chooses among the candidates: the highest R², except that a simpler candidate (lower
complexity) within ``tolerance`` of it wins, so an exactly linear link is ``x`` rather than ``x**2`` with a
huge shift, which approaches a line. Whatever the choice, the fit carries its R²: a link the library cannot
express says so with an R² clearly below 1 (pykan's ``auto_symbolic`` fixed such links silently, its users
found; :mod:`hol.symbolic.formula` refuses them by default).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import scipy.optimize
import sympy  # type: ignore[import-untyped]
import torch
from torch import Tensor

from ..checks import check_int, check_number
from .library import Candidate, candidates

MIN_R2 = 1 - 1e-6
"""The R² from which a fit is taken as the link's formula (:func:`hol.symbolic.fix.fix_symbolic`,
:func:`hol.symbolic.formula.formula`) unless told otherwise. Measured: the links of networks trained to a test
RMSE of 1e-9 fit their functions to 1 - R² below 1e-15, while a sine fits the Bessel function J0(4x) on
[-1, 1], which no candidate is, to 1 - R² = 4.8e-5: pykan's 0.999 would take it and write a formula
millions of times worse than the network."""
GRID_SAMPLES = 256
MAX_EVALUATIONS = 50  # per refinement: exact fits converge in fewer; the others creep towards a limit
_REJECT = 1e3  # residual of every sample at a trial step outside the candidate's domain (standardized units)


@dataclass(frozen=True)
class LinkFit:
    """A link fitted as ``a f(b x + c) + d``.

    Attributes:
        name: the candidate ``f``'s name.
        a, b, c, d: the parameters (canonical for the built-in candidates).
        r2: the coefficient of determination on the samples it was fitted on (module docstring).
        candidate: ``f`` itself.
    """

    name: str
    a: float
    b: float
    c: float
    d: float
    r2: float
    candidate: Candidate = field(repr=False)

    def expression(self, variable: sympy.Expr | str = "x") -> sympy.Expr:
        """The fit as a sympy expression of ``variable`` (a name or any sympy expression); parameters that are
        whole numbers are written as integers (``b = 1`` gives ``f(x + c)``)."""
        if isinstance(variable, str):
            variable = sympy.Symbol(variable)
        a, b, c, d = (number(value) for value in (self.a, self.b, self.c, self.d))
        if self.a == 0:  # (sympy would ask whether 0 f(...) is finite)
            return d
        return a * self.candidate.sympy_function(b * variable + c) + d

    def __call__(self, x: Tensor) -> Tensor:
        """The fit's values at ``x`` (any shape)."""
        return self.a * self.candidate.torch_function(self.b * x + self.c) + self.d


def number(value: float) -> sympy.Expr:
    """``value`` as a sympy number: an ``Integer`` if it is a whole number, else a ``Float``."""
    return sympy.Integer(int(value)) if float(value).is_integer() else sympy.Float(value)


def r_squared(y: Tensor, fitted: Tensor) -> float:
    """R² of ``fitted`` against ``y`` (1-D, float64), as the module docstring defines it; a non-finite
    ``fitted`` value gives ``-inf``."""
    if not bool(torch.isfinite(fitted).all()):
        return float("-inf")
    ss_res = float((y - fitted).square().sum())
    ss_tot = float((y - y.mean()).square().sum()) + len(y) * (1e-12 * float(y.abs().max())) ** 2
    if ss_tot == 0.0:
        return 1.0 if ss_res == 0.0 else 0.0
    return 1.0 - ss_res / ss_tot


def _samples(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    x = torch.as_tensor(x).detach().reshape(-1).to("cpu", torch.float64)
    y = torch.as_tensor(y).detach().reshape(-1).to("cpu", torch.float64)
    if x.shape != y.shape:
        raise ValueError(f"x and y must have as many values, got {len(x)} and {len(y)}")
    if len(x) < 5:
        raise ValueError(f"a fit of a f(b x + c) + d needs at least 5 samples, got {len(x)}")
    if not bool(torch.isfinite(x).all() and torch.isfinite(y).all()):
        raise ValueError("x and y must be finite, got NaN or infinite values")
    if float(x.max() - x.min()) <= 0.0:
        raise ValueError(f"x must span an interval, got every sample at {float(x[0])!r}")
    return x, y


def _linear_fit(values: Tensor, y: Tensor) -> tuple[float, float]:
    """``(a, d)`` of the least squares ``y ≈ a values + d`` (``a = 0`` for constant values)."""
    centred = values - values.mean()
    spread = float(centred.square().sum())
    constant = spread <= len(y) * (1e-12 * float(values.abs().max())) ** 2  # rounding of a constant
    a = 0.0 if constant else float((centred * (y - y.mean())).sum()) / spread
    return a, float((y - a * values).mean())


def _grid_starts(t: Tensor, y: Tensor, candidate: Candidate, grid: int, extent: float,
                 starts: int) -> list[tuple[float, float]]:
    """The ``(β, γ)`` of the ``starts`` best local maxima of the grid's R² (module docstring, step 2)."""
    if len(t) > GRID_SAMPLES:
        order = torch.argsort(t)
        keep = order[torch.linspace(0, len(t) - 1, GRID_SAMPLES).round().long()]
        t, y = t[keep], y[keep]
    axis = torch.linspace(-extent, extent, grid, dtype=torch.float64)
    z = axis[:, None, None] * t + axis[None, :, None]  # [β, γ, N]
    with torch.no_grad():
        values, defined = candidate.evaluate(z)
    valid = defined.all(-1)
    values = torch.where(valid[..., None], values, 0.0)
    centred = values - values.mean(-1, keepdim=True)
    y_centred = y - y.mean()
    spread = centred.square().sum(-1)
    r2 = (centred * y_centred).sum(-1).square() / (spread * y_centred.square().sum()).clamp_min(1e-300)
    r2 = torch.where(spread > len(t) * (1e-12 * values.abs().amax(-1)) ** 2, r2, 0.0)  # f not constant
    r2 = torch.where(valid, r2, float("-inf"))
    peaks = torch.nn.functional.max_pool2d(r2[None, None], 3, stride=1, padding=1)[0, 0]
    local = valid & (r2 >= peaks)
    scores = torch.where(local, r2, float("-inf")).flatten()
    best = torch.argsort(scores, descending=True, stable=True)[:starts]
    return [(float(axis[i // grid]), float(axis[i % grid])) for i in best.tolist()
            if scores[i] > float("-inf")]


def _span(values: np.ndarray) -> np.ndarray:
    """An orthonormal basis of the span of ``values`` and the constant (one column for constant values)."""
    u, s, _ = np.linalg.svd(np.stack((values, np.ones_like(values)), -1), full_matrices=False)
    return u[:, s > s[0] * 1e-12]


def _refine(t: Tensor, y: Tensor, candidate: Candidate, start: tuple[float, float],
            bound: float) -> tuple[float, float]:
    """``(β, γ)`` refined from the grid point ``start`` by variable projection (module docstring, step 3)."""
    f, y_values = candidate.torch_function, y.numpy()

    def residuals(p: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            values, defined = candidate.evaluate(p[0] * t + p[1])
        if not bool(defined.all()):
            return np.full(len(t), _REJECT)
        span = _span(values.numpy())
        return span @ (span.T @ y_values) - y_values

    def jacobian(p: np.ndarray) -> np.ndarray:  # Kaufman's: d/dp of a f(β t + γ), orthogonal to the span
        z = (p[0] * t + p[1]).requires_grad_()
        values = f(z)
        (slope,) = torch.autograd.grad(values.sum(), z, allow_unused=True)
        slope = torch.zeros_like(z) if slope is None else torch.nan_to_num(slope)
        a, _ = _linear_fit(values.detach(), y)
        columns = a * torch.stack((slope * t, slope), -1).numpy()
        span = _span(values.detach().numpy())
        return columns - span @ (span.T @ columns)

    result = scipy.optimize.least_squares(
        residuals, np.array(start), jac=jacobian, method="trf", x_scale="jac",
        bounds=([-bound, -bound], [bound, bound]), ftol=1e-12, xtol=1e-12, gtol=1e-12,
        max_nfev=MAX_EVALUATIONS)
    return float(result.x[0]), float(result.x[1])


def fit_candidate(x: Tensor, y: Tensor, candidate: Candidate | str, *, grid: int = 61, extent: float = 10.0,
                  starts: int = 3) -> LinkFit | None:
    """The least-squares fit ``y ≈ a f(b x + c) + d`` of one candidate (module docstring).

    Args:
        x, y: the samples, any shapes of as many values (flattened; float64 inside).
        candidate: a :class:`~hol.symbolic.library.Candidate` or a built-in name.
        grid: grid points per axis of ``(β, γ)``; extent: its half-width; starts: local refinements.

    Returns:
        The fit, or ``None`` where the candidate is defined at no point of the grid.

    Raises:
        ValueError: fewer than 5 samples, non-finite ones, ``x`` not spanning an interval, an unknown name or
            a bad option (one line each).
    """
    x, y = _samples(x, y)
    if isinstance(candidate, str):
        candidate = candidates([candidate])[candidate]
    check_int("grid", grid, 3)
    check_number("extent", extent, 0, above=True)
    check_int("starts", starts, 1)
    low, high = float(x.min()), float(x.max())
    centre, half = (high + low) / 2, (high - low) / 2
    t = (x - centre) / half
    mean = y.mean()
    scale = float(y.std()) or 1.0
    standard = (y - mean) / scale
    best, best_r2 = None, float("-inf")
    for start in _grid_starts(t, standard, candidate, grid, extent, starts):
        beta, gamma = _refine(t, standard, candidate, start, 2 * extent)
        with torch.no_grad():
            values = candidate.torch_function(beta * t + gamma)
        a, d = _linear_fit(values, standard)
        r2 = r_squared(standard, a * values + d)
        if best is None or r2 > best_r2:
            best, best_r2 = (beta, gamma, a, d), r2
    if best is None:
        return None
    beta, gamma, a, d = best
    fitted = (scale * a, beta / half, gamma - beta * centre / half, float(mean) + scale * d)
    forms = [fitted] if candidate.canonical is None else [candidate.canonical(*fitted), fitted]
    fits = [LinkFit(candidate.name, *form, r2=0.0, candidate=candidate) for form in forms]
    with torch.no_grad():
        r2s = [r_squared(y, fit(x)) for fit in fits]
    # the canonical form, unless it lost accuracy (a shift c/b far larger than x, cancelling in (x + c/b)^2)
    chosen = 0 if r2s[0] >= r2s[-1] - 1e-12 else len(fits) - 1
    return dataclasses.replace(fits[chosen], r2=r2s[chosen])


def fit_candidates(x: Tensor, y: Tensor, library: Iterable[str | Candidate] | None = None,
                   **options) -> list[LinkFit]:
    """Every candidate of ``library`` (:func:`hol.symbolic.library.candidates`; ``None``: all built-in ones)
    fitted to the samples, best R² first (candidates defined at no grid point left out). ``options``: those
    of :func:`fit_candidate`. Raises ``ValueError`` as :func:`fit_candidate` and
    :func:`~hol.symbolic.library.candidates` do."""
    fits = [fit_candidate(x, y, candidate, **options) for candidate in candidates(library).values()]
    return sorted((fit for fit in fits if fit is not None), key=lambda fit: -fit.r2)


def choose(fits: Iterable[LinkFit], tolerance: float = 1e-9) -> LinkFit:
    """The fit of highest R², or the simplest (lowest complexity, then highest R²) within ``tolerance`` of it.

    Raises:
        ValueError: no fits.
    """
    fits = list(fits)
    if not fits:
        raise ValueError("no candidate could be fitted: every one is undefined on the samples")
    best = max(fit.r2 for fit in fits)
    close = [fit for fit in fits if fit.r2 >= best - tolerance]
    return min(close, key=lambda fit: (fit.candidate.complexity, -fit.r2))


def fit_link(x: Tensor, y: Tensor, library: Iterable[str | Candidate] | None = None, *,
             tolerance: float = 1e-9, **options) -> LinkFit:
    """The best fit ``y ≈ a f(b x + c) + d`` over ``library``: :func:`fit_candidates`, then :func:`choose`.

    Examples::

        >>> import math, torch
        >>> x = torch.linspace(-1, 1, 101, dtype=torch.float64)
        >>> fit = fit_link(x, 2 * torch.sin(3 * x + 1) - 0.5)
        >>> fit.name, round(fit.a, 9), round(fit.b, 9), round(fit.c, 9), round(fit.d, 9), fit.r2 > 1 - 1e-12
        ('sin', 2.0, 3.0, 1.0, -0.5, True)
    """
    check_number("tolerance", tolerance, 0)
    return choose(fit_candidates(x, y, library, **options), tolerance)
