"""The exact solution of the Riemann problem for the 1-D Euler equations of a perfect gas.

Source: E. F. Toro, *Riemann Solvers and Numerical Methods for Fluid Dynamics*, 3rd ed. (Springer, 2009),
chapter 4. The equation numbers below are Toro's. All quantities are nondimensional; a state is the triple
of primitive variables ``(rho, u, p)`` (density, velocity, pressure) and ``gamma`` is the ratio of specific
heats.

The pressure ``p*`` of the star region between the left and the right wave solves
``f(p) = f_L(p, W_L) + f_R(p, W_R) + (u_R - u_L) = 0`` (4.5), where ``f_K`` is a shock branch for
``p > p_K`` and a rarefaction branch otherwise (4.6, 4.7); the velocity there is
``u* = (u_L + u_R)/2 + (f_R(p*) - f_L(p*))/2`` (4.9). ``f`` is increasing and concave, so Newton's method
(4.44) from Toro's adaptive initial guess (section 4.3.2) converges monotonically after its first step.

Example::

    >>> p_star, u_star = star_state((1.0, 0.0, 1.0), (0.125, 0.0, 0.1))  # Sod's shock tube
    >>> round(p_star, 5), round(u_star, 5)
    (0.30313, 0.92745)
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

RELATIVE_TOLERANCE = 1e-12  # Newton stops when 2|p_new - p_old| / (p_new + p_old) is below this
MAX_NEWTON_STEPS = 100
PVRS_MAX_PRESSURE_RATIO = 2.0  # Toro's Q_user: the PVRS guess is used when p_max / p_min is below this

State = Sequence[float]


def _checked_gamma(gamma: float) -> float:
    gamma = float(gamma)
    if not (math.isfinite(gamma) and gamma > 1.0):
        raise ValueError(f"gamma={gamma!r} must be a finite number > 1")
    return gamma


def _checked_state(state: State, side: str) -> tuple[float, float, float]:
    """The state as three floats; ValueError unless it is (rho > 0, finite u, p > 0)."""
    values = np.asarray(state, dtype=np.float64)
    if values.shape != (3,):
        raise ValueError(f"{side} state {state!r} must be three numbers (rho, u, p)")
    rho, u, p = (float(v) for v in values)
    if not all(math.isfinite(v) for v in (rho, u, p)):
        raise ValueError(f"{side} state {state!r} has a non-finite entry")
    if rho <= 0.0:
        raise ValueError(f"{side} state {state!r} has density rho={rho!r}; it must be > 0")
    if p <= 0.0:
        raise ValueError(f"{side} state {state!r} has pressure p={p!r}; it must be > 0")
    return rho, u, p


def _sound_speed(rho: float, p: float, gamma: float) -> float:
    return math.sqrt(gamma * p / rho)


def _check_no_vacuum(left: tuple, right: tuple, gamma: float) -> None:
    """Toro's pressure positivity condition (4.40): (Δu)_crit = 2(a_L + a_R)/(γ-1) > u_R - u_L."""
    critical_jump = 2.0 * (_sound_speed(left[0], left[2], gamma) + _sound_speed(right[0], right[2], gamma))
    critical_jump /= gamma - 1.0
    velocity_jump = right[1] - left[1]
    if critical_jump <= velocity_jump:
        raise ValueError(
            f"vacuum is generated between left {left} and right {right} (gamma={gamma}): "
            f"u_R - u_L = {velocity_jump!r} >= (Δu)_crit = {critical_jump!r}"
        )


def _pressure_function(p: float, state: tuple, gamma: float) -> tuple[float, float]:
    """``f_K(p)`` and its derivative for one side (Toro 4.6/4.7 and 4.37/4.38)."""
    rho, _, p_k = state
    a_k = _sound_speed(rho, p_k, gamma)
    if p > p_k:  # shock
        a_coef = 2.0 / ((gamma + 1.0) * rho)
        b_coef = (gamma - 1.0) / (gamma + 1.0) * p_k
        root = math.sqrt(a_coef / (p + b_coef))
        return (p - p_k) * root, root * (1.0 - 0.5 * (p - p_k) / (p + b_coef))
    ratio = p / p_k  # rarefaction
    value = 2.0 * a_k / (gamma - 1.0) * (ratio ** ((gamma - 1.0) / (2.0 * gamma)) - 1.0)
    return value, ratio ** (-(gamma + 1.0) / (2.0 * gamma)) / (rho * a_k)


