import math

import pytest
import torch

from hol.expr import parse


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
    ("sin(x, y)", "exactly one argument"),
    ("sin(x=1)", "exactly one argument"),
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
    with pytest.raises(ValueError, match="allowed: numbers, x, y, pi, e"):
        parse("gamma(x)")
