"""hol.symbolic.formula, evaluate and simplify: the formula of an MLP with hand-set symbolic links computes
what the network computes (input scaling, tanh normalization, product units, baselines), its text parses
back, numeric links and normalizations without a formula are refused in one line, and simplification stays
within its tolerance."""
import pytest
import sympy
import torch

from hol.networks import MLP
from hol.symbolic import (
    evaluate,
    fit_network,
    fix_symbolic,
    formula,
    formula_string,
    parse_formula,
    simplify_formula,
)
from tests.symbolic.common import DOMAINS, LIBRARY, hand_set_mlp, set_links, uniform


@pytest.fixture(scope="module")
def fitted():
    net = hand_set_mlp()
    return net, fit_network(net, library=LIBRARY)


def network_values(net, points):
    with torch.no_grad():
        return net(points)[..., 0]


def test_every_hand_set_link_is_found(fitted):
    _, fits = fitted
    assert sorted(fits) == [(0, 0, 0), (0, 0, 1), (0, 1, 0), (0, 1, 1), (1, 0, 0), (1, 0, 1)]
    assert [fits[key].name for key in sorted(fits)] == ["sin", "x**2", "exp", "x", "sin", "x**2"]
    assert min(fit.r2 for fit in fits.values()) > 1 - 1e-10


def test_the_formula_of_the_fitted_links_computes_the_network(fitted):
    net, fits = fitted
    [f] = formula(net, ["p", "q"], fits)
    assert f.free_symbols == {sympy.Symbol("p"), sympy.Symbol("q")}
    assert f.has(sympy.tanh, sympy.sin, sympy.exp)
    points = uniform(500, DOMAINS, seed=1)
    torch.testing.assert_close(evaluate(f, ["p", "q"], points), network_values(net, points), rtol=0,
                               atol=1e-10)


def test_the_formula_of_a_fixed_network(fitted):
    net, fits = fitted
    fixed = fix_symbolic(net, fits)
    [f] = formula(fixed, ["p", "q"])  # the SymbolicLinear layers carry their fits
    points = uniform(500, DOMAINS, seed=2)
    torch.testing.assert_close(evaluate(f, ["p", "q"], points), network_values(fixed, points), rtol=0,
                               atol=1e-12)


def test_links_fitted_where_samples_take_them():
    net = hand_set_mlp()
    fits = fit_network(net, uniform(200, DOMAINS, seed=3), library=LIBRARY)
    [f] = formula(net, ["p", "q"], fits)
    points = uniform(500, DOMAINS, seed=2)
    torch.testing.assert_close(evaluate(f, ["p", "q"], points), network_values(net, points), rtol=0,
                               atol=1e-10)


def test_the_formula_as_text_parses_back_in_the_given_names(fitted):
    net, fits = fitted
    [f] = formula(net, ["beta", "S"], fits)  # names sympy would otherwise read as its own
    text = formula_string(f)
    parsed = parse_formula(text, ["beta", "S"])
    assert parsed.free_symbols == {sympy.Symbol("beta"), sympy.Symbol("S")}
    points = uniform(200, DOMAINS, seed=4)
    torch.testing.assert_close(evaluate(parsed, ["beta", "S"], points), evaluate(f, ["beta", "S"], points),
                               rtol=0, atol=1e-12)


def test_numeric_links_are_refused_in_one_line_naming_them_with_their_r2(fitted):
    net, _ = fitted
    with pytest.raises(ValueError, match=r"6 numeric link\(s\).*\(0, 0, 0\) not fitted, \(0, 0, 1\)") as info:
        formula(net, ["p", "q"])
    assert "\n" not in str(info.value)
    kink = MLP("continuous", 1, 1, widths=[1], n=2, segments=2, normalization="none").double()
    set_links(kink.layers[0], {(0, 0): torch.relu})
    set_links(kink.layers[1], {(0, 0): lambda u: 2 * u})
    with pytest.raises(ValueError, match=r"1 numeric link\(s\).*\(0, 0, 0\) best R² 0\.9[0-9]+;") as info:
        formula(kink, ["x"], fit_network(kink, library=LIBRARY))
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match=r"\(0, 0, 0\) not fitted"):  # piecewise: no polynomial either
        formula(kink, ["x"], numeric="polynomial")


