"""The equations: residuals, boundary and initial conditions, collocation points and reference solutions.

An :class:`Equation` maps points of its domain (coordinates ``(x, y)``, or ``(x, t)`` with time last) to the
fields it names, and a solution candidate is any callable ``model(points [N, d]) -> fields [N, F]``
(:class:`hol.pde.Solution` wraps a network of hol layers, whose inputs live in ``[-1, 1]``). The loss of a
physics-informed fit is (:meth:`Equation.losses`)::

    loss = w_r mean(r^2) + w_b mean((u - g)^2 on the boundary) + w_0 mean((u - u_0)^2 at t = 0)

with the residual ``r`` taken at interior collocation points, its derivatives by autograd with
``create_graph=True`` (so the loss has gradients in the parameters, also on the sparse and product-unit
compute paths), and ``w`` the equation's ``weights``. The equations (:data:`EQUATIONS`):

* ``poisson`` (:class:`Poisson`): ``u_xx + u_yy = f`` on a rectangle, Dirichlet boundary;
* ``burgers`` (:class:`Burgers`): ``u_t + u u_x = nu u_xx``, zero Dirichlet boundaries;
* ``euler`` (:class:`Euler`): the 1-D Euler equations of a perfect gas, fields ``rho, u, p``, Riemann initial
  data, with the exact Riemann solution as reference and boundary values.

Expressions (forcing, exact solution, boundary values, initial state) are strings of the restricted language
of :mod:`hol.expr` in the coordinates' names ``x`` and ``y`` (never ``eval``).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from ..checks import check_choice, check_interval, check_number, is_number
from ..expr import Expression, parse
from .breaks import break_jumps
from .cole_hopf import burgers_sine
from .riemann import sample as riemann_sample
from .riemann import star_state

Model = Callable[[Tensor], Tensor]
"""A solution candidate: points ``[N, d]`` in the equation's coordinates -> fields ``[N, F]``."""
Batch = Mapping[str, Tensor]
"""Collocation points and condition data (:meth:`Equation.sample`): ``interior [Ni, d]``, ``boundary
[Nb, d]``, ``boundary_values [Nb, F]`` and, for time-dependent equations, ``initial [N0, d]``,
``initial_values [N0, F]``."""
TERMS = ("residual", "boundary", "initial", "breaks")
"""The loss terms, each a mean square, weighted by the equation's ``weights`` of the same names: the residual
at interior points, the boundary and initial conditions (default weight 1), and the jumps of piecewise links
at their breaks (:func:`hol.pde.breaks.break_jumps`, default weight 0)."""
DEFAULT_WEIGHTS = {"residual": 1.0, "boundary": 1.0, "initial": 1.0, "breaks": 0.0}


def derivative(values: Tensor, points: Tensor) -> Tensor:
    """``d values / d points`` per point, with the graph kept (for higher derivatives and the parameters'
    gradients).

    Shapes: ``values [N]`` (each entry a function of its own point only), ``points [N, d]`` (requires grad)
    -> ``[N, d]``; zeros where ``values`` does not depend on ``points`` (a field linear in a coordinate has
    no second derivative in the graph).
    """
    (gradient,) = torch.autograd.grad(values.sum(), points, create_graph=True, materialize_grads=True)
    return gradient


def _check_domain(name: str, domain: Any, dims: int) -> tuple[tuple[float, float], ...]:
    if (not isinstance(domain, Sequence) or isinstance(domain, str) or len(domain) != dims):
        raise ValueError(f"{name} must be {dims} interval(s) [low, high], got {domain!r}")
    return tuple(check_interval(f"{name}[{index}]", interval) for index, interval in enumerate(domain))


def _check_weights(weights: Mapping[str, Any] | None, terms: Sequence[str]) -> dict[str, float]:
    weights = dict(weights or {})
    unknown = sorted(str(key) for key in weights if key not in terms)
    if unknown:
        raise ValueError(f"unknown pde.weights {', '.join(unknown)}; allowed: {', '.join(terms)}")
    return {term: check_number(f"pde.weights.{term}", weights.get(term, DEFAULT_WEIGHTS[term]), 0)
            for term in terms}


def _expression(name: str, text: Any, variables: Sequence[str]) -> Expression:
    """``text`` parsed, using no variable outside ``variables`` (``ValueError`` naming ``name``)."""
    if is_number(text):
        text = repr(float(text))
    try:
        return parse(text, variables)
    except ValueError as error:
        raise ValueError(f"{name}: {error}") from None


