"""The fused Lagrange operator's Triton kernels (hol.ops.lagrange_linear_triton): under Triton's interpreter
on the CPU everywhere, compiled ahead of time for NVIDIA GPUs everywhere, on a CUDA GPU where there is one
(tests marked ``cuda``).

The interpreter run (tests/helpers/triton_lagrange_check.py, a subprocess because ``TRITON_INTERPRET`` must be
set before the kernels are defined) checks the kernels through the operators against the dense definition in
float64, with gradcheck and gradgradcheck, every extrapolation, repeated segments, degenerate shapes, float32
and determinism. The CUDA tests check fused layers on the GPU against the CPU, determinism, opcheck and
compile.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hol.layers import fc
from hol.ops import lagrange_linear as fused
from hol.ops.lagrange import EXTRAPOLATIONS
from tests.ops.test_lagrange_linear import operands
from tests.ops.test_segment_sparse_triton import compile_for

ROOT = Path(__file__).parents[2]
f64 = torch.float64


@pytest.mark.slow
def test_triton_kernels_under_the_interpreter():
    script = ROOT / "tests" / "helpers" / "triton_lagrange_check.py"
    env = {**os.environ, "TRITON_INTERPRET": "1", "HOL_LAGRANGE_CPP": "0", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300,
                         check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count(": ok") == 10, run.stdout


POINTERS = {torch.float32: "*fp32", torch.float64: "*fp64"}


@pytest.mark.parametrize("arch", [80, 90])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kernels_compile_for_nvidia_gpus_without_atomics(arch, dtype):
    """The four kernels compile for A100 (sm_80) and H100/H200 (sm_90) GPUs, PTX to cubin; no atomic
    instruction anywhere; float32's weight gradient without TF32."""
    from triton.backends.compiler import GPUTarget

    from hol.ops import lagrange_linear_triton as kernels

    target, ptr, acc = GPUTarget("cuda", arch, 32), POINTERS[dtype], kernels.ACCUMULATION[dtype]
    n, padded = 5, 8
    operands_ = dict.fromkeys(("x_ptr", "scale_ptr", "shift_ptr", "c_ptr"), ptr)
    sizes = ("B", "I", "O", "K", "S", "STRIDE")
    linear, mirror = fused.EXTRAPOLATION_CODES["linear"], fused.EXTRAPOLATION_CODES["mirror"]
    forward = compile_for(
        target, kernels._forward_kernel, {**operands_, "wt_ptr": ptr, "y_ptr": ptr}, sizes,
        {"N": n, "NP": padded, "MODE": linear, "ACC": acc, "BO": kernels.BLOCK_O,
         "BB": kernels._samples_per_program(kernels.SAMPLE_NODES, padded)})
    input_grad = compile_for(
        target, kernels._input_grad_kernel, {"grad_ptr": ptr, **operands_, "wt_ptr": ptr, "gx_ptr": ptr},
        sizes,
        {"N": n, "NP": padded, "MODE": mirror, "ACC": acc, "BO": kernels.BLOCK_O,
         "BB": kernels._samples_per_program(kernels.SAMPLE_NODES_GRAD, padded)})
    segments = compile_for(
        target, kernels._segments_kernel,
        {"x_ptr": ptr, "scale_ptr": ptr, "shift_ptr": ptr, "seg_ptr": "*i64"}, ("TOTAL", "I", "S"),
        {"MODE": mirror, "BLOCK": kernels.BLOCK_SEGMENTS, "ACC": acc})
    indices = dict.fromkeys(("seg_ptr", "order_ptr", "ranges_ptr"), "*i64")
    weight_grad = compile_for(
        target, kernels._weight_grad_kernel, {"grad_ptr": ptr, **operands_, **indices, "gw_ptr": ptr},
        (*sizes, "TILES_M", "GW_O", "GW_I", "GW_K"),
        {"N": n, "MODE": linear, "BB": kernels.BLOCK_B[dtype], "BM": kernels.BLOCK_M, "BO": kernels.BLOCK_O,
         "ACC": acc, "DOT": dtype == torch.float32})
    for compiled in (forward, input_grad, segments, weight_grad):
        assert compiled.asm["cubin"] and not re.search(r"\b(atom|red)\.", compiled.asm["ptx"])  # atomics
    assert "tf32" not in weight_grad.asm["ptx"]


# --- on a CUDA GPU ------------------------------------------------------------------------------------------

def layers(extrapolation: str, continuous: bool, dtype=f64, n: int = 4, segments: int = 3, inputs: int = 3,
           outputs: int = 5):
    """A fused layer with per-input domains on the CPU and its copy on CUDA."""
    torch.manual_seed(0)
    kind = "continuous" if continuous else "discontinuous"
    layer = fc(kind, inputs, outputs, n=n, segments=segments, extrapolation=extrapolation, backend="fused",
               bias=True, dtype=dtype)
    with torch.no_grad():
        layer.domain_centre.uniform_(-0.2, 0.2)
        layer.domain_width.uniform_(1.6, 2.4)
        layer.bias.uniform_(-1, 1)
    cuda = fc(kind, inputs, outputs, n=n, segments=segments, extrapolation=extrapolation, backend="fused",
              bias=True, dtype=dtype, device="cuda")
    cuda.load_state_dict(layer.state_dict())
    return layer, cuda


def values_and_grads(layer, x, grad_y):
    x = x.detach().requires_grad_()
    y = layer(x)
    return (y, *torch.autograd.grad(y, (x, layer.weight), grad_y))