def _initial_pressure(left: tuple, right: tuple, gamma: float) -> float:
    """Toro's adaptive guess (section 4.3.2): PVRS, else two-rarefaction (TRRS), else two-shock (TSRS)."""
    (rho_l, u_l, p_l), (rho_r, u_r, p_r) = left, right
    a_l, a_r = _sound_speed(rho_l, p_l, gamma), _sound_speed(rho_r, p_r, gamma)
    p_pvrs = max(0.0, 0.5 * (p_l + p_r) - 0.125 * (u_r - u_l) * (rho_l + rho_r) * (a_l + a_r))
    p_min, p_max = min(p_l, p_r), max(p_l, p_r)
    if p_max / p_min <= PVRS_MAX_PRESSURE_RATIO and p_min <= p_pvrs <= p_max:
        return p_pvrs
    if p_pvrs < p_min:
        z = (gamma - 1.0) / (2.0 * gamma)
        numerator = a_l + a_r - 0.5 * (gamma - 1.0) * (u_r - u_l)
        return (numerator / (a_l / p_l**z + a_r / p_r**z)) ** (1.0 / z)
    g_l = math.sqrt(2.0 / ((gamma + 1.0) * rho_l) / ((gamma - 1.0) / (gamma + 1.0) * p_l + p_pvrs))
    g_r = math.sqrt(2.0 / ((gamma + 1.0) * rho_r) / ((gamma - 1.0) / (gamma + 1.0) * p_r + p_pvrs))
    return (g_l * p_l + g_r * p_r - (u_r - u_l)) / (g_l + g_r)


def _star_pressure(left: tuple, right: tuple, gamma: float) -> float:
    """Newton's method on f(p) = f_L + f_R + Δu (Toro 4.5, 4.44); a step to p <= 0 is cut to p/10."""
    p = max(_initial_pressure(left, right, gamma), 1e-300)  # the TRRS guess can underflow near vacuum
    velocity_jump = right[1] - left[1]
    for _ in range(MAX_NEWTON_STEPS):
        f_l, df_l = _pressure_function(p, left, gamma)
        f_r, df_r = _pressure_function(p, right, gamma)
        p_new = p - (f_l + f_r + velocity_jump) / (df_l + df_r)
        if p_new <= 0.0:
            p_new = 0.1 * p
        if 2.0 * abs(p_new - p) / (p_new + p) < RELATIVE_TOLERANCE:
            return p_new
        p = p_new
    raise RuntimeError(f"star pressure did not converge in {MAX_NEWTON_STEPS} Newton steps (last p={p!r})")


def star_state(left: State, right: State, gamma: float = 1.4) -> tuple[float, float]:
    """The pressure and velocity ``(p*, u*)`` of the star region (Toro 4.5-4.9).

    Args:
        left, right: the primitive states ``(rho, u, p)`` on either side of the initial discontinuity.
        gamma: the ratio of specific heats, > 1.

    Returns:
        ``(p*, u*)`` to a relative tolerance of 1e-12 in ``p*`` (Newton's change criterion).

    Raises:
        ValueError: a state is not three finite numbers with rho > 0 and p > 0; ``gamma <= 1`` or not
            finite; or the data generate vacuum (Toro 4.40: ``2(a_L + a_R)/(gamma-1) <= u_R - u_L``).
    """
    gamma = _checked_gamma(gamma)
    left_state, right_state = _checked_state(left, "left"), _checked_state(right, "right")
    _check_no_vacuum(left_state, right_state, gamma)
    p_star = _star_pressure(left_state, right_state, gamma)
    f_l, _ = _pressure_function(p_star, left_state, gamma)
    f_r, _ = _pressure_function(p_star, right_state, gamma)
    return p_star, 0.5 * (left_state[1] + right_state[1]) + 0.5 * (f_r - f_l)


def _star_density(state: tuple, gamma: float, p_star: float) -> float:
    """Behind a shock (Toro 4.50/4.57) or at the tail of a rarefaction (isentropic, 4.53/4.60)."""
    rho, _, p = state
    ratio = p_star / p
    if p_star > p:
        g = (gamma - 1.0) / (gamma + 1.0)
        return rho * (ratio + g) / (g * ratio + 1.0)
    return rho * ratio ** (1.0 / gamma)


def star_densities(left: State, right: State, gamma: float, p_star: float) -> tuple[float, float]:
    """The densities ``(rho*_L, rho*_R)`` on either side of the contact discontinuity.

    Args:
        left, right: the primitive states ``(rho, u, p)``.
        gamma: the ratio of specific heats, > 1.
        p_star: the star pressure, e.g. from :func:`star_state`, > 0.

    Raises:
        ValueError: an invalid state or ``gamma`` (as :func:`star_state`), or ``p_star`` not finite and > 0.
    """
    gamma = _checked_gamma(gamma)
    left_state, right_state = _checked_state(left, "left"), _checked_state(right, "right")
    p_star = float(p_star)
    if not (math.isfinite(p_star) and p_star > 0.0):
        raise ValueError(f"p_star={p_star!r} must be a finite number > 0")
    return _star_density(left_state, gamma, p_star), _star_density(right_state, gamma, p_star)