def _evaluate(expression: Expression, points: Tensor) -> Tensor:
    """An expression of the leading coordinates at ``points [N, >=1]``, in float64. Shape ``[N]``."""
    return expression(*points.double().unbind(-1)[:len(expression.names)])


class Equation:
    """A PDE on a box: its fields, residual, conditions, collocation sampling and reference.

    Subclasses set :attr:`name`, :attr:`fields`, :attr:`coordinates`, and implement :meth:`residual`,
    :meth:`boundary_values` and, when time-dependent, :meth:`initial_values`; :meth:`exact` where a reference
    exists.

    Args:
        domain: one interval ``[low, high]`` per coordinate (time last: ``[0, t_end]``).
        weights: mapping of loss terms (:data:`TERMS` that apply) to their non-negative weights (default 1).
    """

    name: ClassVar[str]
    fields: ClassVar[tuple[str, ...]]
    coordinates: ClassVar[tuple[str, ...]]

    def __init__(self, domain: Sequence[Sequence[float]], weights: Mapping[str, Any] | None = None):
        self.domain = _check_domain("pde.domain", domain, len(self.coordinates))
        self.weights = _check_weights(weights, self.terms)

    @property
    def time_dependent(self) -> bool:
        """Whether the last coordinate is time (then there is an initial condition at its lower end)."""
        return self.coordinates[-1] == "t"

    @property
    def terms(self) -> tuple[str, ...]:
        """The loss terms of this equation (``initial`` only when time-dependent)."""
        return tuple(term for term in TERMS if term != "initial" or self.time_dependent)

    def hparams(self) -> dict[str, Any]:
        """The arguments that rebuild this equation with :func:`make_equation` (``name`` and options)."""
        return {"name": self.name, "domain": [list(interval) for interval in self.domain],
                "weights": dict(self.weights), **self._options()}

    def _options(self) -> dict[str, Any]:
        raise NotImplementedError

    # ---- geometry

    def _bounds(self, reference: Tensor) -> tuple[Tensor, Tensor]:
        low = torch.tensor([interval[0] for interval in self.domain], dtype=reference.dtype,
                           device=reference.device)
        high = torch.tensor([interval[1] for interval in self.domain], dtype=reference.dtype,
                            device=reference.device)
        return low, high

    def to_unit(self, points: Tensor) -> Tensor:
        """``points`` of the domain mapped affinely onto ``[-1, 1]^d`` (the layers' default domain);
        differentiable. Shape ``[..., d] -> [..., d]``."""
        low, high = self._bounds(points)
        return (2 * points - (low + high)) / (high - low)

    def uniform(self, count: int, generator: torch.Generator) -> Tensor:
        """``count`` points drawn uniformly in the domain, float64. Shape ``[count, d]``."""
        unit = torch.rand(count, len(self.domain), generator=generator, dtype=torch.float64)
        low, high = self._bounds(unit)
        return low + (high - low) * unit

    def boundary_points(self, count: int, generator: torch.Generator) -> Tensor:
        """``count`` points drawn uniformly on the spatial boundary (for all times in the time-dependent
        case), float64. Shape ``[count, d]``."""
        points = self.uniform(count, generator)
        spatial = len(self.domain) - self.time_dependent
        lengths = torch.tensor([high - low for low, high in self.domain[:spatial]], dtype=torch.float64)
        # a point lies on the face x_j = low or high; face pairs chosen in proportion to their measure
        measure = lengths.prod() / lengths
        axis = torch.multinomial(measure / measure.sum(), count, replacement=True, generator=generator)
        side = torch.randint(0, 2, (count,), generator=generator)
        for j in range(spatial):
            chosen = axis == j
            low, high = self.domain[j]
            points[chosen, j] = torch.where(side[chosen] == 0, low, high).double()
        return points

    def initial_points(self, count: int, generator: torch.Generator) -> Tensor:
        """``count`` points drawn uniformly in space at the initial time, float64. Shape ``[count, d]``."""
        points = self.uniform(count, generator)
        points[:, -1] = self.domain[-1][0]
        return points

    def grid(self, sizes: Sequence[int]) -> Tensor:
        """A uniform grid with ``sizes[j]`` points along coordinate ``j`` (ends included), the first
        coordinate fastest, float64. Shape ``[prod(sizes), d]``."""
        axes = [torch.linspace(low, high, size, dtype=torch.float64)
                for (low, high), size in zip(self.domain, sizes, strict=True)]
        mesh = torch.meshgrid(*reversed(axes), indexing="ij")
        return torch.stack([axis.flatten() for axis in reversed(mesh)], dim=-1)

    def sample(self, interior: int, boundary: int, initial: int, generator: torch.Generator,
               dtype: torch.dtype = torch.float32) -> dict[str, Tensor]:
        """Collocation points and condition data (:data:`Batch`) drawn from ``generator``: ``interior``
        points in the domain, ``boundary`` on its spatial boundary with the boundary values, and for
        time-dependent equations ``initial`` at the initial time with the initial values; in ``dtype``,
        each value computed in float64 at its point as stored."""
        batch = {"interior": self.uniform(interior, generator).to(dtype),
                 "boundary": self.boundary_points(boundary, generator).to(dtype)}
        batch["boundary_values"] = self.boundary_values(batch["boundary"].double()).to(dtype)
        if self.time_dependent:
            batch["initial"] = self.initial_points(initial, generator).to(dtype)
            batch["initial_values"] = self.initial_values(batch["initial"].double()).to(dtype)
        return batch

    # ---- the equation

    def residual(self, points: Tensor, fields: Tensor) -> Tensor:
        """The PDE's residual at interior points (already weighted where the equation weights points).

        Shapes: ``points [N, d]`` (requires grad), ``fields [N, F]`` (the model at ``points``) -> ``[N, R]``.
        """
        raise NotImplementedError

    def boundary_values(self, points: Tensor) -> Tensor:
        """The Dirichlet data at boundary points. Shape ``[N, d] -> [N, F]`` (float64)."""
        raise NotImplementedError

    def initial_values(self, points: Tensor) -> Tensor:
        """The initial state at points of the initial time. Shape ``[N, d] -> [N, F]`` (float64)."""
        raise NotImplementedError

    def exact(self, points: Tensor) -> Tensor | None:
        """The exact or reference solution at ``points`` (float64, ``[N, d] -> [N, F]``), or ``None`` where
        the equation has none."""
        return None

    def losses(self, model: Model, batch: Batch) -> dict[str, Tensor]:
        """The mean squares of :data:`TERMS` and their weighted sum ``loss``, differentiable in the model's
        parameters; ``breaks`` only for a model that is an ``nn.Module`` (its hol layers' jumps).

        Args:
            model: points ``[N, d]`` -> fields ``[N, F]``.
            batch: :data:`Batch` (:meth:`sample`).

        Raises:
            ValueError: ``weights.breaks > 0`` for a model that is no ``nn.Module``.
        """
        points = batch["interior"].detach().requires_grad_(True)
        with torch.enable_grad():
            terms = {"residual": self.residual(points, model(points)).square().mean()}
        terms["boundary"] = (model(batch["boundary"]) - batch["boundary_values"]).square().mean()
        if self.time_dependent:
            terms["initial"] = (model(batch["initial"]) - batch["initial_values"]).square().mean()
        if isinstance(model, nn.Module):
            jumps = break_jumps(model)
            terms["breaks"] = jumps.square().mean() if jumps.numel() else terms["residual"].new_zeros(())
        elif self.weights["breaks"]:
            raise ValueError("pde.weights.breaks needs a model that is an nn.Module (its layers' breaks), "
                             "got "
                             f"{type(model).__name__}")
        terms["loss"] = sum((self.weights[term] * terms[term] for term in self.terms if term in terms),
                            torch.zeros((), dtype=terms["residual"].dtype, device=points.device))
        return terms


