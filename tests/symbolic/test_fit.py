"""hol.symbolic.library and hol.symbolic.fit: links hand-set to known functions are found with their
parameters (canonical up to the symmetries of each function), links the library cannot express say so with
their R², and no fit is ever NaN."""
import math

import pytest
import sympy
import torch

from hol.layers import fc
from hol.symbolic import (
    BUILTIN,
    MIN_R2,
    Candidate,
    candidates,
    fit_candidate,
    fit_candidates,
    fit_layer,
    fit_link,
)
from tests.symbolic.common import DOUBLE, set_links

QUICK = ["0", "x", "x**2", "exp", "log", "sin", "tanh"]  # a small library where the full one is not the point


def one_link(function, n: int = 20, centre: float = 0.0, width: float = 2.0):
    """A 1 -> 1 one-segment Lagrange layer (n nodes) on [centre - width/2, centre + width/2] with its link set
    to ``function``."""
    layer = fc("polynomial", 1, 1, n=n).double()
    with torch.no_grad():
        layer.domain_centre.fill_(centre)
        layer.domain_width.fill_(width)
    set_links(layer, {(0, 0): function})
    return layer


def assert_parameters(fit, expected, atol=1e-9):
    assert [fit.a, fit.b, fit.c, fit.d] == pytest.approx(list(expected), abs=atol), fit


def test_a_link_set_to_2_sin_3x_plus_1_minus_a_half_is_sin_with_its_parameters():
    fit = fit_layer(one_link(lambda x: 2 * torch.sin(3 * x + 1) - 0.5))[(0, 0)]  # every built-in candidate
    assert fit.name == "sin" and fit.r2 > 1 - 1e-10
    assert_parameters(fit, (2, 3, 1, -0.5))


@pytest.mark.parametrize(("a", "b", "c"),
                         [(-2, -3, -1 + 2 * math.pi), (-2, 3, 1 + math.pi), (2, 3, 1 - 4 * math.pi)])
def test_the_equivalent_forms_of_a_sine_have_one_canonical_form(a, b, c):
    x = torch.linspace(-1, 1, 11, dtype=DOUBLE)
    canonical = BUILTIN["sin"].canonical(a, b, c, -0.5)
    assert canonical == pytest.approx((2, 3, 1, -0.5), abs=1e-12)
    torch.testing.assert_close(a * torch.sin(b * x + c), 2 * torch.sin(3 * x + 1), rtol=0, atol=1e-12)


@pytest.mark.parametrize(("function", "name", "expected"), [
    (lambda x: 0.7 * torch.exp(1.2 * x - 0.4) + 0.1, "exp", (0.7 * math.exp(-0.4), 1.2, 0, 0.1)),  # c = 0
    (lambda x: 1.5 * (x - 0.3) ** 2 + 0.2, "x**2", (1.5, 1, -0.3, 0.2)),  # b = 1
    (lambda x: 6 * (0.5 * x - 0.15) ** 2 + 0.2, "x**2", (1.5, 1, -0.3, 0.2)),  # the same function
])
def test_exp_and_square_links_are_found_in_canonical_form(function, name, expected):
    fit = fit_layer(one_link(function), library=QUICK)[(0, 0)]
    assert fit.name == name and fit.r2 > 1 - 1e-10
    assert_parameters(fit, expected)


def test_links_on_their_own_domains_far_from_minus_one_one():
    narrow = fit_layer(one_link(torch.exp, centre=3.23, width=0.5), library=QUICK)[(0, 0)]  # a hidden range
    assert narrow.name == "exp" and narrow.r2 > 1 - 1e-10
    assert_parameters(narrow, (1, 1, 0, 0), atol=1e-6)
    shifted = one_link(lambda x: torch.log(x + 1.5), centre=1.0, width=3.0)
    logarithm = fit_layer(shifted, library=QUICK)[(0, 0)]
    assert logarithm.name == "log" and logarithm.r2 > 1 - 1e-10
    assert_parameters(logarithm, (1, 1, 1.5, 0))