def _rarefaction_fan(state: tuple, gamma: float, speed: np.ndarray, sign: float) -> np.ndarray:
    """(rho, u, p) inside a fan at ``speed = (x - x0)/t``: Toro 4.56 (left, sign=+1) and 4.63 (sign=-1)."""
    rho, u, p = state
    a = _sound_speed(rho, p, gamma)
    base = 2.0 / (gamma + 1.0) + sign * (gamma - 1.0) / ((gamma + 1.0) * a) * (u - speed)
    velocity = 2.0 / (gamma + 1.0) * (sign * a + 0.5 * (gamma - 1.0) * u + speed)
    density = rho * base ** (2.0 / (gamma - 1.0))
    return np.stack([density, velocity, p * base ** (2.0 * gamma / (gamma - 1.0))], -1)


def _sample_side(state: tuple, star: tuple, gamma: float, speed: np.ndarray, sign: float) -> np.ndarray:
    """The solution on one side of the contact, written for the left side (sign=+1) and mirrored for the
    right (sign=-1): ``sign * speed`` is compared with ``sign * (wave speed)`` (Toro section 4.5)."""
    rho, u, p = state
    _, u_star, p_star = star
    a = _sound_speed(rho, p, gamma)
    out = np.empty((speed.size, 3))
    if p_star > p:  # shock, speed from Toro 4.52 (left) / 4.59 (right)
        mach = math.sqrt((gamma + 1.0) / (2.0 * gamma) * p_star / p + (gamma - 1.0) / (2.0 * gamma))
        shock = u - sign * a * mach
        outside = sign * speed <= sign * shock
        out[outside] = state
        out[~outside] = star
        return out
    a_star = a * (p_star / p) ** ((gamma - 1.0) / (2.0 * gamma))  # rarefaction: head and tail (4.55/4.62)
    outside = sign * speed <= sign * (u - sign * a)
    inside_star = sign * speed > sign * (u_star - sign * a_star)
    fan = ~(outside | inside_star)
    out[outside] = state
    out[inside_star] = star
    out[fan] = _rarefaction_fan(state, gamma, speed[fan], sign)
    return out


def sample(left: State, right: State, gamma: float, x, t: float, x0: float = 0.5) -> np.ndarray:
    """The exact solution ``(rho, u, p)`` at positions ``x`` and time ``t`` (Toro sections 4.4-4.5).

    The initial data are ``left`` for ``x < x0`` and ``right`` for ``x >= x0``. For ``t > 0`` the solution
    depends on ``(x - x0)/t`` only: the left and right states, the shocks or rarefaction fans (inside a fan
    Toro 4.56/4.63), and the star states on either side of the contact, which moves with ``u*``. As in
    Toro's sampling routine a point exactly on a shock or a fan's head gets the outer (initial) state and a
    point on the contact the left star state. At ``t == 0`` the initial data are returned (left where
    ``x < x0``, right otherwise).

    Args:
        left, right: the primitive states ``(rho, u, p)``.
        gamma: the ratio of specific heats, > 1.
        x: positions, a 1-D array of shape ``[N]``.
        t: the time, >= 0.
        x0: the position of the initial discontinuity.

    Returns:
        float64 array of shape ``[N, 3]``: the columns are rho, u, p.

    Raises:
        ValueError: invalid states, ``gamma`` or vacuum (as :func:`star_state`); ``x`` not 1-D or not
            finite; ``t`` negative or not finite; ``x0`` not finite.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1 or not np.all(np.isfinite(x)):
        raise ValueError(f"x must be a 1-D array of finite positions, got shape {x.shape}")
    t, x0 = float(t), float(x0)
    if not (math.isfinite(t) and t >= 0.0):
        raise ValueError(f"t={t!r} must be a finite time >= 0")
    if not math.isfinite(x0):
        raise ValueError(f"x0={x0!r} must be finite")
    p_star, u_star = star_state(left, right, gamma)
    left_state, right_state = _checked_state(left, "left"), _checked_state(right, "right")
    if t == 0.0:
        return np.where((x < x0)[:, None], np.array(left_state), np.array(right_state))
    rho_star_l, rho_star_r = star_densities(left_state, right_state, gamma, p_star)
    speed = (x - x0) / t
    on_left = speed <= u_star
    out = np.empty((x.size, 3))
    out[on_left] = _sample_side(left_state, (rho_star_l, u_star, p_star), gamma, speed[on_left], 1.0)
    out[~on_left] = _sample_side(right_state, (rho_star_r, u_star, p_star), gamma, speed[~on_left], -1.0)
    return out