class Poisson(Equation):
    """``u_xx + u_yy = f(x, y)`` on a rectangle, ``u = g`` on its boundary.

    Args:
        forcing: ``f``, an expression of ``x`` and ``y``.
        exact: the exact solution, an expression of ``x`` and ``y``, or ``None`` (then no error metrics).
        boundary: ``g``, an expression of ``x`` and ``y``; ``None``: the exact solution where given, else 0.
        domain: ``[[x_low, x_high], [y_low, y_high]]``.
        weights: ``residual`` and ``boundary`` (the KAN paper's problem weighs the residual by 0.01).

    Raises:
        ValueError: an expression outside :mod:`hol.expr`'s language or in other variables, a bad domain or
            weight; the message names the option.
    """

    name = "poisson"
    fields = ("u",)
    coordinates = ("x", "y")

    def __init__(self, forcing: str | float = "0", exact: str | float | None = None,
                 boundary: str | float | None = None, domain: Sequence[Sequence[float]] = ((-1, 1), (-1, 1)),
                 weights: Mapping[str, Any] | None = None):
        super().__init__(domain, weights)
        self.forcing = _expression("pde.forcing", forcing, self.coordinates)
        self.exact_solution = None if exact is None else _expression("pde.exact", exact, self.coordinates)
        self.boundary = (_expression("pde.boundary", boundary, self.coordinates) if boundary is not None
                         else self.exact_solution or _expression("pde.boundary", "0", self.coordinates))

    def _options(self) -> dict[str, Any]:
        exact = self.exact_solution
        return {"forcing": self.forcing.text, "exact": None if exact is None else exact.text,
                "boundary": self.boundary.text}

    def residual(self, points: Tensor, fields: Tensor) -> Tensor:
        gradient = derivative(fields[:, 0], points)
        laplacian = sum(derivative(gradient[:, j], points)[:, j] for j in range(points.shape[1]))
        forcing = _evaluate(self.forcing, points.detach()).to(fields.dtype)
        return (laplacian - forcing).unsqueeze(-1)

    def boundary_values(self, points: Tensor) -> Tensor:
        return _evaluate(self.boundary, points).unsqueeze(-1)

    def exact(self, points: Tensor) -> Tensor | None:
        if self.exact_solution is None:
            return None
        return _evaluate(self.exact_solution, points).unsqueeze(-1)


