"""hol.functional computes what the modules compute, from tensors: each function against the layer that calls
it, in float64, with per-input domains moved off the reference domain."""
import pytest
import torch

import hol
from hol import functional
from hol.layers.domain import to_reference


def _moved(layer):
    """``layer`` with per-input domains other than the reference one (inputs then fall inside and outside)."""
    with torch.no_grad():
        inputs = layer.domain_centre.shape[0]
        layer.domain_centre.copy_(torch.linspace(-0.3, 0.4, inputs))
        layer.domain_width.copy_(torch.linspace(1.5, 2.5, inputs))
    return layer


@pytest.mark.parametrize("kind", ["continuous", "discontinuous", "polynomial"])
def test_linear_functions_give_the_layer(kind):
    torch.manual_seed(0)
    options = {"segments": 3} if kind != "polynomial" else {}
    layer = hol.layers.fc(kind, 4, 3, n=4, init="uniform", bias=True, backend="dense", **options)
    layer = _moved(layer.double())
    x = torch.rand(7, 4, dtype=torch.float64) * 3 - 1.5
    expected = layer(x)
    geometry = {"segments": layer.segments, "length": layer.length, "continuous": layer.basis.continuous,
                "extrapolation": layer.extrapolation}
    z = to_reference(layer, x)
    assert torch.allclose(functional.basis_linear(layer.basis(z), layer.weight, layer.bias), expected,
                          rtol=0, atol=1e-12)
    fused = functional.fused_lagrange_linear(x, layer.weight, layer.basis.transform,
                                             centre=layer.domain_centre, width=layer.domain_width,
                                             bias=layer.bias, **geometry)
    assert torch.allclose(fused, expected, rtol=0, atol=1e-12)
    sparse = functional.segment_sparse_linear(z, layer.weight, layer.basis.transform, bias=layer.bias,
                                              **geometry)
    assert torch.allclose(sparse, expected, rtol=0, atol=1e-12)
    reference_domain = hol.layers.fc(kind, 4, 3, n=4, init="uniform", **options).double()
    default = functional.fused_lagrange_linear(x, reference_domain.weight, reference_domain.basis.transform,
                                               **geometry)  # no centre, width: the reference domain
    assert torch.allclose(default, reference_domain(x), rtol=0, atol=1e-12)


@pytest.mark.parametrize("transpose", [False, True], ids=["conv", "transposed"])
def test_basis_conv_gives_the_convolution(transpose):
    torch.manual_seed(0)
    layer = hol.layers.conv("continuous", 2, 3, 3, dim=2, n=3, segments=2, transpose=transpose, stride=2,
                            padding=1, bias=True).double()
    x = torch.rand(2, 2, 6, 6, dtype=torch.float64) * 2 - 1
    options = {"stride": 2, "padding": 1, "transpose": transpose}
    y = functional.basis_conv(layer.expand(x), layer.conv_weight(), layer.bias, **options)
    assert torch.allclose(y, layer(x), rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind, n", [("continuous", 2), ("continuous", 3), ("discontinuous", 5),
                                     ("polynomial", 6)])
def test_chebyshev_linear_is_the_basis_product_with_its_derivatives(kind, n):
    """One-segment links in the Chebyshev basis: the values of the basis values' product with the weights,
    and the same first, second and third derivatives in x and the gradient in the weights of a derivative,
    inputs inside and outside the (moved) domains."""
    torch.manual_seed(0)
    options = {"segments": 1} if kind != "polynomial" else {}
    layer = _moved(hol.layers.fc(kind, 4, 3, n=n, init="uniform", bias=True, backend="dense",
                                 **options).double())
    with torch.no_grad():
        layer.bias.uniform_(-1, 1)
    x = (torch.rand(9, 4, dtype=torch.float64) * 4 - 2).requires_grad_()

    def by_basis(v):
        return functional.basis_linear(layer.basis(to_reference(layer, v)), layer.weight, layer.bias)

    def by_chebyshev(v):
        return functional.chebyshev_linear(to_reference(layer, v) * (2 / layer.length), layer.weight,
                                           layer.basis.transform, layer.bias)

    results = []
    for function in (by_basis, by_chebyshev):
        y = function(x)
        (first,) = torch.autograd.grad(y.sin().sum(), x, create_graph=True)
        (second,) = torch.autograd.grad(first.sum(), x, create_graph=True)
        (third,) = torch.autograd.grad(second.sum(), x, create_graph=True)
        (weight_grad,) = torch.autograd.grad(third.square().sum(), layer.weight)
        results.append((y, first, second, third, weight_grad))
    for got, expected in zip(results[1], results[0], strict=True):
        assert torch.allclose(got, expected, rtol=0, atol=1e-11 * max(1.0, expected.abs().max().item()))
    assert torch.autograd.gradgradcheck(by_chebyshev, (x,))


def test_the_dense_path_of_one_segment_polynomial_links_is_chebyshev_linear(monkeypatch):
    """The layer's dense path calls chebyshev_linear for one-segment links with polynomial extrapolation in
    float32 and float64, and the basis values elsewhere: several segments, another extrapolation, the half
    types, autocast."""
    from hol.layers import fully_connected

    calls = []

    def counted(*args, **kwargs):
        calls.append(1)
        return functional.chebyshev_linear(*args, **kwargs)

    monkeypatch.setattr(fully_connected, "chebyshev_linear", counted)
    one, clamped = {"segments": 1}, {"segments": 1, "extrapolation": "clamp"}
    cases = [(one, torch.float64, True), (one, torch.float32, True), ({"segments": 2}, torch.float64, False),
             (clamped, torch.float64, False), (one, torch.bfloat16, False)]
    for options, dtype, expected in cases:
        layer = hol.layers.fc("continuous", 3, 2, n=3, backend="dense", **options).to(dtype)
        before = len(calls)
        layer(torch.rand(4, 3, dtype=dtype))
        assert (len(calls) > before) == expected, (options, dtype)
    layer = hol.layers.fc("continuous", 3, 2, n=3, backend="dense")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        before = len(calls)
        assert layer(torch.rand(4, 3)).dtype == torch.bfloat16
        assert len(calls) == before