@pytest.mark.cuda
@pytest.mark.parametrize("continuous", [True, False], ids=["continuous", "discontinuous"])
@pytest.mark.parametrize("extrapolation", EXTRAPOLATIONS)
def test_cuda_fused_layers_equal_the_cpu(extrapolation, continuous):
    """float64: the output and both gradients on CUDA (Triton) equal the CPU's, inputs inside and outside the
    per-input domains, shapes across the kernels' tiles; the CUDA operator is the Triton kernel."""
    kernels = fused._triton()
    assert kernels is not None, "Triton is not importable on this CUDA machine"
    for batch, inputs, outputs, n, segments in ((7, 3, 5, 4, 3), (300, 6, 70, 5, 8), (1, 2, 1, 2, 1)):
        layer, cuda = layers(extrapolation, continuous, n=n, segments=segments, inputs=inputs,
                             outputs=outputs)
        x = torch.rand(batch, inputs, dtype=f64) * 3.6 - 1.8
        grad_y = torch.randn(batch, outputs, dtype=f64)
        expected = values_and_grads(layer, x, grad_y)
        got = values_and_grads(cuda, x.cuda(), grad_y.cuda())
        for name, g, e in zip(("y", "d x", "d weight"), got, expected, strict=True):
            assert g.is_cuda
            torch.testing.assert_close(g.cpu(), e, rtol=1e-10, atol=1e-10, msg=name)
    operands_ = [t.cuda() for t in operands(40, 3, 6, 4, 3, continuous)]
    geometry = (3, continuous, extrapolation)
    y = torch.ops.hol.lagrange_linear(*operands_, *geometry)
    assert torch.equal(y, kernels.forward(*operands_, *geometry))


@pytest.mark.cuda
def test_cuda_float32_and_empty_batches():
    """float32 on CUDA within a float32 bound of the float64 layer; an empty batch gives an empty output and
    zero gradients."""
    layer, cuda = layers("linear", True, dtype=torch.float32, n=5, segments=8, inputs=16, outputs=40)
    x = torch.rand(512, 16) * 2.4 - 1.2
    expected = layer.double()(x.double())
    y = cuda(x.cuda())
    assert y.dtype == torch.float32
    assert (y.cpu().double() - expected).abs().max() <= 1e-5 * expected.abs().max()
    empty = torch.zeros(0, 16, device="cuda", requires_grad=True)
    y = cuda(empty)
    y.sum().backward()
    assert y.shape == (0, 40) and empty.grad.shape == (0, 16) and not cuda.weight.grad.any()


@pytest.mark.cuda
def test_cuda_weight_gradient_sums_every_sample_deterministically():
    """Thousands of samples in two neighbouring segments that share a node: every one adds to the weight
    gradient, bitwise the same on every run, with torch's deterministic mode on."""
    x, scale, shift, weight, transform = operands(4096, 8, 64, 5, 8, True)
    centres = torch.where(torch.arange(4096)[:, None] % 2 == 0, 3.5, 4.5)  # segments 3 and 4 share u = 4
    u = centres + torch.rand(4096, 8, dtype=f64) * 0.8 - 0.4
    x = (u - shift) / scale
    grad_y = torch.randn(4096, 64, dtype=f64)
    cpu = [t.float() for t in (grad_y, x, scale, shift, weight, transform)]
    cuda = [t.cuda() for t in cpu]
    torch.use_deterministic_algorithms(True)
    try:
        runs = [torch.ops.hol.lagrange_linear_backward(*cuda, 8, True, "polynomial", True, True)
                for _ in range(3)]
    finally:
        torch.use_deterministic_algorithms(False)
    assert all(torch.equal(a, b) for run in runs[1:] for a, b in zip(runs[0], run, strict=True))
    exact = fused._reference_gradients(grad_y, x, scale, shift, weight, transform, 8, True, "polynomial",
                                       True, True)
    for got, want in zip(runs[0], exact, strict=True):
        assert torch.allclose(got.cpu().double(), want, rtol=1e-4, atol=1e-4 * want.abs().max().item())


@pytest.mark.cuda
def test_cuda_opcheck_derivatives_and_compile():
    """torch's consistency checks of both operators with their CUDA kernels; gradcheck and gradgradcheck on
    CUDA; torch.compile(fullgraph=True) of a fused layer."""
    x, scale, shift, weight, transform = (t.cuda() for t in operands(6, 3, 4, 4, 3, False))
    for extrapolation in EXTRAPOLATIONS:
        torch.library.opcheck(torch.ops.hol.lagrange_linear.default,
                              (x.clone().requires_grad_(), scale, shift, weight.clone().requires_grad_(),
                               transform, 3, False, extrapolation))
    torch.library.opcheck(torch.ops.hol.lagrange_linear_backward.default,
                          (torch.randn(6, 4, dtype=f64, device="cuda"), x, scale, shift, weight, transform, 3,
                           False, "mirror", True, True))

    def function(v, w):
        return fused.lagrange_linear(v, scale, shift, w, transform, segments=3, continuous=False,
                                     extrapolation="linear")

    arguments = (x.clone().requires_grad_(), weight.clone().requires_grad_())
    assert torch.autograd.gradcheck(function, arguments)
    assert torch.autograd.gradgradcheck(function, arguments)
    cuda = layers("clamp", True, dtype=torch.float32)[1]
    v = torch.rand(64, 3, device="cuda") * 2 - 1
    torch.testing.assert_close(torch.compile(cuda, fullgraph=True)(v), cuda(v), rtol=1e-6, atol=1e-6)
