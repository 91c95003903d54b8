"""Residual-based adaptive collocation (hol.pde.sampling, RAD): the density's mathematics on residuals known
in closed form, the draw's properties, bad input."""
from __future__ import annotations

import math

import pytest
import torch

from hol.pde import Euler, Poisson, residual_norm, residual_sample

PEAK = "exp(-50*((x-0.5)**2+y**2))"
"""A forcing peaked at (0.5, 0), width 0.1: the residual of u = 0 is minus it."""


def zero(points: torch.Tensor) -> torch.Tensor:
    """u = 0, as a function of the points whose derivatives of every order stay in the graph."""
    return 0 * points[:, :1].square()


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_the_residual_norm_is_the_euclidean_norm_of_every_component():
    equation = Euler()
    points = equation.uniform(300, generator()).requires_grad_(True)

    def model(p):  # a smooth state with every residual component non-zero
        x, t = p.unbind(-1)
        return torch.stack([1 + 0.3 * torch.sin(x + t), 0.5 * x * t, 1 + x * x], dim=-1)

    expected = equation.residual(points, model(points)).norm(dim=-1)
    assert torch.allclose(residual_norm(equation, model, points.detach(), chunk=64), expected, rtol=1e-14)


@pytest.mark.parametrize("exponent", [1.0, 2.0])
def test_with_no_uniform_share_the_draw_follows_the_residual(exponent):
    # density ∝ |f|^k = exp(-50 k |p - (0.5, 0)|^2): a Gaussian centred at (0.5, 0), standard deviation
    # 0.1 / sqrt(k) per coordinate, far inside the square, so its mean is the centre and its variance known
    # (drawn without replacement, a few points among many candidates: the draw thins the peak by a few %)
    equation = Poisson(forcing=PEAK)
    points = residual_sample(equation, zero, 1000, generator(), candidates=1_000_000, exponent=exponent,
                             constant=0.0)
    assert points.shape == (1000, 2) and points.dtype == torch.float64
    variance = 0.01 / exponent
    assert torch.allclose(points.mean(0), torch.tensor([0.5, 0.0], dtype=torch.float64),
                          atol=4 * math.sqrt(variance / 1000))
    assert points.var(0).sub(variance).abs().max() < 0.2 * variance


def test_the_uniform_share_and_exponent_zero_give_uniform_points():
    equation = Poisson(forcing=PEAK)
    for options in ({"exponent": 0.0, "constant": 0.0}, {"exponent": 1.0, "constant": 1e9}):
        points = residual_sample(equation, zero, 20_000, generator(), candidates=40_000, **options)
        quarter = ((points[:, 0] > 0) & (points[:, 1] > 0)).double().mean()
        assert abs(float(quarter) - 0.25) < 0.02  # uniform: a quarter of the square holds a quarter
    # the mixture c = 1: the peak's share is what the density gives it, between the two extremes (a few
    # points among many candidates, so that drawing without replacement barely thins the peak)
    points = residual_sample(equation, zero, 500, generator(), candidates=1_000_000)
    near = ((points - torch.tensor([0.5, 0.0], dtype=torch.float64)).norm(dim=-1) < 0.2).double().mean()
    # |f| / mean|f| integrates to the square's area 4 over it; the disc of radius 0.2 holds 1 - e^-2 of the
    # Gaussian's mass; c = 1 adds the disc's area: share = ((1 - e^-2) 4 + 0.04 pi) / (4 + 4)
    expected = ((1 - math.exp(-2)) * 4 + 0.04 * math.pi) / 8  # 0.45; uniform 0.03, no uniform share 0.86
    assert abs(float(near) - expected) < 0.07  # three standard deviations of a share of 500 draws


def test_points_are_distinct_candidates_in_the_domain_and_the_draw_is_seeded():
    equation = Euler()
    state = torch.tensor([1.0, 0.1, 1.0], dtype=torch.float64)

    def model(p):
        return state + 0.1 * p[:, :1] * p[:, 1:]

    first = residual_sample(equation, model, 500, generator(3), candidates=1000, dtype=torch.float32)
    assert first.dtype == torch.float32 and len(torch.unique(first, dim=0)) == 500
    assert ((first[:, 0] >= 0) & (first[:, 0] <= 1) & (first[:, 1] >= 0) & (first[:, 1] <= 0.2)).all()
    again = residual_sample(equation, model, 500, generator(3), candidates=1000, dtype=torch.float32)
    assert torch.equal(first, again)


@pytest.mark.parametrize("options, fragment", [
    ({"count": 11, "candidates": 10}, "count must be an integer in [1, 10], got 11"),
    ({"count": 5, "candidates": 10, "exponent": -1}, "exponent must be a number >= 0, got -1"),
    ({"count": 5, "candidates": 10, "constant": float("nan")}, "constant must be a number >= 0"),
])
def test_bad_options_are_refused_naming_the_value(options, fragment):
    with pytest.raises(ValueError) as error:
        residual_sample(Poisson(forcing=PEAK), zero, generator=generator(), **options)
    assert fragment in str(error.value)


def test_a_residual_that_overflows_is_an_error():
    with pytest.raises(ValueError, match="residual at the candidate points is not finite"):
        residual_sample(Poisson(forcing="1"), lambda p: p[:, :1].square() / 0.0, 5, generator(),
                        candidates=10)