def test_a_link_with_a_kink_gets_an_r2_clearly_below_one():
    layer = fc("continuous", 1, 1, n=2, segments=2).double()
    set_links(layer, {(0, 0): torch.relu})  # values 0, 0, 1 at -1, 0, 1: max(0, x)
    fit = fit_layer(layer)[(0, 0)]  # every built-in candidate: the best is below 1 - 5e-3
    assert 0.9 < fit.r2 < 0.999 and fit.r2 < MIN_R2


def test_simpler_candidates_win_within_the_tolerance_and_constants_are_zero():
    x = torch.linspace(-1, 1, 51, dtype=DOUBLE)
    line = fit_link(x, 3 * x + 1, QUICK)  # x**2 (huge shift) and log/tanh/sin (small slope) approach a line
    assert line.name == "x" and line.r2 == 1.0
    assert_parameters(line, (3, 1, 0, 1))
    constant = fit_link(x, torch.full_like(x, 2.5), QUICK)
    assert constant.name == "0" and constant.r2 == 1.0 and constant.d == pytest.approx(2.5, abs=1e-14)
    assert constant.expression("u") == 2.5


def test_no_fit_is_nan_where_candidates_are_undefined():
    x = torch.linspace(-1, 1, 41, dtype=DOUBLE)
    for name in ("log", "sqrt", "1/x"):
        fit = fit_candidate(x, x**3 - x, name)
        assert fit is not None
        values = fit(x)
        assert all(math.isfinite(v) for v in (fit.a, fit.b, fit.c, fit.d, fit.r2))
        assert torch.isfinite(values).all()
        assert fit.r2 == pytest.approx(1 - (values - (x**3 - x)).square().sum().item()
                                       / (x**3 - x).var(correction=0).mul(len(x)).item(), abs=1e-9)
    assert all(math.isfinite(fit.r2) for fit in fit_candidates(x, torch.sign(x)))


def test_a_candidate_of_ones_own_and_the_expression_of_a_fit():
    cosh = Candidate("cosh", torch.cosh, sympy.cosh, complexity=3)
    x = torch.linspace(-2, 1, 61, dtype=DOUBLE)
    fit = fit_link(x, 3 * torch.cosh(x - 0.5) + 1, ["x", "x**2", cosh])
    assert fit.name == "cosh" and fit.r2 > 1 - 1e-10
    u = sympy.Symbol("u")
    expression = fit.expression(u)
    assert expression.has(sympy.cosh)
    values = sympy.lambdify(u, expression, "numpy")(x.numpy())
    torch.testing.assert_close(torch.from_numpy(values), 3 * torch.cosh(x - 0.5) + 1, rtol=0, atol=1e-9)
    torch.testing.assert_close(fit(x), 3 * torch.cosh(x - 0.5) + 1, rtol=0, atol=1e-9)


def test_bad_libraries_and_samples_raise_one_line():
    with pytest.raises(ValueError, match=r"symbolic function .cos.; allowed: 0, 1/x, .*x\*\*2") as info:
        candidates(["x", "cos"])
    assert "\n" not in str(info.value)
    x = torch.linspace(-1, 1, 11, dtype=DOUBLE)
    for call, match in [(lambda: candidates(["x", "x"]), "given twice"),
                        (lambda: candidates([]), "at least one"),
                        (lambda: candidates([torch.sin]), "names or Candidate"),
                        (lambda: fit_link(x[:3], x[:3]), "at least 5 samples"),
                        (lambda: fit_link(x, x[:5]), "as many values"),
                        (lambda: fit_link(x, x * float("nan")), "finite"),
                        (lambda: fit_link(torch.zeros(6), x[:6]), "span an interval"),
                        (lambda: fit_link(x, x, ["x"], tolerance=-1), "tolerance"),
                        (lambda: fit_layer(fc("polynomial_nd", 2, 1, n=3, dims=2)), "2-vectors"),
                        (lambda: fit_layer(torch.nn.Linear(2, 1)), "HighOrderLinear"),
                        (lambda: fit_layer(fc("polynomial", 2, 1, n=3), torch.zeros(4, 3)), r"\[\.\.\., 2\]"),
                        (lambda: fit_layer(fc("polynomial", 2, 1, n=3), links=[(1, 0)]), "output, input")]:
        with pytest.raises(ValueError, match=match) as info:
            call()
        assert "\n" not in str(info.value)
