"""The exact solution of viscous Burgers' equation with a sine initial condition, by the Cole-Hopf transform.

The problem ``u_t + u u_x = nu u_xx`` on ``-1 <= x <= 1`` with ``u(x, 0) = -sin(pi x)`` and
``u(-1, t) = u(1, t) = 0`` (the benchmark of the PINN literature, ``nu = 0.01/pi``) has the solution

    u(x, t) = -∫ sin(pi (x - eta)) F(x - eta) G(eta) d eta / ∫ F(x - eta) G(eta) d eta,
    F(y) = exp(-cos(pi y) / (2 pi nu)),  G(eta) = exp(-eta^2 / (4 nu t)),

both integrals over the real line (C. Basdevant, M. Deville, P. Haldenwang, J. M. Lacroix, J. Ouazzani,
R. Peyret, P. Orlandi, A. T. Patera, "Spectral and finite difference solutions of the Burgers equation",
Computers & Fluids 14(1):23-41, 1986). The initial data are odd and 2-periodic, so the boundary values are
zero by symmetry. With ``eta = sqrt(4 nu t) s`` both integrals are Gauss-Hermite integrals in ``s``.

Example::

    >>> u = burgers_sine(np.linspace(-1.0, 1.0, 5), 0.5, 0.01 / np.pi)  # x = -1, -0.5, 0, 0.5, 1
    >>> bool(abs(u[0]) < 1e-12 and abs(u[2]) < 1e-12 and abs(u[4]) < 1e-12 and u[1] > 0.5 > -0.5 > u[3])
    True
"""
from __future__ import annotations

import functools
import math
import numbers

import numpy as np
from numpy.polynomial.hermite import hermgauss

# Convergence, max |error| over a grid of x in [-1, 1] and t in (0, 1], against 370 nodes (nu = 0.01/pi,
# 0.1) and against adaptive scipy quadrature (nu = 1, and spot checks): at nu = 0.01/pi, 75 nodes give 1e-12
# and 100 nodes 4e-15; at nu = 0.1, 100 nodes give 2e-11 and 150 nodes 2e-15; at nu = 1 the wide Gaussian
# needs the most: 200 nodes give 4e-9, 300 nodes 3e-12. 300 it is (numpy's hermgauss is finite up to 371).
HERMITE_NODES = 300
# For small viscosities (nu below ~3.4e-4) and t from ~0.15-0.5 on the integrals are dominated by the
# periodic images of the initial data at |eta| ~ 1, beyond the outermost nodes; the rule then sees its
# largest terms on its outermost nodes. Measured: when at most this fraction of the denominator sits on the
# EDGE_NODES outermost nodes at either end, the error stays below ~1e-13; above it the answer is refused.
EDGE_WEIGHT_LIMIT = 1e-6
EDGE_NODES = 3
CHUNK = 4096  # points evaluated at once: CHUNK x nodes float64 temporaries


@functools.lru_cache(maxsize=8)
def _hermite_rule(nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Hermite nodes and the logarithms of their weights (down to 1e-248 at 300 nodes), which join
    the exponent so that one shift by its maximum keeps every product in range."""
    if isinstance(nodes, bool) or not isinstance(nodes, numbers.Integral) or nodes < 2 * EDGE_NODES:
        raise ValueError(f"nodes={nodes!r} must be an integer >= {2 * EDGE_NODES}")
    with np.errstate(all="ignore"):
        points, weights = hermgauss(nodes)
        log_weights = np.log(weights)
    if not np.all(np.isfinite(points)) or not np.all(np.isfinite(log_weights)):
        raise ValueError(f"nodes={nodes}: numpy's Gauss-Hermite rule is not finite at this size (use <= 371)")
    return points, log_weights


def _quadrature(x: np.ndarray, t: np.ndarray, viscosity: float, nodes: int) -> np.ndarray:
    """u at 1-D arrays x, t (t > 0) of the same length. The exponent -cos(pi y)/(2 pi nu) + log w is
    shifted by its maximum per point before exponentiating (it reaches 1/(2 pi nu), which overflows exp for
    nu < 2.3e-4); the shift cancels in the ratio."""
    points, log_weights = _hermite_rule(nodes)
    y = x[:, None] - np.sqrt(4.0 * viscosity * t)[:, None] * points
    exponent = log_weights - np.cos(np.pi * y) / (2.0 * np.pi * viscosity)
    kernel = np.exp(exponent - exponent.max(axis=1, keepdims=True))
    denominator = kernel.sum(axis=1)
    edge = np.maximum(kernel[:, :EDGE_NODES].sum(axis=1), kernel[:, -EDGE_NODES:].sum(axis=1)) / denominator
    worst = int(np.argmax(edge))
    if edge[worst] > EDGE_WEIGHT_LIMIT:
        raise ValueError(
            f"viscosity={viscosity!r} at t={float(t[worst])!r} (x={float(x[worst])!r}) is beyond the "
            f"{nodes}-node Hermite rule: {edge[worst]:.1e} of the integral sits on its outermost nodes"
        )
    return -(np.sin(np.pi * y) * kernel).sum(axis=1) / denominator


def burgers_sine(x, t, viscosity: float, *, nodes: int = HERMITE_NODES) -> np.ndarray:
    """The exact solution u(x, t) of viscous Burgers' equation with u(x, 0) = -sin(pi x), u(+-1, t) = 0.

    Args:
        x: positions, any shape; meant for [-1, 1] (outside it the formula continues the solution as the
            odd, 2-periodic solution on the whole line).
        t: times >= 0, any shape broadcasting with ``x``; at ``t == 0`` the result is ``-sin(pi x)``.
        viscosity: nu > 0 (the PINN benchmark uses 0.01/pi). Measured for t in (0, 1]: error <= 2e-15 for
            nu in [0.01/pi, 0.1], <= 3e-12 up to nu = 1 (see ``HERMITE_NODES``); below nu ~ 3.4e-4 the
            later times (from t ~ 0.15-0.5, earlier for smaller nu) are refused (see ``EDGE_WEIGHT_LIMIT``).
        nodes: the number of Gauss-Hermite nodes (at most 371: numpy's rule overflows beyond).

    Returns:
        float64 array of the broadcast shape of ``x`` and ``t``. No units (nondimensional).

    Raises:
        ValueError: viscosity not finite and > 0; a t negative or not finite; an x not finite; ``nodes``
            out of range; or (small viscosities at late times) the Hermite rule cannot resolve the
            integrand, i.e. more than ``EDGE_WEIGHT_LIMIT`` of it sits on the outermost nodes.
    """
    viscosity = float(viscosity)
    if not (math.isfinite(viscosity) and viscosity > 0.0):
        raise ValueError(f"viscosity={viscosity!r} must be a finite number > 0")
    x, t = np.broadcast_arrays(np.asarray(x, dtype=np.float64), np.asarray(t, dtype=np.float64))
    bad_t = ~(np.isfinite(t) & (t >= 0.0))
    if bad_t.any():
        raise ValueError(f"t={float(t[bad_t].flat[0])!r} must be a finite time >= 0")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"x={float(x[~np.isfinite(x)].flat[0])!r} must be finite")
    u = -np.sin(np.pi * x)
    later = np.flatnonzero(t > 0.0)
    x_later, t_later = x.ravel()[later], t.ravel()[later]
    values = u.ravel()
    for start in range(0, later.size, CHUNK):
        chunk = slice(start, start + CHUNK)
        values[later[chunk]] = _quadrature(x_later[chunk], t_later[chunk], viscosity, nodes)
    return values.reshape(u.shape)
