"""Fully connected hol layers against mathematics (float64 where exactness is asserted)."""
import math

import pytest
import torch
from torch.func import functional_call

import hol.layers
from hol.layers import fc

f64 = torch.float64
TOL = 1e-12
HIGH_ORDER_KINDS = ["polynomial", "continuous", "discontinuous", "fourier", "product", "polynomial_prod",
                    "continuous_prod", "discontinuous_prod", "polynomial_nd"]
PIECEWISE_KINDS = ["continuous", "discontinuous", "continuous_prod", "discontinuous_prod"]
BACKENDS = ["dense", "sparse", "fused"]  # compute paths of continuous / discontinuous: all obey the same math


def options_for(kind: str) -> dict:
    """Small non-trivial options that every kind accepts."""
    if kind in PIECEWISE_KINDS:
        return {"n": 3, "segments": 2}
    if kind == "polynomial_nd":
        return {"n": 3, "dims": 2}
    if kind in ("linear", "relu"):
        return {}
    return {"n": 3}


def input_for(kind: str, *leading: int, features: int, generator=None, dtype=f64) -> torch.Tensor:
    shape = (*leading, features, 2) if kind == "polynomial_nd" else (*leading, features)
    return torch.rand(*shape, generator=generator, dtype=dtype) * 1.8 - 0.9


def reference_nodes(n: int) -> list[float]:
    return [0.0] if n == 1 else [-math.cos(math.pi * k / (n - 1)) for k in range(n)]


