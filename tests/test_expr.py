import math

import numpy as np
import pytest
import scipy.special
import torch

from hol.expr import ELEMENTARY, SPECIAL, parse


def test_default_target_matches_formula():
    x = torch.linspace(-1, 1, 101, dtype=torch.float64)
    expected = 0.5 * torch.cos(1.5 * math.pi / (x.abs() + 0.25))
    f = parse("0.5*cos(1.5*pi/(abs(x)+0.25))")
    assert f.variables == ("x",) and f.dims == 1
    torch.testing.assert_close(f(x), expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize("text, expected", [
    ("x + y", lambda x, y: x + y),
    ("x - y * 2", lambda x, y: x - y * 2),
    ("x / (1 + y**2)", lambda x, y: x / (1 + y**2)),
    ("-x ** 2", lambda x, y: -x**2),
    ("+x", lambda x, y: x),
    ("sin(x) * cos(y)", lambda x, y: torch.sin(x) * torch.cos(y)),
    ("tan(x) + exp(y) + tanh(x)", lambda x, y: torch.tan(x) + torch.exp(y) + torch.tanh(x)),
    ("log(2 + x) + sqrt(2 + y) + abs(x*y)",
     lambda x, y: torch.log(2 + x) + torch.sqrt(2 + y) + (x * y).abs()),
    ("e ** x + pi", lambda x, y: math.e**x + math.pi),
    ("1e-3 * y", lambda x, y: 1e-3 * y),
])
def test_operations_agree_with_torch(text, expected):
    x = torch.linspace(-0.9, 0.9, 7, dtype=torch.float64)
    y = torch.linspace(0.8, -0.8, 7, dtype=torch.float64)
    torch.testing.assert_close(parse(text)(x, y), expected(x, y), rtol=1e-14, atol=1e-15)


def test_dimensions_follow_the_variables():
    assert parse("y").dims == 2 and parse("x*y").variables == ("x", "y")
    assert parse("3").dims == 1
    assert parse("3")(torch.zeros(4)).shape == (4,)  # constants broadcast to the input shape


def test_two_dimensional_needs_y():
    with pytest.raises(ValueError, match="uses y"):
        parse("x*y")(torch.zeros(3))


@pytest.mark.parametrize("text, fragment", [
    ("__import__('os').system('true')", "calling \"__import__('os').system\""),
    ("x.real", "Attribute"),
    ("z + 1", "the name 'z'"),
    ("x if y else 1", "IfExp"),
    ("x > 0", "Compare"),
    ("x % 2", "operator Mod"),
    ("x // 2", "operator FloorDiv"),
    ("~x", "operator Invert"),
    ("[x][0]", "Subscript"),
    ("lambda: 1", "Lambda"),
    ("'a'", "the constant 'a'"),
    ("True", "the constant True"),
    ("sin(x, y)", "sin takes exactly 1 positional argument"),
    ("sin(x=1)", "sin takes exactly 1 positional argument"),
    ("jv(x)", "jv takes exactly 2 positional arguments"),
    ("sin(*x)", "sin takes exactly 1 positional argument"),
    ("scipy.special.jv(x, y)", "calling 'scipy.special.jv'"),
    ("np.sin(x)", "calling 'np.sin'"),
    ("x.__class__", "Attribute"),
    ("sph_harm", "the name 'sph_harm'"),
    ("max(x)", "calling 'max'"),
    ("sin(", "syntax error"),
    ("x; y", "syntax error"),
    ("", "non-empty"),
])
def test_everything_else_is_rejected(text, fragment):
    with pytest.raises(ValueError, match="bad expression") as info:
        parse(text)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_rejection_names_the_allowed_grammar():
    with pytest.raises(ValueError, match="allowed: numbers, the variables, pi, e"):
        parse("foo(x)")


SAMPLE = torch.linspace(0.15, 0.85, 9, dtype=torch.float64)


@pytest.mark.parametrize("name", sorted(ELEMENTARY))
def test_elementary_functions_are_numpys(name):
    arity = 2 if name in ("arctan2", "hypot", "power", "maximum", "minimum") else 1
    shift = 1.5 if name == "arccosh" else 0.0  # inside its domain
    arguments = [SAMPLE + shift, SAMPLE.flip(0) + shift][:arity]
    expression = parse(f"{name}({', '.join(['x', 'y'][:arity])})")
    expected = getattr(np, name)(*(argument.numpy() for argument in arguments))
    np.testing.assert_allclose(expression(*arguments).numpy(), expected, rtol=1e-14, atol=0)


@pytest.mark.parametrize("name", sorted(set(SPECIAL) - {"ellipj", "sph_harm"}))
def test_special_functions_are_scipys_in_its_argument_order(name):
    types = SPECIAL[name]
    names = [f"v{k}" for k in range(len(types))]
    # real arguments: distinct sample points per position (a swapped order gives other values); integers: 2
    values = [torch.full_like(SAMPLE, 2.0) if kind == "l" else (SAMPLE * (k + 1) / len(types)).roll(k)
              for k, kind in enumerate(types)]
    expression = parse(f"{name}({', '.join(names)})", variables=names)
    expected = getattr(scipy.special, name)(*(value.numpy().astype(np.int64) if kind == "l" else value.numpy()
                                              for value, kind in zip(values, types, strict=True)))
    np.testing.assert_array_equal(expression(*values).numpy(), expected)


def test_argument_order_is_scipys():
    x, y = SAMPLE, SAMPLE.flip(0)
    legendre_2 = (3 * y**2 - 1) / 2  # P_2(y) = lpmv(0, 2, y)
    torch.testing.assert_close(parse("lpmv(0, 2, y)")(x, y), legendre_2, rtol=1e-14, atol=1e-15)
    torch.testing.assert_close(parse("jv(0, x)")(x), torch.special.bessel_j0(x), rtol=1e-13, atol=0)
    assert not torch.allclose(parse("jv(x, y)")(x, y), parse("jv(y, x)")(x, y))


def test_ellipj_is_sn():
    u = SAMPLE * 3
    torch.testing.assert_close(parse("ellipj(x, 0)")(u), torch.sin(u), rtol=1e-14, atol=1e-15)  # sn(u | 0)
    torch.testing.assert_close(parse("ellipj(x, 1)")(u), torch.tanh(u), rtol=1e-12, atol=1e-14)  # sn(u | 1)


def test_sph_harm_is_the_real_part_with_azimuth_then_polar_angle():
    azimuth, polar = SAMPLE * 5, SAMPLE * 3
    y10 = math.sqrt(3 / (4 * math.pi)) * torch.cos(polar)
    y11 = -math.sqrt(3 / (8 * math.pi)) * torch.sin(polar) * torch.cos(azimuth)  # Condon-Shortley phase
    y22 = math.sqrt(15 / (32 * math.pi)) * torch.sin(polar) ** 2 * torch.cos(2 * azimuth)
    for text, expected in (("sph_harm(0, 1, x, y)", y10), ("sph_harm(1, 1, x, y)", y11),
                           ("sph_harm(2, 2, x, y)", y22)):
        torch.testing.assert_close(parse(text)(azimuth, polar), expected, rtol=1e-12, atol=1e-14)


def test_integer_arguments_must_be_integers():
    assert parse("eval_hermite(2, x)")(SAMPLE).allclose(4 * SAMPLE**2 - 2)
    with pytest.raises(ValueError, match=r"argument 1 of eval_hermite must be an integer, got 1\.5"):
        parse("eval_hermite(1.5, x)")(SAMPLE)


def test_special_functions_keep_dtype_and_take_no_gradient():
    x = SAMPLE.float().requires_grad_()
    value = parse("erf(x) + sin(x)")(x)
    assert value.dtype == torch.float32 and value.requires_grad  # sin is torch's: differentiable
    torch.testing.assert_close(value, torch.erf(x) + torch.sin(x))


def test_any_variable_names_in_their_order():
    f = parse("theta * sigma + gamma(sigma)", variables=("theta", "sigma"))
    assert f.variables == ("theta", "sigma") and f.names == ("theta", "sigma") and f.dims == 2
    theta, sigma = SAMPLE, SAMPLE + 1
    torch.testing.assert_close(f(theta, sigma), theta * sigma + torch.exp(torch.lgamma(sigma)))
    assert parse("b", variables=("a", "b", "c")).dims == 2
    assert parse("gamma + 1", variables=("gamma",))(torch.ones(2)).tolist() == [2.0, 2.0]  # read: a variable
    with pytest.raises(ValueError, match="uses b; call it with a, b"):
        parse("b", variables=("a", "b"))(SAMPLE)


@pytest.mark.parametrize("variables, fragment", [
    (("x", "x"), "repeated variable names"),
    (("pi",), "bad variable name 'pi'"),
    (("2x",), "bad variable name '2x'"),
    ((), "at least one variable name"),
])
def test_bad_variable_names(variables, fragment):
    with pytest.raises(ValueError, match=fragment):
        parse("1", variables=variables)