def test_one_piece_numeric_links_as_their_polynomials():
    torch.manual_seed(0)
    net = MLP("polynomial", 2, 1, widths=[3], n=6, normalization="tanh", input_domains=DOMAINS,
              output_layer="product", init="uniform").double()
    with torch.no_grad():
        for layer in net.layers:
            if hasattr(layer, "domain_centre"):
                layer.domain_centre.uniform_(-0.2, 0.2)
                layer.domain_width.uniform_(1.5, 2.5)
    [f] = formula(net, ["x", "y"], numeric="polynomial")
    points = uniform(300, DOMAINS, seed=5)
    torch.testing.assert_close(evaluate(f, ["x", "y"], points), network_values(net, points), rtol=0,
                               atol=1e-10)


def test_baseline_layers_and_normalizations_without_a_formula():
    torch.manual_seed(0)
    net = MLP("relu", 2, 2, widths=[4], normalization="none", output_layer="tanh").double()
    f = formula(net, ["x", "y"])
    assert len(f) == 2 and f[0].has(sympy.Max)
    points = uniform(100, [[-1, 1], [-1, 1]])
    with torch.no_grad():
        torch.testing.assert_close(evaluate(f, ["x", "y"], points), net(points), rtol=0, atol=1e-12)
    for normalization in ("max_abs", "layer_norm"):
        with pytest.raises(ValueError, match=r"normalization after layer 0 .* cannot be written") as info:
            formula(MLP("polynomial", 2, 1, widths=[2], n=3, normalization=normalization), ["x", "y"],
                    numeric="polynomial")
        assert "\n" not in str(info.value)


def small_net(**options):
    return MLP("polynomial", 2, 1, widths=[2], n=3, normalization="none", **options)


@pytest.mark.parametrize(("call", "match"), [
    (lambda: formula(small_net(), ["x"]), "name the network's 2 inputs"),
    (lambda: formula(small_net(), ["x", "pi"]), "bad variable name 'pi'"),
    (lambda: formula(small_net(), ["x", "y"], numeric="spline"), "unknown numeric 'spline'"),
    (lambda: formula(small_net().layers[0], ["x", "y"]), "hol.networks.MLP"),
    (lambda: formula(MLP("fourier", 2, 1, widths=[2], n=2, normalization="none"), ["x", "y"],
                     numeric="polynomial"), r"\(0, 0, 0\) not fitted"),
    (lambda: formula(small_net(input_layer="polynomial_nd", dims=2), ["x", "y"], numeric="polynomial"),
     r"layer 0 \(HighOrderLinear\) cannot be written"),
    (lambda: evaluate(sympy.Symbol("z"), ["x", "y"], torch.zeros(3, 2)), "uses z, not among"),
    (lambda: evaluate(sympy.Symbol("x"), ["x", "y"], torch.zeros(3, 3)), r"shape \[\.\.\., 2\]"),
])
def test_bad_arguments_raise_one_line(call, match):
    with pytest.raises(ValueError, match=match) as info:
        call()
    assert "\n" not in str(info.value)


def test_simplification_recovers_exact_constants_within_the_tolerance():
    x, y = sympy.symbols("x y")
    fitted = (sympy.Float(1.0000000002073) * sympy.exp(
        sympy.Float(0.999999999884819) * (y - sympy.Float(2.77100590592783e-12)) ** 2
        + sympy.Float(0.999999999879427) * sympy.sin(sympy.Float(3.14159265360343) * x
                                                      - sympy.Float(3.20988006140277e-12)))
        - sympy.Float(1.90705229385912e-10))
    points = uniform(400, [[-1, 1], [-1, 1]], seed=6)
    simplified = simplify_formula(fitted, ["x", "y"], points)
    assert simplified == sympy.exp(sympy.sin(sympy.pi * x) + y**2)
    values, before = evaluate(simplified, ["x", "y"], points), evaluate(fitted, ["x", "y"], points)
    assert (values - before).abs().max() <= 1e-6
    rounded = simplify_formula(0.123456789 * x + 2.5, ["x"], points[:, :1], tolerance=1e-3)
    assert str(rounded) == "0.123*x + 5/2"