def lagrange_reference(xs: list[float], ys: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The interpolating polynomial through (xs, ys) by the classical product formula."""
    total = torch.zeros_like(x)
    for k, (xk, yk) in enumerate(zip(xs, ys, strict=True)):
        term = torch.full_like(x, float(yk))
        for j, xj in enumerate(xs):
            if j != k:
                term = term * (x - xj) / (xk - xj)
        total = total + term
    return total


def scalar_layer(kind: str, weights: torch.Tensor, **options) -> torch.nn.Module:
    """A 1 -> 1 layer with the given link values, as a float64 function of a 1-D tensor of x."""
    layer = fc(kind, 1, 1, dtype=f64, **options)
    with torch.no_grad():
        layer.weight.copy_(weights.view(1, 1, -1))
    return layer


def evaluate(layer, x: torch.Tensor) -> torch.Tensor:
    return layer(x.unsqueeze(-1)).squeeze(-1)


# --- registry, shapes ---------------------------------------------------------------------------------------

def test_kinds_lists_every_kind_of_the_contract():
    assert {*HIGH_ORDER_KINDS, "linear", "relu"} <= set(hol.layers.kinds())
    assert hol.layers.kinds() == sorted(hol.layers.kinds())


@pytest.mark.parametrize("kind, options, width", [
    ("polynomial", {"n": 4}, 4),
    ("continuous", {"n": 4, "segments": 3}, 10),
    ("discontinuous", {"n": 4, "segments": 3}, 12),
    ("fourier", {"n": 4}, 9),
    ("product", {}, 1),
    ("continuous_prod", {"n": 4, "segments": 3}, 10),
    ("discontinuous_prod", {"n": 4, "segments": 3}, 12),
    ("polynomial_prod", {"n": 4}, 4),
    ("polynomial_nd", {"n": 4, "dims": 3}, 64),
])
def test_weight_shape_is_out_in_k(kind, options, width):
    layer = fc(kind, 5, 7, **options)
    assert layer.weight.shape == (7, 5, width)
    assert layer.bias is None


@pytest.mark.parametrize("kind", hol.layers.kinds())
def test_leading_dims(kind):
    layer = fc(kind, 4, 3, dtype=f64, **options_for(kind))
    x = input_for(kind, 2, 5, features=4)
    y = layer(x)
    assert y.shape == (2, 5, 3)
    flat = layer(x.reshape(10, *x.shape[2:]))
    torch.testing.assert_close(y.reshape(10, 3), flat, rtol=0, atol=TOL)
    single = layer(x[1, 2])
    torch.testing.assert_close(single, y[1, 2], rtol=0, atol=TOL)


# --- nodal layouts ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n, segments, length", [(2, 1, 2.0), (3, 2, 2.0), (5, 4, 2.0), (4, 3, 3.0)])
def test_continuous_weight_m_is_value_at_node_k_of_segment_s(n, segments, length, backend):
    K = (n - 1) * segments + 1
    w = torch.randn(K, dtype=f64)
    layer = scalar_layer("continuous", w, n=n, segments=segments, length=length, backend=backend)
    nodes = reference_nodes(n)
    for s in range(segments):
        for k in range(n):
            x = -length / 2 + length * (2 * s + 1 + nodes[k]) / (2 * segments)
            value = evaluate(layer, torch.tensor([x], dtype=f64)).item()
            assert abs(value - w[s * (n - 1) + k].item()) < 1e-12, (s, k)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n, segments, length", [(2, 2, 2.0), (3, 3, 2.0), (5, 2, 0.5)])
def test_discontinuous_weight_m_is_value_at_node_k_of_segment_s(n, segments, length, backend):
    w = torch.randn(n * segments, dtype=f64)
    layer = scalar_layer("discontinuous", w, n=n, segments=segments, length=length, backend=backend)
    nodes = reference_nodes(n)
    for s in range(segments):
        for k in range(n):
            x = -length / 2 + length * (2 * s + 1 + nodes[k]) / (2 * segments)
            value = evaluate(layer, torch.tensor([x], dtype=f64)).item()
            at_inner_break = k == n - 1 and s < segments - 1
            # a breakpoint belongs to the segment on its right: value there is w[(s+1) n]
            expected = w[(s + 1) * n] if at_inner_break else w[s * n + k]
            assert abs(value - expected.item()) < 1e-12, (s, k)


@pytest.mark.parametrize("n", [1, 2, 4, 6])
def test_polynomial_weight_k_is_value_at_node_k(n):
    length = 3.0
    w = torch.randn(n, dtype=f64)
    layer = scalar_layer("polynomial", w, n=n, length=length)
    x = torch.tensor(reference_nodes(n), dtype=f64) * length / 2
    torch.testing.assert_close(evaluate(layer, x), w, rtol=0, atol=TOL)


@pytest.mark.parametrize("kind, backend", [("polynomial", None), ("continuous", "dense"),
                                           ("continuous", "sparse"), ("discontinuous", "dense"),
                                           ("discontinuous", "sparse")])
@pytest.mark.parametrize("n", [2, 3, 5])
def test_polynomials_of_degree_n_minus_1_are_reproduced_everywhere(kind, backend, n):
    segments = 1 if kind == "polynomial" else 3
    length = 2.5
    coefficients = torch.randn(n, dtype=f64, generator=torch.Generator().manual_seed(n))

    def p(x):
        return sum(c * x**j for j, c in enumerate(coefficients))

    options = {} if backend is None else {"backend": backend}
    layer = fc(kind, 1, 1, n=n, segments=segments, length=length, dtype=f64, **options)
    positions = layer.basis.node_positions()
    if kind == "discontinuous":  # value at node k of segment s, written out
        nodes = reference_nodes(n)
        positions = torch.tensor([-length / 2 + length * (2 * s + 1 + nodes[k]) / (2 * segments)
                                  for s in range(segments) for k in range(n)], dtype=f64)
    with torch.no_grad():
        layer.weight.copy_(p(positions).view(1, 1, -1))
    x = torch.linspace(-2.5, 2.5, 101, dtype=f64)  # domain [-1.25, 1.25] plus polynomial extrapolation
    torch.testing.assert_close(evaluate(layer, x), p(x), rtol=0, atol=1e-10)


# --- continuity and jumps -----------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_continuous_is_continuous_at_breaks(backend):
    n, segments, length = 4, 5, 2.0
    w = torch.randn((n - 1) * segments + 1, dtype=f64)
    layer = scalar_layer("continuous", w, n=n, segments=segments, length=length, backend=backend)
    h = 1e-9
    for s in range(1, segments):
        b = -length / 2 + length * s / segments
        left, at, right = evaluate(layer, torch.tensor([b - h, b, b + h], dtype=f64)).tolist()
        assert abs(at - w[s * (n - 1)].item()) < 1e-12
        assert abs(left - at) < 1e-6 and abs(right - at) < 1e-6


@pytest.mark.parametrize("backend", BACKENDS)
def test_discontinuous_jumps_at_breaks(backend):
    n, segments, length = 3, 4, 2.0
    w = torch.randn(n * segments, dtype=f64)
    layer = scalar_layer("discontinuous", w, n=n, segments=segments, length=length, backend=backend)
    h = 1e-9
    for s in range(segments - 1):
        b = -length / 2 + length * (s + 1) / segments
        left, at, right = evaluate(layer, torch.tensor([b - h, b, b + h], dtype=f64)).tolist()
        assert abs(left - w[s * n + n - 1].item()) < 1e-6  # left limit
        assert abs(right - w[(s + 1) * n].item()) < 1e-6  # right limit
        assert abs(at - w[(s + 1) * n].item()) < 1e-12  # the break belongs to the right segment
        assert abs(left - right) > 1e-3  # random weights: a real jump


def test_non_default_length_scales_the_domain():
    # The same weights on length L describe f(x) = g(2 x / L) for g on length 2.
    w = torch.randn(7, dtype=f64)
    short = scalar_layer("continuous", w, n=3, segments=3, length=2.0)
    long = scalar_layer("continuous", w, n=3, segments=3, length=5.0)
    x = torch.linspace(-3.0, 3.0, 41, dtype=f64)
    torch.testing.assert_close(evaluate(long, x), evaluate(short, 2 * x / 5.0), rtol=0, atol=1e-12)


# --- separability, bias, products ---------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["polynomial", "continuous", "discontinuous", "fourier", "polynomial_nd"])
def test_output_is_sum_of_single_input_layers(kind):
    I, O = 4, 3
    layer = fc(kind, I, O, dtype=f64, init="uniform", **options_for(kind))
    x = input_for(kind, 6, features=I)
    total = torch.zeros(6, O, dtype=f64)
    for i in range(I):
        single = fc(kind, 1, O, dtype=f64, **options_for(kind))
        with torch.no_grad():
            single.weight.copy_(layer.weight[:, i:i + 1])
        total = total + single(x[:, i:i + 1])
    torch.testing.assert_close(layer(x), total, rtol=0, atol=TOL)


@pytest.mark.parametrize("kind", ["continuous", "fourier", "continuous_prod", "product", "polynomial_nd"])
def test_bias_on_adds_bias_and_default_is_off(kind):
    assert fc(kind, 3, 2, **options_for(kind)).bias is None
    with_bias = fc(kind, 3, 2, bias=True, dtype=f64, **options_for(kind))
    assert with_bias.bias.shape == (2,)
    without = fc(kind, 3, 2, dtype=f64, **options_for(kind))
    with torch.no_grad():
        without.weight.copy_(with_bias.weight)
        with_bias.bias.copy_(torch.tensor([0.5, -2.0]))
    x = input_for(kind, 4, features=3)
    torch.testing.assert_close(with_bias(x), without(x) + torch.tensor([0.5, -2.0], dtype=f64), rtol=0,
                               atol=TOL)


@pytest.mark.parametrize("kind, links_kind", [("polynomial_prod", "polynomial"),
                                              ("continuous_prod", "continuous"),
                                              ("discontinuous_prod", "discontinuous")])
@pytest.mark.parametrize("alpha", [1.0, 0.0, 0.3])
def test_product_formula(kind, links_kind, alpha):
    I, O = 3, 2
    layer = fc(kind, I, O, alpha=alpha, dtype=f64, init="uniform", **options_for(kind))
    x = input_for(kind, 5, features=I)
    f = torch.empty(5, O, I, dtype=f64)  # f_oi(x_i) from single-link sum layers
    for i in range(I):
        single = fc(links_kind, 1, O, dtype=f64, **options_for(kind))
        with torch.no_grad():
            single.weight.copy_(layer.weight[:, i:i + 1])
        f[:, :, i] = single(x[:, i:i + 1])
    expected = torch.prod(1 + f, dim=-1) - 1 - (1 - alpha) * f.sum(-1)
    torch.testing.assert_close(layer(x), expected, rtol=0, atol=TOL)


@pytest.mark.parametrize("alpha", [1.0, 0.0])
def test_product_kind_has_linear_links(alpha):
    I, O = 4, 3
    layer = fc("product", I, O, alpha=alpha, dtype=f64)
    W = layer.weight[..., 0]
    x = torch.randn(6, I, dtype=f64)
    f = W.unsqueeze(0) * x.unsqueeze(1)  # [B, O, I], f_oi = W_oi x_i
    expected = torch.prod(1 + f, dim=-1) - 1 - (1 - alpha) * f.sum(-1)
    torch.testing.assert_close(layer(x), expected.detach(), rtol=0, atol=TOL)


# --- Fourier ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("length", [2.0, 3.5])
def test_fourier_is_periodic_with_period_length(length):
    layer = fc("fourier", 3, 2, n=4, length=length, init="uniform", dtype=f64)
    x = torch.rand(8, 3, dtype=f64) * 4 - 2
    torch.testing.assert_close(layer(x + length), layer(x), rtol=0, atol=1e-11)
    torch.testing.assert_close(layer(x - 3 * length), layer(x), rtol=0, atol=1e-11)


def test_fourier_coefficient_layout():
    n, length = 3, 2.0
    omega = 2 * math.pi / length
    x = torch.linspace(-1, 1, 13, dtype=f64)
    expected = [torch.ones_like(x)]
    for j in range(1, n + 1):
        expected += [torch.cos(j * omega * x), torch.sin(j * omega * x)]
    for m in range(2 * n + 1):
        w = torch.zeros(2 * n + 1, dtype=f64)
        w[m] = 1
        layer = scalar_layer("fourier", w, n=n, length=length)
        torch.testing.assert_close(evaluate(layer, x), expected[m], rtol=0, atol=TOL)


# --- tensor-product links -----------------------------------------------------------------------------------

@pytest.mark.parametrize("dims", [2, 3])
def test_polynomial_nd_reproduces_products_of_polynomials_with_own_weights_per_link(dims):
    n, length, I, O = 3, 2.0, 2, 2
    layer = fc("polynomial_nd", I, O, n=n, dims=dims, length=length, dtype=f64)
    nodes = torch.tensor(reference_nodes(n), dtype=f64) * length / 2
    generator = torch.Generator().manual_seed(dims)
    # one polynomial per dim per link
    coefficients = torch.randn(O, I, dims, n, dtype=f64, generator=generator)

    def p(o, i, j, t):
        return sum(c * t**q for q, c in enumerate(coefficients[o, i, j]))

    with torch.no_grad():
        for o in range(O):
            for i in range(I):
                values = p(o, i, 0, nodes)
                for j in range(1, dims):  # row-major: first dimension slowest
                    values = (values.unsqueeze(-1) * p(o, i, j, nodes).unsqueeze(0)).flatten()
                layer.weight[o, i] = values
    x = torch.rand(7, I, dims, dtype=f64) * 3 - 1.5  # also outside the domain (polynomial extrapolation)
    expected = torch.zeros(7, O, dtype=f64)
    for o in range(O):
        for i in range(I):
            link = torch.ones(7, dtype=f64)
            for j in range(dims):
                link = link * p(o, i, j, x[:, i, j])
            expected[:, o] += link
    torch.testing.assert_close(layer(x), expected, rtol=0, atol=1e-11)


def test_polynomial_nd_weight_m_is_value_at_row_major_grid_point():
    n = 3
    w = torch.randn(n * n, dtype=f64)
    layer = fc("polynomial_nd", 1, 1, n=n, dims=2, dtype=f64)
    with torch.no_grad():
        layer.weight.copy_(w.view(1, 1, -1))
    nodes = reference_nodes(n)
    for k0 in range(n):
        for k1 in range(n):
            x = torch.tensor([[[nodes[k0], nodes[k1]]]], dtype=f64)
            assert abs(layer(x).item() - w[k0 * n + k1].item()) < TOL


# --- extrapolation ------------------------------------------------------------------------------------------

def end_polynomials(w: torch.Tensor, n: int, segments: int, length: float):
    """The polynomials of the first and last segment of a continuous link, by the product formula."""
    nodes = reference_nodes(n)
    width = length / segments
    first_x = [-length / 2 + width * (1 + X) / 2 for X in nodes]
    last_x = [length / 2 - width + width * (1 + X) / 2 for X in nodes]
    K = w.numel()
    return ((lambda x: lagrange_reference(first_x, w[:n], x)),
            (lambda x: lagrange_reference(last_x, w[K - n:], x)))


EXTRAPOLATION_CASE = {"n": 4, "segments": 3, "length": 3.0}


def extrapolation_layer(mode: str, backend: str, seed: int = 0):
    K = (EXTRAPOLATION_CASE["n"] - 1) * EXTRAPOLATION_CASE["segments"] + 1
    w = torch.randn(K, dtype=f64, generator=torch.Generator().manual_seed(seed))
    return w, scalar_layer("continuous", w, extrapolation=mode, backend=backend, **EXTRAPOLATION_CASE)


@pytest.mark.parametrize("backend", BACKENDS)
def test_extrapolation_polynomial_continues_the_end_segments(backend):
    w, layer = extrapolation_layer("polynomial", backend)
    first, last = end_polynomials(w, **EXTRAPOLATION_CASE)
    right = torch.linspace(1.5, 4.0, 11, dtype=f64)
    left = -right
    torch.testing.assert_close(evaluate(layer, right), last(right), rtol=0, atol=1e-10)
    torch.testing.assert_close(evaluate(layer, left), first(left), rtol=0, atol=1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
def test_extrapolation_clamp_is_flat_outside(backend):
    w, layer = extrapolation_layer("clamp", backend)
    outside = torch.tensor([1.5, 1.6, 3.0, 100.0], dtype=f64)
    torch.testing.assert_close(evaluate(layer, outside), w[-1].expand(4), rtol=0, atol=TOL)
    torch.testing.assert_close(evaluate(layer, -outside), w[0].expand(4), rtol=0, atol=TOL)
    inside = torch.linspace(-1.5, 1.5, 17, dtype=f64)
    _, reference = extrapolation_layer("polynomial", backend)
    torch.testing.assert_close(evaluate(layer, inside), evaluate(reference, inside), rtol=0, atol=TOL)


@pytest.mark.parametrize("backend", BACKENDS)
def test_extrapolation_linear_is_the_end_tangent_and_c1(backend):
    w, layer = extrapolation_layer("linear", backend)
    first, last = end_polynomials(w, **EXTRAPOLATION_CASE)
    half = EXTRAPOLATION_CASE["length"] / 2
    for end, p, sign in ((half, last, 1.0), (-half, first, -1.0)):
        b = torch.tensor([end], dtype=f64, requires_grad=True)
        slope = torch.autograd.grad(p(b).sum(), b)[0].item()  # derivative of the end polynomial
        d = torch.tensor([0.0, 0.1, 0.7, 5.0], dtype=f64)
        x = end + sign * d
        expected = p(torch.tensor([end], dtype=f64)) + sign * d * slope
        torch.testing.assert_close(evaluate(layer, x), expected, rtol=0, atol=1e-10)
        # C1: one-sided derivatives at the boundary agree
        inside = torch.tensor([end - sign * 1e-7], dtype=f64, requires_grad=True)
        outside = torch.tensor([end + sign * 1e-7], dtype=f64, requires_grad=True)
        g_in = torch.autograd.grad(evaluate(layer, inside).sum(), inside)[0].item()
        g_out = torch.autograd.grad(evaluate(layer, outside).sum(), outside)[0].item()
        assert abs(g_in - slope) < 1e-5 and abs(g_out - slope) < 1e-12


@pytest.mark.parametrize("backend", BACKENDS)
def test_extrapolation_mirror_is_mirror_periodic(backend):
    _, layer = extrapolation_layer("mirror", backend)
    L = EXTRAPOLATION_CASE["length"]
    half = L / 2
    d = torch.linspace(0.0, half, 9, dtype=f64)
    torch.testing.assert_close(evaluate(layer, half + d), evaluate(layer, half - d), rtol=0, atol=1e-12)
    torch.testing.assert_close(evaluate(layer, -half - d), evaluate(layer, -half + d), rtol=0, atol=1e-12)
    x = torch.linspace(-half, half, 23, dtype=f64)
    for shift in (2 * L, -2 * L, 6 * L):
        torch.testing.assert_close(evaluate(layer, x + shift), evaluate(layer, x), rtol=0, atol=1e-11)
    _, reference = extrapolation_layer("polynomial", backend)
    torch.testing.assert_close(evaluate(layer, x), evaluate(reference, x), rtol=0, atol=TOL)


@pytest.mark.parametrize("mode", ["polynomial", "clamp", "linear", "mirror"])
@pytest.mark.parametrize("kind", ["polynomial", "discontinuous", "polynomial_nd"])
def test_extrapolation_modes_agree_inside_the_domain(mode, kind):
    options = {**options_for(kind), "length": 2.0}
    reference = fc(kind, 2, 2, dtype=f64, init="uniform", **options)
    layer = fc(kind, 2, 2, dtype=f64, extrapolation=mode, **options)
    layer.load_state_dict(reference.state_dict())
    x = input_for(kind, 9, features=2)
    torch.testing.assert_close(layer(x), reference(x), rtol=0, atol=TOL)
    outside = x + 3.0
    assert torch.isfinite(layer(outside)).all()
    if mode == "clamp":
        torch.testing.assert_close(layer(outside), layer(torch.full_like(x, 1.0)), rtol=0, atol=TOL)
    if mode == "mirror":
        torch.testing.assert_close(layer(x + 4.0), layer(x), rtol=0, atol=1e-11)


# --- gradients ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", hol.layers.kinds())
def test_gradcheck_on_inputs_and_weights(kind):
    layer = fc(kind, 3, 2, dtype=f64, **options_for(kind))
    if hasattr(layer, "bias") and layer.bias is None and kind not in ("linear", "relu"):
        layer = fc(kind, 3, 2, dtype=f64, bias=True, **options_for(kind))
    names = [name for name, _ in layer.named_parameters()]
    params = [p.detach().clone().requires_grad_() for _, p in layer.named_parameters()]
    x = input_for(kind, 4, features=3, generator=torch.Generator().manual_seed(1)).requires_grad_()
    if kind == "relu":  # keep pre-activations away from the kink
        with torch.no_grad():
            pre = torch.nn.functional.linear(x, params[0], params[1])
            params[1] += torch.where(pre.abs().min(0).values < 1e-3, 0.1, 0.0)

    def f(x, *params):
        return functional_call(layer, dict(zip(names, params, strict=True)), (x,))

    assert torch.autograd.gradcheck(f, (x, *params), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["continuous", "discontinuous"])
@pytest.mark.parametrize("mode", ["polynomial", "clamp", "linear", "mirror"])
def test_gradcheck_extrapolation_outside_domain(mode, kind, backend):
    layer = fc(kind, 2, 2, n=4, segments=2, extrapolation=mode, backend=backend, dtype=f64)
    x = torch.tensor([[1.3, -1.7], [2.9, 0.2], [-3.3, 4.4]], dtype=f64, requires_grad=True)
    w = layer.weight.detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda x, w: functional_call(layer, {"weight": w}, (x,)), (x, w))


# --- state, dtype, rebuild ----------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", hol.layers.kinds())
def test_state_dict_round_trip(kind):
    torch.manual_seed(0)
    options = {} if hol.layers.kind_info(kind).baseline else {"init": "uniform", **options_for(kind)}
    layer = fc(kind, 3, 2, dtype=f64, **options)
    torch.manual_seed(1)
    other = fc(kind, 3, 2, dtype=f64, **options_for(kind))
    x = input_for(kind, 5, features=3)
    assert not torch.allclose(layer(x), other(x))
    other.load_state_dict(layer.state_dict())
    torch.testing.assert_close(other(x), layer(x), rtol=0, atol=0)


def test_loads_high_order_layers_torch_state_dict_with_key_w():
    n, segments = 3, 2
    w = torch.randn(2, 3, (n - 1) * segments + 1)
    network = torch.nn.Sequential(fc("continuous", 3, 2, n=n, segments=segments))
    network.load_state_dict({"0.w": w.clone()})
    assert torch.equal(network[0].weight.detach(), w)
    layer = fc("continuous", 3, 2, n=n, segments=segments)
    layer.load_state_dict({"w": w.clone()})
    assert torch.equal(layer.weight.detach(), w)


def test_double_after_float_is_exact_again():
    n, segments = 6, 2
    coefficients = torch.randn(n, dtype=f64)

    def p(x):
        return sum(c * x**j for j, c in enumerate(coefficients))

    layer = fc("continuous", 1, 1, n=n, segments=segments, dtype=f64)
    with torch.no_grad():
        layer.weight.copy_(p(layer.basis.node_positions()).view(1, 1, -1))
    layer.float()
    assert layer.weight.dtype == torch.float32 and layer.basis.transform.dtype == torch.float32
    layer.double()
    with torch.no_grad():  # weights lost precision in float32: set them again exactly
        layer.weight.copy_(p(layer.basis.node_positions()).view(1, 1, -1))
    x = torch.linspace(-1.3, 1.3, 31, dtype=f64)
    torch.testing.assert_close(evaluate(layer, x), p(x), rtol=0, atol=1e-11)


def test_device_and_dtype_moves_carry_the_constants():
    layer = fc("polynomial_nd", 2, 2, n=3, dims=2)
    layer.to(dtype=torch.float64)
    assert layer.basis.transform.dtype == f64
    layer.to("meta")
    assert layer.weight.device.type == "meta" and layer.basis.transform.device.type == "meta"
    assert layer(torch.empty(4, 2, 2, device="meta", dtype=f64)).shape == (4, 2)


@pytest.mark.parametrize("kind", HIGH_ORDER_KINDS)
def test_hparams_rebuild_an_identical_layer(kind):
    layer = fc(kind, 3, 2, bias=True, init="uniform", **options_for(kind))
    hparams = layer.hparams()
    assert hparams["kind"] == kind and hparams["in_features"] == 3 and hparams["out_features"] == 2
    rebuilt = fc(**hparams)
    assert repr(rebuilt) == repr(layer)
    assert rebuilt.hparams() == hparams
    rebuilt.load_state_dict(layer.state_dict())
    x = input_for(kind, 4, features=3, dtype=torch.float32)
    torch.testing.assert_close(rebuilt(x), layer(x), rtol=0, atol=0)


def test_hparams_are_attributes():
    layer = fc("continuous", 3, 2, n=5, segments=4, length=3.0, extrapolation="clamp")
    assert (layer.kind, layer.n, layer.segments, layer.length, layer.extrapolation) == (
        "continuous", 5, 4, 3.0, "clamp")


def test_extra_repr_names_the_hyperparameters():
    text = repr(fc("discontinuous", 3, 2, n=5, segments=4, length=3.0, extrapolation="mirror", bias=True,
                   init="constant"))
    for part in ("kind='discontinuous'", "in_features=3", "out_features=2", "n=5", "segments=4", "length=3.0",
                 "extrapolation='mirror'", "bias=True", "init='constant'"):
        assert part in text, (part, text)
    assert "kind='continuous'" in repr(fc("continuous", 3, 2))


@pytest.mark.parametrize("kind", HIGH_ORDER_KINDS)
def test_reset_parameters_redraws_weights(kind):
    layer = fc(kind, 4, 3, init="uniform", **options_for(kind))
    before = layer.weight.detach().clone()
    layer.reset_parameters()
    assert not torch.equal(before, layer.weight)


# --- initialisation -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["polynomial", "continuous", "discontinuous", "fourier"])
def test_init_constant_makes_flat_links(kind):
    layer = fc(kind, 3, 2, init="constant", dtype=f64, **options_for(kind))
    x = torch.rand(6, 3, dtype=f64) * 2 - 1
    torch.testing.assert_close(layer(x), layer(torch.zeros_like(x)).expand(6, 2), rtol=0, atol=TOL)


@pytest.mark.parametrize("kind", ["polynomial", "continuous", "discontinuous", "polynomial_nd"])
def test_init_linear_makes_straight_links(kind):
    layer = fc(kind, 3, 2, init="linear", dtype=f64, **options_for(kind))
    x, z = input_for(kind, 5, features=3), input_for(kind, 5, features=3)
    # an affine map: f((x + z) / 2) = (f(x) + f(z)) / 2, and it is not constant
    torch.testing.assert_close(layer((x + z) / 2), (layer(x) + layer(z)) / 2, rtol=0, atol=TOL)
    assert not torch.allclose(layer(x), layer(z))


def test_init_linear_fourier_has_slope_at_zero():
    layer = fc("fourier", 3, 2, n=2, init="linear", dtype=f64)
    x = torch.zeros(1, 3, dtype=f64, requires_grad=True)
    slope = torch.autograd.grad(layer(x)[0, 0], x)[0]
    assert slope.abs().min() > 0


# --- bad arguments ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("call, pattern", [
    (lambda: fc("quadratic", 2, 2), r"kind 'quadratic'.*allowed: continuous, continuous_prod, .*relu"),
    (lambda: fc("polynomial", 2, 2, n=0), r"n must be .*>= 1.*got 0"),
    (lambda: fc("fourier", 2, 2, n=0), r"n must be .*>= 1.*got 0"),
    (lambda: fc("polynomial_nd", 2, 2, n=0, dims=2), r"n must be .*>= 1.*got 0"),
    (lambda: fc("continuous", 2, 2, n=1), r"n must be .*>= 2.*piecewise.*got 1"),
    (lambda: fc("discontinuous", 2, 2, n=1), r"n must be .*>= 2.*piecewise.*got 1"),
    (lambda: fc("continuous_prod", 2, 2, n=1), r"n must be .*>= 2.*piecewise.*got 1"),
    (lambda: fc("discontinuous_prod", 2, 2, n=1), r"n must be .*>= 2.*piecewise.*got 1"),
    (lambda: fc("continuous", 2, 2, segments=0), r"segments must be .*>= 1.*got 0"),
    (lambda: fc("discontinuous", 2, 2, segments=-3), r"segments must be .*>= 1.*got -3"),
    (lambda: fc("continuous", 2, 2, length=0), r"length must be .*> 0.*got 0"),
    (lambda: fc("polynomial", 2, 2, length=-1.5), r"length must be .*> 0.*got -1.5"),
    (lambda: fc("continuous", 2, 2, init="zeros"), r"init 'zeros'.*allowed: constant, linear, uniform"),
    (lambda: fc("continuous", 2, 2, extrapolation="wrap"),
     r"extrapolation 'wrap'.*allowed: clamp, linear, mirror, polynomial"),
    (lambda: hol.layers.norm("whiten", 4),
     r"norm 'whiten'.*allowed: batch_norm, layer_norm, max_abs, max_center, none"),
    (lambda: fc("polynomial_nd", 2, 2), r"dims must be .*>= 1.*got None"),
    (lambda: fc("continuous", 2, 2, dims=2), r"dims is not an option of kind 'continuous'.*dims=2"),
    (lambda: fc("continuous", 0, 2), r"in_features must be .*>= 1.*got 0"),
    (lambda: fc("continuous", 2, 2.5), r"out_features must be .*>= 1.*got 2.5"),
    (lambda: fc("polynomial", 2, 2, segments=2),
     r"segments is not an option of kind 'polynomial'.*segments=2"),
])
def test_bad_arguments_raise_value_error_naming_argument_value_and_choices(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()


def test_n_one_polynomial_is_a_constant_link():
    w = torch.tensor([0.7], dtype=f64)
    layer = scalar_layer("polynomial", w, n=1)
    torch.testing.assert_close(evaluate(layer, torch.linspace(-3, 3, 7, dtype=f64)),
                               torch.full((7,), 0.7, dtype=f64), rtol=0, atol=TOL)
