"""Inputs a layer cannot use are reported at the layer's boundary; NaN and infinite inputs propagate to the
outputs they reach, and only to those (every kind, extrapolation and stride of the segment layout); with
``extrapolation="clamp"`` the links are constant beyond the domain, so an infinite input has the end's
value."""
from __future__ import annotations

import pytest
import torch

import hol
from hol.layers import kind_info
from hol.layers.bases import EXTRAPOLATIONS

FC = [kind for kind in hol.layers.kinds() if kind_info(kind).basis not in (None, "tensor")]


def options(kind: str, n: int) -> dict:
    if kind_info(kind).basis == "identity":
        return {}
    return {"n": n, **({"segments": 3} if kind_info(kind).piecewise else {})}


@pytest.mark.parametrize("kind", FC)
@pytest.mark.parametrize("n", [2, 3])  # odd and even segment strides of the continuous/discontinuous layout
@pytest.mark.parametrize("extrapolation", EXTRAPOLATIONS)
def test_non_finite_inputs_reach_only_their_own_outputs(kind, n, extrapolation):
    takes = "extrapolation" in kind_info(kind).options
    extra = {"extrapolation": extrapolation} if takes else {}
    layer = hol.layers.fc(kind, 3, 2, **options(kind, n), **extra, dtype=torch.float64)
    x = torch.rand(5, 3, dtype=torch.float64) * 2 - 1
    x[1, 0], x[2, 2], x[3, 1] = float("nan"), float("inf"), -float("inf")
    y = layer(x)
    assert y[[0, 4]].isfinite().all()  # untouched samples
    assert y[1].isnan().all()  # every output of a sample with a NaN input
    if extra.get("extrapolation") == "clamp":  # links constant beyond the ends: f(+-inf) = f(+-L/2)
        ends = x[2:4].nan_to_num(posinf=1.0, neginf=-1.0)
        torch.testing.assert_close(y[2:4], layer(ends), rtol=0, atol=0)
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
