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
