"""Residual-based adaptive collocation: interior points drawn where the current solution fits the PDE worst.

The density is RAD's (Wu, Zhu, Tan, Kartha & Lu, "A comprehensive study of non-adaptive and residual-based
adaptive sampling for physics-informed neural networks", Comput. Methods Appl. Mech. Engrg. 403, 115671,
2023, eq. 2)::

    p(x) ∝ |r(x)|^k / mean(|r|^k) + c

over a large uniform draw of candidate points, ``r`` the equation's residual at ``x`` (its Euclidean norm
where the equation has several), ``k`` the ``exponent`` and ``c`` the ``constant``. ``c`` keeps a share of
the points uniform (``c -> inf``: uniform sampling); ``k = 1, c = 1`` is the paper's recommended default,
measured best or near best across its problems (Burgers among them). The interior points are drawn from the
candidates without replacement. In a training loop, redraw them every so many optimizer iterations::

    >>> import torch, hol
    >>> from hol.pde import Burgers, Solution, residual_sample
    >>> equation = Burgers()
    >>> net = hol.networks.MLP("continuous", 2, 1, hidden_layers=1, hidden_width=4, n=3).double()
    >>> generator = torch.Generator().manual_seed(0)
    >>> batch = equation.sample(interior=500, boundary=50, initial=50, generator=generator,
    ...                         dtype=torch.float64)
    >>> batch["interior"] = residual_sample(equation, Solution(net, equation), 500, generator,
    ...                                     candidates=5000)
    >>> tuple(batch["interior"].shape)
    (500, 2)
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..checks import check_int, check_number
from .equations import Equation, Model


def residual_norm(equation: Equation, model: Model, points: Tensor, chunk: int = 16384) -> Tensor:
    """``|r|`` at ``points``: the Euclidean norm of the equation's residual there, without a graph.

    Shapes: ``points [N, d]`` (in the model's dtype and device) -> ``[N]``; evaluated ``chunk`` points at a
    time (each chunk holds the graph of two derivatives of the model).
    """
    norms = []
    for part in points.split(chunk):
        part = part.detach().requires_grad_(True)
        with torch.enable_grad():
            residual = equation.residual(part, model(part))
        norms.append(residual.detach().norm(dim=-1))
    return torch.cat(norms)


def residual_sample(equation: Equation, model: Model, count: int, generator: torch.Generator,
                    candidates: int = 100_000, exponent: float = 1.0, constant: float = 1.0,
                    dtype: torch.dtype = torch.float64, device: torch.device | str | None = None) -> Tensor:
    """``count`` interior points drawn from RAD's density (module docstring) of ``model``.

    Args:
        equation: the equation whose residual sets the density.
        model: points ``[N, d]`` in ``dtype`` on ``device`` -> fields ``[N, F]``.
        count: points to draw (at most ``candidates``).
        generator: the CPU generator of the candidates and of the draw.
        candidates: uniform points among which the draw chooses.
        exponent: ``k >= 0``; 0 gives uniform sampling.
        constant: ``c >= 0``; the weight of the uniform share.
        dtype, device: where ``model`` is evaluated; the points are returned in ``dtype`` on the CPU.

    Returns:
        ``[count, d]`` points of the domain (float64 coordinates rounded once to ``dtype``).

    Raises:
        ValueError: ``count`` above ``candidates`` or below 1, a negative ``exponent`` or ``constant``, or a
            density that is not finite (the model's residual overflowed), naming the value.
    """
    candidates = check_int("candidates", candidates, 1)
    count = check_int("count", count, 1, candidates)
    exponent = check_number("exponent", exponent, 0)
    constant = check_number("constant", constant, 0)
    points = equation.uniform(candidates, generator).to(dtype)
    residual = residual_norm(equation, model, points.to(device)).double().cpu().pow(exponent)
    mean = residual.mean()
    if not torch.isfinite(mean):
        raise ValueError(f"the residual at the candidate points is not finite (mean |r|^{exponent:g} = "
                         f"{float(mean)}): no residual-based density to draw from")
    density = (residual / mean if mean > 0 else torch.zeros_like(residual)) + constant
    if not density.sum() > 0:  # exactly zero residual and constant 0: nothing to prefer
        density = torch.ones_like(density)
    chosen = torch.multinomial(density, count, replacement=False, generator=generator)
    return points[chosen]
