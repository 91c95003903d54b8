"""Half precision (float16, bfloat16): every layer family's output and input gradient stay within a small
factor of torch's layer's rounding error in the same dtype (``nn.Linear``, ``nn.Conv2d``,
``nn.ConvTranspose2d``), at every number of segments and on every backend, measured against a float64
evaluation of the same half-precision weights and inputs."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import hol
from hol.layers import kind_info

HALF = (torch.bfloat16, torch.float16)
FACTOR = 2.5
"""Allowed ratio of a layer's relative error to torch's layer's (measured 1.2-1.4 on every kind; 5 to 500
when the segment coordinates were computed in the half type)."""


def _relative(value: torch.Tensor, exact: torch.Tensor) -> float:
    return ((value.double() - exact).norm() / exact.norm()).item()


def _torch_errors(make, dtype: torch.dtype, x: torch.Tensor) -> tuple[float, float]:
    """The relative output and input-gradient errors of torch's layer ``make()`` in ``dtype`` at ``x``."""
    layer = make().to(dtype)
    exact = make().double()
    exact.load_state_dict(layer.state_dict())
    return _errors(layer, exact, x.to(dtype))


def _errors(layer: nn.Module, exact: nn.Module, x: torch.Tensor) -> tuple[float, float]:
    """Relative errors of ``layer``'s output and of the input gradient of ``sum(y * g)`` against ``exact``
    (the same weights in float64) at the same (half-precision) inputs."""
    x_half = x.detach().requires_grad_(True)
    x_exact = x.detach().double().requires_grad_(True)
    y, y_exact = layer(x_half), exact(x_exact)
    cotangent = torch.randn(y.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    (y * cotangent.to(y.dtype)).sum().backward()
    (y_exact * cotangent).sum().backward()
    return _relative(y, y_exact), _relative(x_half.grad, x_exact.grad)


def _fc_cases():
    for kind in hol.layers.kinds():
        info = kind_info(kind)
        if info.basis is None:
            continue
        segment_counts = (1, 16) if "segments" in info.options else (1,)
        backends = ("dense", "sparse", "fused") if info.sparse_capable else ("auto",)
        for segments in segment_counts:
            for backend in backends:
                yield kind, segments, backend


@pytest.mark.parametrize("dtype", HALF, ids=str)
@pytest.mark.parametrize(("kind", "segments", "backend"), list(_fc_cases()))
def test_fully_connected_half_precision_within_a_factor_of_linear(kind, segments, backend, dtype):
    torch.manual_seed(0)
    options = {"n": 5, "init": "uniform"} if "n" in kind_info(kind).options else {"init": "uniform"}
    if segments > 1:
        options["segments"] = segments
    if backend != "auto":
        options["backend"] = backend
    if kind == "polynomial_nd":
        options.update(dims=2, n=3)
    features = 32 if kind != "polynomial_nd" else 8
    layer = hol.layers.fc(kind, features, 16, **options).to(dtype)
    exact = hol.layers.fc(kind, features, 16, **options).double()
    exact.load_state_dict(layer.state_dict())
    shape = (256, features, 2) if kind == "polynomial_nd" else (256, features)
    x = (2 * torch.rand(shape) - 1).to(dtype)
    output, gradient = _errors(layer, exact, x)
    linear_output, linear_gradient = _torch_errors(lambda: nn.Linear(x[0].numel(), 16), dtype,
                                                   x.reshape(256, -1))
    assert output < FACTOR * linear_output, (output, linear_output)
    assert gradient < FACTOR * linear_gradient, (gradient, linear_gradient)


@pytest.mark.parametrize("dtype", HALF, ids=str)
@pytest.mark.parametrize("transpose", [False, True], ids=["conv", "transposed"])
@pytest.mark.parametrize("kind", ["continuous", "discontinuous", "fourier"])
def test_convolution_half_precision_within_a_factor_of_torch_conv(kind, transpose, dtype):
    torch.manual_seed(0)
    options = {"n": 5, "init": "uniform", "transpose": transpose}
    if kind != "fourier":
        options["segments"] = 16
    layer = hol.layers.conv(kind, 4, 8, 3, dim=2, **options).to(dtype)
    exact = hol.layers.conv(kind, 4, 8, 3, dim=2, **options).double()
    exact.load_state_dict(layer.state_dict())
    x = (2 * torch.rand(8, 4, 10, 10) - 1).to(dtype)
    output, gradient = _errors(layer, exact, x)
    torch_conv = nn.ConvTranspose2d if transpose else nn.Conv2d
    linear_output, linear_gradient = _torch_errors(lambda: torch_conv(4, 8, 3), dtype, x)
    assert output < FACTOR * linear_output, (output, linear_output)
    assert gradient < FACTOR * linear_gradient, (gradient, linear_gradient)


@pytest.mark.parametrize("dtype", HALF, ids=str)
def test_inputs_next_to_a_break_take_their_own_segment(dtype):
    """Inputs one half-precision step either side of each break of a discontinuous link get the values and
    slopes of their own side, as in float64 (in the half type, ``(x + 1) S / 2`` rounds across breaks)."""
    layer = hol.layers.fc("discontinuous", 1, 1, n=3, segments=16, init="uniform").to(dtype)
    exact = hol.layers.fc("discontinuous", 1, 1, n=3, segments=16).double()
    exact.load_state_dict(layer.state_dict())
    breaks = torch.linspace(-1, 1, 17)[1:-1].to(dtype)
    step = torch.finfo(dtype).eps * breaks.abs().clamp(min=0.5)
    x = torch.cat([breaks - step, breaks + step]).to(dtype).unsqueeze(-1)
    x_half, x_exact = x.clone().requires_grad_(True), x.double().requires_grad_(True)
    y, y_exact = layer(x_half), exact(x_exact)
    y.sum().backward()
    y_exact.sum().backward()
    scale = y_exact.abs().max()
    assert (y.double() - y_exact).abs().max() < 4 * torch.finfo(dtype).eps * scale
    slope_scale = x_exact.grad.abs().max()
    assert (x_half.grad.double() - x_exact.grad).abs().max() < 4 * torch.finfo(dtype).eps * slope_scale


def test_half_precision_layer_keeps_float32_constants_and_returns_to_float64_exactly():
    layer = hol.layers.fc("continuous", 3, 2, n=6, segments=4).to(torch.bfloat16)
    assert layer.basis.transform.dtype == torch.float32
    assert layer(torch.zeros(5, 3, dtype=torch.bfloat16)).dtype == torch.bfloat16
    layer.double()
    assert layer.basis.transform.dtype == torch.float64
    assert torch.equal(layer.basis.transform, hol.ops.lagrange.lagrange_transform(6))


def _far_outside_cases():
    for kind in hol.layers.kinds():
        info = kind_info(kind)
        if info.basis not in ("continuous", "discontinuous", "polynomial") or kind == "polynomial_nd":
            continue
        for backend in (("dense", "sparse", "fused") if info.sparse_capable else ("auto",)):
            yield kind, backend


@pytest.mark.parametrize(("kind", "backend"), list(_far_outside_cases()))
def test_float16_layers_take_inputs_whose_basis_values_pass_float16_range(kind, backend):
    """Inputs at 20 domain half-widths: degree-4 basis values reach 3e5-5e6, past float16's 65504, while the
    links (weights scaled down; products of four links for product units) stay within float16's range; the
    float16 layer gives the float64 value of its weights there."""
    torch.manual_seed(0)
    options = {"n": 5, "init": "uniform"}
    if "segments" in kind_info(kind).options:
        options["segments"] = 2
    if backend != "auto":
        options["backend"] = backend
    layer = hol.layers.fc(kind, 4, 3, **options).half()
    with torch.no_grad():
        layer.weight.mul_(1e-6 if kind_info(kind).product else 1e-3)
    exact = hol.layers.fc(kind, 4, 3, **options).double()
    exact.load_state_dict(layer.state_dict())
    x = torch.tensor([[20.0, -20.0, 19.5, 0.5]], dtype=torch.float16)
    assert exact.expand(x.double()).abs().max() > 65504
    x_half, x_exact = x.clone().requires_grad_(True), x.double().requires_grad_(True)
    y, y_exact = layer(x_half), exact(x_exact)
    assert y_exact.abs().max() < 65504
    y.sum().backward()
    y_exact.sum().backward()
    assert y.dtype == torch.float16 and x_half.grad.dtype == torch.float16
    eps = torch.finfo(torch.float16).eps
    assert torch.allclose(y.double(), y_exact, rtol=4 * eps, atol=4 * eps * y_exact.abs().max().item())
    assert torch.allclose(x_half.grad.double(), x_exact.grad, rtol=8 * eps,
                          atol=8 * eps * x_exact.grad.abs().max().item())


@pytest.mark.parametrize("transpose", [False, True], ids=["conv", "transposed"])
def test_float16_convolutions_take_inputs_whose_basis_values_pass_float16_range(transpose):
    torch.manual_seed(0)
    layer = hol.layers.conv("continuous", 2, 3, 3, dim=2, n=5, segments=2, transpose=transpose).half()
    with torch.no_grad():
        layer.weight.mul_(1e-3)
    exact = hol.layers.conv("continuous", 2, 3, 3, dim=2, n=5, segments=2, transpose=transpose).double()
    exact.load_state_dict(layer.state_dict())
    x = (24 * torch.rand(2, 2, 5, 5) - 12).half()
    assert exact.expand(x.double()).abs().max() > 65504
    y, y_exact = layer(x), exact(x.double())
    assert y.dtype == torch.float16 and y_exact.abs().max() < 65504
    eps = torch.finfo(torch.float16).eps
    assert torch.allclose(y.double(), y_exact, rtol=4 * eps, atol=4 * eps * y_exact.abs().max().item())
