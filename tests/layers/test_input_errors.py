"""Inputs a layer cannot use are reported at the layer's boundary; NaN and infinite inputs propagate to the
outputs they reach, and only to those (every kind, extrapolation and stride of the segment layout); with
``extrapolation="clamp"`` the links are constant beyond the domain, so an infinite input has the end's
value."""
from __future__ import annotations

import pytest
import torch

import hol
from hol.layers import kind_info
from hol.ops.lagrange import EXTRAPOLATIONS

FC = [kind for kind in hol.layers.kinds() if kind_info(kind).basis not in (None, "tensor")]
BACKENDS = ("dense", "sparse", "auto")


def options(kind: str, n: int) -> dict:
    if kind_info(kind).basis == "identity":
        return {}
    return {"n": n, **({"segments": 3} if kind_info(kind).piecewise else {})}


def fc_cases():
    """Every fc kind with scalar links, and the piecewise non-product kinds once per backend."""
    return [(kind, backend) for kind in FC
            for backend in (BACKENDS if kind_info(kind).sparse_capable else ("auto",))]


@pytest.mark.parametrize(("kind", "backend"), fc_cases())
@pytest.mark.parametrize("n", [2, 3])  # odd and even segment strides of the continuous/discontinuous layout
@pytest.mark.parametrize("extrapolation", EXTRAPOLATIONS)
def test_non_finite_inputs_reach_only_their_own_outputs(kind, backend, n, extrapolation):
    takes = "extrapolation" in kind_info(kind).options
    extra = {"extrapolation": extrapolation} if takes else {}
    layer = hol.layers.fc(kind, 3, 2, **options(kind, n), **extra, backend=backend, dtype=torch.float64)
    x = torch.rand(5, 3, dtype=torch.float64) * 2 - 1
    x[1, 0], x[2, 2], x[3, 1] = float("nan"), float("inf"), -float("inf")
    y = layer(x)
    assert y[[0, 4]].isfinite().all()  # untouched samples
    assert y[1].isnan().all()  # every output of a sample with a NaN input
    if extra.get("extrapolation") == "clamp":  # links constant beyond the ends: f(+-inf) = f(+-L/2)
        ends = x.clone()  # the same batch shape, so the same GEMM blocking: equal to the last bit
        ends[2:4] = x[2:4].nan_to_num(posinf=1.0, neginf=-1.0)
        torch.testing.assert_close(y[2:4], layer(ends)[2:4], rtol=0, atol=0)
    else:
        assert (~y[2:4].isfinite()).all()


@pytest.mark.parametrize("kind", hol.layers.conv_kinds())
@pytest.mark.parametrize("transpose", [False, True])
def test_non_finite_pixels_reach_only_their_receptive_field(kind, transpose):
    layer = hol.layers.conv(kind, 1, 2, 3, padding=1, transpose=transpose,
                            **({"n": 3, "segments": 3} if kind_info(kind).piecewise else {}))
    x = torch.rand(2, 1, 7, 7) * 2 - 1
    x[0, 0, 3, 3] = float("nan")
    y = layer(x)
    assert y[1].isfinite().all()
    reached = torch.zeros(7, 7, dtype=torch.bool)
    reached[2:5, 2:5] = True  # the 3 x 3 neighbourhood of the pixel
    assert torch.equal(~y[0, 0].isfinite(), reached) and torch.equal(~y[0, 1].isfinite(), reached)


@pytest.mark.parametrize(("kind", "backend"), [*fc_cases(), ("polynomial_nd", "auto")])
def test_fc_layers_check_their_input(kind, backend):
    dims = {"dims": 2} if kind == "polynomial_nd" else {}
    layer = hol.layers.fc(kind, 6, 4, **options(kind, 3), **dims, backend=backend)
    width = "6, 2" if dims else "6"
    good = torch.rand(3, 6, *([2] if dims else [])) * 2 - 1
    assert layer(good).shape == (3, 4) and layer(good[None]).shape == (1, 3, 4)  # leading dims
    bad_shape = torch.rand(3, 5, *([2] if dims else []))
    got = ", ".join(map(str, bad_shape.shape))
    with pytest.raises(ValueError, match=rf"^HighOrderLinear\(kind='{kind}', in_features=6, out_features=4"
                                         rf".*\): expected input \[\.\.\., {width}\], got shape \({got}\)$"):
        layer(bad_shape)
    with pytest.raises(ValueError, match=r"the input's dtype torch.float64 differs from the weights' "):
        layer(good.double())
    with pytest.raises(ValueError, match=r"expected a floating-point input, got dtype torch.int64"):
        layer(good.long())
    with pytest.raises(ValueError, match=rf"expected a tensor \[\.\.\., {width}\], got list$"):
        layer(good.tolist())
    if dims:
        with pytest.raises(ValueError, match=r"expected input \[\.\.\., 6, 2\], got shape \(3, 6, 3\)"):
            layer(torch.rand(3, 6, 3))  # polynomial_nd with the wrong dims
    with torch.autocast("cpu", dtype=torch.bfloat16):  # autocast casts the operands, as for nn.Linear
        assert layer(good.bfloat16()).shape == (3, 4)
        with pytest.raises(ValueError, match=r"the input's dtype torch.float64 differs from the weights' "):
            layer(good.double())  # autocast leaves float64 as it is


@pytest.mark.parametrize("kind", hol.layers.conv_kinds())
@pytest.mark.parametrize(("dim", "transpose"), [(1, False), (2, False), (3, False), (2, True)])
def test_conv_layers_check_their_input(kind, dim, transpose):
    layer = hol.layers.conv(kind, 3, 2, 3, dim=dim, transpose=transpose, padding=1)
    spatial = [5] * dim
    assert layer(torch.rand(2, 3, *spatial)).shape[:2] == (2, 2)
    assert layer(torch.rand(3, *spatial)).shape[0] == 2  # unbatched
    name = "HighOrderConv" if kind_info(kind).basis else "(Conv|ReLUConv)"
    for bad in (torch.rand(2, 4, *spatial), torch.rand(2, 3, *spatial, 5), torch.rand(3)):
        with pytest.raises((ValueError, RuntimeError), match=rf"{name}|channels|Expected|expected"):
            layer(bad)
    if kind_info(kind).basis:
        letters = ", ".join("DHW"[3 - dim:])
        with pytest.raises(ValueError, match=rf"expected input \[B, 3, {letters}\] \(or unbatched"):
            layer(torch.rand(2, 4, *spatial))
        with pytest.raises(ValueError, match="differs from the weights'"):
            layer(torch.rand(2, 3, *spatial, dtype=torch.float64))
        with pytest.raises(ValueError, match=r"expected a tensor \[B, 3, .*got list$"):
            layer(torch.rand(2, 3, *spatial).tolist())


def test_networks_report_the_layer_that_refused_the_input():
    mlp = hol.networks.MLP("continuous", 784, 10, 1, 16)
    with pytest.raises(ValueError, match=r"in_features=784.*expected input \[\.\.\., 784\], got shape "
                                         r"\(2, 28, 28\)"):
        mlp(torch.rand(2, 28, 28))
    convnet = hol.networks.ConvNet("discontinuous", 1, [4], 3, out_features=10)
    with pytest.raises(ValueError, match=r"expected input \[B, 1, H, W\]"):
        convnet(torch.rand(2, 3, 28, 28))