class SpaceTimeEquation(Equation):
    """An equation in one space dimension and time, on ``domain`` (the ``x`` interval) for ``t`` in
    ``[0, t_end]``; its hparams give the ``x`` interval as its constructor takes it.

    Raises:
        ValueError: ``t_end <= 0`` or a bad interval, naming the option.
    """

    coordinates = ("x", "t")

    def __init__(self, domain: Sequence[float], t_end: float, weights: Mapping[str, Any] | None):
        self.t_end = check_number("pde.t_end", t_end, 0, above=True)
        super().__init__((check_interval("pde.domain", domain), (0.0, self.t_end)), weights)

    def hparams(self) -> dict[str, Any]:
        return {**super().hparams(), "domain": list(self.domain[0]), "t_end": self.t_end}


STANDARD_BURGERS = "-sin(pi*x)"
"""The initial state whose solution on ``[-1, 1]`` :func:`hol.pde.cole_hopf.burgers_sine` gives."""


class Burgers(SpaceTimeEquation):
    """Viscous Burgers ``u_t + u u_x = nu u_xx`` for ``x`` in ``domain``, ``t`` in ``[0, t_end]``, with
    ``u(x, 0) = initial(x)`` and ``u = 0`` at both ends of the interval.

    The reference, for the standard initial state ``-sin(pi x)`` on ``[-1, 1]`` (recognized by its values),
    is the Cole–Hopf solution (:func:`hol.pde.cole_hopf.burgers_sine`); other problems have none.

    Args:
        viscosity: ``nu > 0`` (Raissi et al. 2019: ``0.01 / pi``).
        initial: ``u(x, 0)``, an expression of ``x``.
        domain: ``[x_low, x_high]``.
        t_end: the final time, ``> 0``.
        weights: ``residual``, ``boundary``, ``initial``.

    Raises:
        ValueError: naming a bad option.
    """

    name = "burgers"
    fields = ("u",)

    def __init__(self, viscosity: float = 0.01 / math.pi, initial: str = STANDARD_BURGERS,
                 domain: Sequence[float] = (-1.0, 1.0), t_end: float = 1.0,
                 weights: Mapping[str, Any] | None = None):
        super().__init__(domain, t_end, weights)
        self.viscosity = check_number("pde.viscosity", viscosity, 0, above=True)
        self.initial = _expression("pde.initial", initial, ("x",))
        self.standard = self.domain[0] == (-1.0, 1.0) and self._matches_standard()

    def _matches_standard(self) -> bool:
        x = torch.linspace(-1, 1, 257, dtype=torch.float64).unsqueeze(-1)
        values = _evaluate(self.initial, x)
        return bool(torch.allclose(values, -torch.sin(math.pi * x[:, 0]), rtol=0, atol=1e-12))

    def _options(self) -> dict[str, Any]:
        return {"viscosity": self.viscosity, "initial": self.initial.text}

    def residual(self, points: Tensor, fields: Tensor) -> Tensor:
        u = fields[:, 0]
        gradient = derivative(u, points)
        u_x, u_t = gradient[:, 0], gradient[:, 1]
        u_xx = derivative(u_x, points)[:, 0]
        return (u_t + u * u_x - self.viscosity * u_xx).unsqueeze(-1)

    def boundary_values(self, points: Tensor) -> Tensor:
        return torch.zeros(len(points), 1, dtype=torch.float64)

    def initial_values(self, points: Tensor) -> Tensor:
        return _evaluate(self.initial, points[:, :1]).unsqueeze(-1)

    def exact(self, points: Tensor) -> Tensor | None:
        if not self.standard:
            return None
        x, t = points.double().cpu().numpy().T
        return torch.from_numpy(burgers_sine(x, t, self.viscosity)).unsqueeze(-1)


