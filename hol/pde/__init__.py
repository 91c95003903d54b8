"""hol.pde: physics-informed training of hol networks (pure torch and numpy; no Lightning, no Hydra).

An equation (:class:`Poisson`, :class:`Burgers`, :class:`Euler`; :func:`make_equation` by name) gives its
residual, boundary and initial conditions, collocation points and reference solution; :class:`Solution`
makes a network of hol layers a function of the equation's coordinates. A training loop in a few lines::

    >>> import torch, hol
    >>> from hol.pde import Poisson, Solution
    >>> _ = torch.manual_seed(1)
    >>> equation = Poisson(forcing="-2*pi**2*sin(pi*x)*sin(pi*y)", exact="sin(pi*x)*sin(pi*y)")
    >>> net = hol.networks.MLP("continuous_prod", 2, 1, hidden_layers=0, hidden_width=1, n=10, alpha=0.0,
    ...                        normalization="none", output_layer="linear").double()
    >>> model = Solution(net, equation)
    >>> batch = equation.sample(interior=1000, boundary=200, initial=0,
    ...                         generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    >>> optimizer = torch.optim.LBFGS(model.parameters(), max_iter=200, line_search_fn="strong_wolfe")
    >>> def closure():
    ...     optimizer.zero_grad()
    ...     loss = equation.losses(model, batch)["loss"]
    ...     loss.backward()
    ...     return loss
    >>> _ = optimizer.step(closure)
    >>> grid = equation.grid([41, 41])
    >>> bool((model(grid) - equation.exact(grid)).square().mean() < 1e-8)  # u = f(x) g(y), degree 9 links
    True

Modules: :mod:`~hol.pde.equations` (the equations and their losses), :mod:`~hol.pde.solution`,
:mod:`~hol.pde.breaks` (jumps of piecewise links at their breaks, a loss term), :mod:`~hol.pde.sampling`
(residual-based adaptive collocation points), :mod:`~hol.pde.riemann` (the exact Riemann solver of the Euler
equations), :mod:`~hol.pde.cole_hopf` (the Burgers reference).
"""
from .breaks import break_jumps
from .equations import EQUATIONS, TERMS, Burgers, Equation, Euler, Poisson, derivative, make_equation
from .sampling import residual_norm, residual_sample
from .solution import Solution

__all__ = ["EQUATIONS", "TERMS", "Burgers", "Equation", "Euler", "Poisson", "Solution", "break_jumps",
           "derivative", "make_equation", "residual_norm", "residual_sample"]