EULER_FORMS = ("conservative", "primitive")


class Euler(SpaceTimeEquation):
    """The 1-D Euler equations of a perfect gas for ``(rho, u, p)`` with Riemann initial data: ``left`` for
    ``x < x0``, ``right`` for ``x > x0``.

    Conservative form (default): ``U_t + F(U)_x = nu U_xx`` with ``U = (rho, rho u, E)``,
    ``F = (rho u, rho u^2 + p, u (E + p))``, ``E = p / (gamma - 1) + rho u^2 / 2``; primitive form:
    ``rho_t + u rho_x + rho u_x``, ``u_t + u u_x + p_x / rho``, ``p_t + u p_x + gamma p u_x`` (``= nu`` times
    the second derivative of the same field). ``nu`` (``viscosity``) is an optional artificial viscosity,
    0 by default.

    The residual at each point is weighted by ``1 / (epsilon (|u_x| - u_x) + 1)`` (``epsilon``:
    ``compression``; 0 turns it off), small where the flow compresses (``u_x < 0``, in shocks), as in Liu,
    Jagtap et al., "Discontinuity computing using physics-informed neural networks" (J. Sci. Comput. 2024);
    the weight is taken as a constant of the step (detached), so the fit cannot lower its loss by steepening
    the compression. The reference and the boundary values are the exact Riemann solution
    (:mod:`hol.pde.riemann`, Toro ch. 4).

    Args:
        left, right: ``[rho, u, p]`` of the two states (``rho > 0``, ``p > 0``, no vacuum generated).
        gamma: ratio of specific heats, ``> 1``.
        x0: the diaphragm's position, inside ``domain``.
        domain: ``[x_low, x_high]``.
        t_end: the final time, ``> 0``.
        compression: ``epsilon >= 0`` of the residual weight.
        viscosity: ``nu >= 0``.
        form: ``conservative`` or ``primitive``.
        weights: ``residual``, ``boundary``, ``initial``.

    Raises:
        ValueError: naming a bad option.
    """

    name = "euler"
    fields = ("rho", "u", "p")

    def __init__(self, left: Sequence[float] = (1.0, 0.0, 1.0), right: Sequence[float] = (0.125, 0.0, 0.1),
                 gamma: float = 1.4, x0: float = 0.5, domain: Sequence[float] = (0.0, 1.0),
                 t_end: float = 0.2,
                 compression: float = 0.0, viscosity: float = 0.0, form: str = "conservative",
                 weights: Mapping[str, Any] | None = None):
        super().__init__(domain, t_end, weights)
        self.gamma = check_number("pde.gamma", gamma, 1, above=True)
        self.left, self.right = _check_state("pde.left", left), _check_state("pde.right", right)
        low, high = self.domain[0]
        self.x0 = check_number("pde.x0", x0, low, high, above=True, below=True)
        self.compression = check_number("pde.compression", compression, 0)
        self.viscosity = check_number("pde.viscosity", viscosity, 0)
        self.form = check_choice("pde.form", form, EULER_FORMS)
        star_state(self.left, self.right, self.gamma)  # refuses states that generate a vacuum

    def _options(self) -> dict[str, Any]:
        return {"left": list(self.left), "right": list(self.right), "gamma": self.gamma, "x0": self.x0,
                "compression": self.compression, "viscosity": self.viscosity, "form": self.form}

    def residual(self, points: Tensor, fields: Tensor) -> Tensor:
        rho, u, p = fields.unbind(-1)
        # three backward passes give every first derivative; the conservative terms follow by the product rule
        # (the same values as differentiating U and F themselves, at half the passes)
        (rho_x, rho_t), (u_x, u_t), (p_x, p_t) = (derivative(q, points).unbind(-1) for q in (rho, u, p))
        if self.form == "conservative":
            energy = p / (self.gamma - 1) + 0.5 * rho * u * u
            energy_t = p_t / (self.gamma - 1) + 0.5 * rho_t * u * u + rho * u * u_t
            energy_x = p_x / (self.gamma - 1) + 0.5 * rho_x * u * u + rho * u * u_x
            # rho_t + (rho u)_x, (rho u)_t + (rho u^2 + p)_x, E_t + (u (E + p))_x
            residuals = [rho_t + rho_x * u + rho * u_x,
                         rho_t * u + rho * u_t + rho_x * u * u + 2 * rho * u * u_x + p_x,
                         energy_t + u_x * (energy + p) + u * (energy_x + p_x)]
        else:
            residuals = [rho_t + u * rho_x + rho * u_x, u_t + u * u_x + p_x / rho,
                         p_t + u * p_x + self.gamma * p * u_x]
        if self.viscosity:
            second = [derivative(first, points)[:, 0] for first in (rho_x, u_x, p_x)]
            viscous = self._second_derivatives(rho, u, (rho_x, u_x, p_x), second)
            residuals = [residual - self.viscosity * value
                         for residual, value in zip(residuals, viscous, strict=True)]
        residual = torch.stack(residuals, dim=-1)
        if self.compression:
            divergence = u_x.detach()
            residual = residual / (self.compression * (divergence.abs() - divergence) + 1).unsqueeze(-1)
        return residual

    def _second_derivatives(self, rho: Tensor, u: Tensor, first: Sequence[Tensor],
                            second: Sequence[Tensor]) -> list[Tensor]:
        """``d^2/dx^2`` of the viscous term's variables: ``U`` (conservative) or ``(rho, u, p)``, from the
        fields' first (``rho_x, u_x, p_x``) and second derivatives in ``x``."""
        if self.form == "primitive":
            return list(second)
        (rho_x, u_x, _), (rho_xx, u_xx, p_xx) = first, second
        momentum_xx = rho_xx * u + 2 * rho_x * u_x + rho * u_xx
        energy_xx = p_xx / (self.gamma - 1) + 0.5 * (rho_xx * u * u + 4 * rho_x * u * u_x
                                                      + 2 * rho * u_x * u_x + 2 * rho * u * u_xx)
        return [rho_xx, momentum_xx, energy_xx]

    def exact(self, points: Tensor) -> Tensor:
        x, t = points.double().cpu().numpy().T
        values = np.empty((len(x), 3))
        for time in np.unique(t):  # the solution is self-similar: sample each time's positions at once
            at = t == time
            values[at] = riemann_sample(self.left, self.right, self.gamma, x[at], float(time), self.x0)
        return torch.from_numpy(values)

    def boundary_values(self, points: Tensor) -> Tensor:
        return self.exact(points)

    def initial_values(self, points: Tensor) -> Tensor:
        return self.exact(points)


def _check_state(name: str, state: Any) -> tuple[float, float, float]:
    if (not isinstance(state, Sequence) or isinstance(state, str) or len(state) != 3
            or not all(is_number(v) and math.isfinite(v) for v in state)):
        raise ValueError(f"{name} must be [rho, u, p] (three finite numbers), got {state!r}")
    rho, u, p = (float(v) for v in state)
    if rho <= 0 or p <= 0:
        raise ValueError(f"{name} must have rho > 0 and p > 0, got {list(state)!r}")
    return rho, u, p


EQUATIONS: dict[str, type[Equation]] = {equation.name: equation for equation in (Poisson, Burgers, Euler)}
"""The equations by name."""


def make_equation(hparams: Mapping[str, Any]) -> Equation:
    """The equation ``hparams["name"]`` (one of :data:`EQUATIONS`) with the other entries as its options
    (:meth:`Equation.hparams` gives them back). Raises ``ValueError`` naming an unknown equation or option."""
    options = dict(hparams)
    name = check_choice("pde equation", options.pop("name", None), EQUATIONS)
    return EQUATIONS[name](**options)
