"""The segment-sparse operators' Triton kernels (hol.ops.segment_sparse_triton): under Triton's interpreter on
the CPU everywhere, on a CUDA GPU where there is one (tests marked ``cuda``).

The interpreter run (tests/helpers/triton_sparse_check.py, a subprocess because ``TRITON_INTERPRET`` must be
set before the kernels are defined) checks the kernels through the operators against the dense definition in
float64, with gradcheck and gradgradcheck, repeated segments, degenerate shapes, the half types and float32,
determinism and bad offsets. The CUDA tests check the same on the GPU, plus compile, export, deterministic
mode, the cost model's calibration and every layer kind against the CPU.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import hol.layers
from hol.layers import fc
from hol.ops import cost as cost_model
from hol.ops import segment_sparse
from tests.ops.test_segment_sparse import close, dense_phi_grad, dense_product, dense_weight_grad, operands

ROOT = Path(__file__).parents[2]
f64 = torch.float64


@pytest.mark.slow
def test_triton_kernels_under_the_interpreter():
    script = ROOT / "tests" / "helpers" / "triton_sparse_check.py"
    env = {**os.environ, "TRITON_INTERPRET": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300,
                         check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count(": ok") == 7


POINTERS = {torch.float16: "*fp16", torch.bfloat16: "*bf16", torch.float32: "*fp32", torch.float64: "*fp64"}


def compile_for(target, kernel, pointers: dict, scalars: tuple, constants: dict):
    """``kernel`` compiled ahead of time for ``target`` (no GPU needed: Triton's compiler down to PTX, and its
    bundled ptxas to a cubin)."""
    import triton

    types = {**pointers, **dict.fromkeys(scalars, "i32"), **dict.fromkeys(constants, "constexpr")}
    signature = {name: types[name] for name in kernel.arg_names}
    source = triton.compiler.ASTSource(fn=kernel, signature=signature, constexprs=constants)
    backend = triton.compiler.make_backend(target)
    return triton.compile(source, target=target, options=backend.parse_options({"num_warps": 4}).__dict__)


@pytest.mark.parametrize("arch", [80, 90])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_kernels_compile_for_nvidia_gpus_without_atomics(arch, dtype):
    """The three kernels compile for A100 (sm_80) and H100/H200 (sm_90) GPUs, PTX to cubin; no atomic
    instruction anywhere; the weight gradient of the half types runs on tensor cores."""
    from triton.backends.compiler import GPUTarget

    from hol.ops import segment_sparse_triton as kernels

    target, ptr, acc, n = GPUTarget("cuda", arch, 32), POINTERS[dtype], kernels.ACCUMULATION[dtype], 5
    sizes = ("B", "I", "O", "K")
    product = compile_for(target, kernels._product_kernel,
                          {"phi_ptr": ptr, "base_ptr": "*i64", "wt_ptr": ptr, "y_ptr": ptr}, sizes,
                          {"N": n, "BB": kernels.BLOCK_B, "BO": kernels.BLOCK_O, "ACC": acc})
    phi_grad = compile_for(target, kernels._phi_grad_kernel,
                           {"grad_ptr": ptr, "wt_ptr": ptr, "base_ptr": "*i64", "out_ptr": ptr}, sizes,
                           {"N": n, "NP": 8, "BB": kernels.BLOCK_B_PHI, "BO": kernels.BLOCK_O, "ACC": acc})
    indices = dict.fromkeys(("order_ptr", "sorted_base_ptr", "ranges_ptr"), "*i64")
    weight_grad = compile_for(
        target, kernels._weight_grad_kernel, {"phi_ptr": ptr, "grad_ptr": ptr, **indices, "out_ptr": ptr},
        (*sizes, "TILES_M"),
        {"N": n, "BB": kernels.BLOCK_B, "BM": kernels.BLOCK_M, "BO": kernels.BLOCK_O, "ACC": acc,
         "DOT": kernels.DOT_TYPES[dtype], "PRECISION": "ieee" if dtype == torch.float32 else None})
    for compiled in (product, phi_grad, weight_grad):
        assert compiled.asm["cubin"] and not re.search(r"\b(atom|red)\.", compiled.asm["ptx"])  # atomics
    assert ("mma" in weight_grad.asm["ptx"]) == (dtype in (torch.float16, torch.bfloat16))


def on_cuda(*tensors):
    return [t.cuda() for t in tensors]


@pytest.mark.cuda
@pytest.mark.parametrize("shape", [(5, 3, 3, 7, 4), (300, 4, 5, 41, 130), (0, 3, 2, 5, 4), (1, 3, 2, 5, 4),
                                   (6, 1, 3, 7, 4), (6, 3, 3, 7, 1), (6, 3, 4, 4, 2)],
                         ids=["small", "tiles", "empty", "batch1", "in1", "out1", "one_segment"])
def test_cuda_operators_run_triton_and_equal_the_dense_definition(shape):
    phi, base, weight, grad = operands(*shape)
    base[: shape[0] // 2, 0] = 0  # half the samples share input 0's first segment
    n, width = shape[2], shape[3]
    phi_c, base_c, weight_c, grad_c = on_cuda(phi, base, weight, grad)
    got = (segment_sparse.segment_sparse_product(phi_c, base_c, weight_c),
           segment_sparse.segment_sparse_weight_grad(phi_c, base_c, grad_c, width),
           segment_sparse.segment_sparse_phi_grad(grad_c, weight_c, base_c, n))
    expected = (dense_product(phi, base, weight), dense_weight_grad(phi, base, grad, width),
                dense_phi_grad(grad, weight, base, n))
    for g, e in zip(got, expected, strict=True):
        assert g.is_cuda
        close(g.cpu(), e)
    kernels = segment_sparse.triton_kernels()
    assert kernels is not segment_sparse.HOST_KERNELS, "Triton is not importable on this CUDA machine"
    if shape[0]:  # the operator's CUDA kernel is the Triton kernel
        assert torch.equal(got[1], kernels.weight_grad(phi_c, base_c, grad_c, width))


@pytest.mark.cuda
def test_cuda_opcheck():
    """torch's consistency checks of the operators with their CUDA kernels: schema, fake implementation,
    autograd registration, AOT dispatch."""
    phi, base, weight, grad = on_cuda(*operands(4, 2, 3, 7, 3))
    phi.requires_grad_()
    weight.requires_grad_()
    torch.library.opcheck(torch.ops.hol.segment_sparse_product, (phi, base, weight))
    torch.library.opcheck(torch.ops.hol.segment_sparse_weight_grad, (phi, base, grad.requires_grad_(), 7))
    torch.library.opcheck(torch.ops.hol.segment_sparse_phi_grad, (grad, weight, base, 3))


@pytest.mark.cuda
@pytest.mark.parametrize("entry", ["eager", "operator"])
def test_cuda_derivatives_of_every_order(entry):
    phi, base, weight, grad = (t.cuda().requires_grad_(t.is_floating_point())
                               for t in operands(3, 2, 2, 5, 2))
    base[:, 0] = 1
    ops = (segment_sparse.segment_sparse_product, segment_sparse.segment_sparse_weight_grad,
           segment_sparse.segment_sparse_phi_grad)
    if entry == "operator":
        ops = (torch.ops.hol.segment_sparse_product, torch.ops.hol.segment_sparse_weight_grad,
               torch.ops.hol.segment_sparse_phi_grad)
    product, weight_grad, phi_grad = ops
    for function, inputs in ((lambda p, w: product(p, base, w), (phi, weight)),
                             (lambda p, g: weight_grad(p, base, g, 5), (phi, grad)),
                             (lambda g, w: phi_grad(g, w, base, 2), (grad, weight))):
        assert torch.autograd.gradcheck(function, inputs)
        assert torch.autograd.gradgradcheck(function, inputs)


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_cuda_low_precision_accumulates_in_float32(dtype):
    phi, base, weight, grad = operands(8, 40, 3, 9, 5, dtype=dtype)
    phi_c, base_c, weight_c, grad_c = on_cuda(phi, base, weight, grad)
    for got, exact in ((segment_sparse.segment_sparse_product(phi_c, base_c, weight_c),
                        dense_product(phi.double(), base, weight.double())),
                       (segment_sparse.segment_sparse_weight_grad(phi_c, base_c, grad_c, 9),
                        dense_weight_grad(phi.double(), base, grad.double(), 9)),
                       (segment_sparse.segment_sparse_phi_grad(grad_c, weight_c, base_c, 3),
                        dense_phi_grad(grad.double(), weight.double(), base, 3))):
        assert got.dtype == dtype
        bound = 0.5 * torch.finfo(dtype).eps * exact.abs() + 1e-5 * exact.abs().max()
        assert ((got.cpu().double() - exact).abs() <= bound).all()


@pytest.mark.cuda
def test_cuda_weight_gradient_sums_every_sample_deterministically():
    """Thousands of samples in two segments: every one adds to the weight gradient, bitwise the same on every
    run, with torch's deterministic mode on."""
    phi, base, _, grad = operands(4096, 8, 5, 41, 64, dtype=torch.float32)
    base[:] = torch.where(torch.arange(4096)[:, None] % 2 == 0, 0, 36)
    phi_c, base_c, grad_c = on_cuda(phi, base, grad)
    torch.use_deterministic_algorithms(True)
    try:
        runs = [segment_sparse.segment_sparse_weight_grad(phi_c, base_c, grad_c, 41) for _ in range(3)]
    finally:
        torch.use_deterministic_algorithms(False)
    assert all(torch.equal(runs[0], run) for run in runs[1:])
    exact = dense_weight_grad(phi.double(), base, grad.double(), 41)
    assert torch.allclose(runs[0].cpu().double(), exact, rtol=1e-4, atol=1e-4 * exact.abs().max().item())


@pytest.mark.cuda
def test_cuda_sparse_layer_compiles_and_exports():
    dense = fc("continuous", 16, 8, n=4, segments=8, backend="dense", device="cuda")
    layer = fc("continuous", 16, 8, n=4, segments=8, backend="sparse", device="cuda")
    layer.load_state_dict(dense.state_dict())
    x = torch.rand(64, 16, device="cuda") * 2 - 1
    expected = dense(x)
    compiled = torch.compile(layer, fullgraph=True)
    torch.testing.assert_close(compiled(x), expected, rtol=1e-5, atol=1e-5)
    xg = x.clone().requires_grad_()
    (gx,) = torch.autograd.grad(compiled(xg).pow(2).sum(), xg)
    (ex,) = torch.autograd.grad(dense(xg).pow(2).sum(), xg)
    torch.testing.assert_close(gx, ex, rtol=1e-4, atol=1e-4)
    exported = torch.export.export(layer, (x,))
    torch.testing.assert_close(exported.module()(x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.cuda
def test_cuda_layers_of_every_kind_equal_the_cpu():
    """Every fully connected and conv kind, float64: forward and gradients on CUDA equal the CPU's."""
    torch.manual_seed(0)
    cases = []
    for kind in hol.layers.kinds():
        info = hol.layers.kind_info(kind)
        if info.baseline:  # torch's own layers
            continue
        options = {key: value for key, value in {"n": 3, "dims": 2, "segments": 3}.items()
                   if key in info.options}
        layer = fc(kind, 4, 3, dtype=f64, **options)
        shape = (7, 4, 2) if "dims" in options else (7, 4)
        cases.append((kind, layer, torch.rand(*shape, dtype=f64) * 2.4 - 1.2))
    for kind in hol.layers.conv_kinds():
        info = hol.layers.kind_info(kind)
        options = {key: value for key, value in {"n": 3, "segments": 2}.items() if key in info.options}
        layer = hol.layers.conv(kind, 2, 3, 3, padding=1, dtype=f64, **options)
        cases.append((f"conv {kind}", layer, torch.rand(2, 2, 6, 6, dtype=f64) * 2 - 1))
    for name, layer, x in cases:
        results = []
        for device in ("cpu", "cuda"):
            moved = layer.to(device)
            xd = x.to(device).requires_grad_()
            y = moved(xd)
            results.append([y, *torch.autograd.grad(y.pow(2).sum(), (xd, *moved.parameters()))])
        for cpu, cuda in zip(*results, strict=True):
            torch.testing.assert_close(cuda.cpu(), cpu, rtol=1e-10, atol=1e-10, msg=name)


@pytest.mark.cuda
def test_cuda_cost_model_calibrates_on_the_gpu(tmp_path, monkeypatch):
    """Without an override the GPU measures itself, under its own name; a graph traced before that takes the
    dense path."""
    monkeypatch.delenv("HOL_SPARSE_COST_CUDA", raising=False)
    monkeypatch.setenv("HOL_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(cost_model, "_measured", {})
    with monkeypatch.context() as tracing:
        tracing.setattr(torch.compiler, "is_compiling", lambda: True)
        assert cost_model.sparse_cost(torch.float32, "inputs", "cuda:0") is None
    cost = cost_model.calibrate(torch.float32, "inputs", device="cuda:0", batch=1024, small_batch=64,
                                 rounds=3)
    assert all(value >= 0 for value in cost)
    monkeypatch.setattr(cost_model, "calibrate", lambda dtype, step, device: cost)
    assert cost_model.sparse_cost(torch.float32, "inputs", "cuda:0") == cost
    assert torch.cuda.get_device_name(0) in cost_model.cache_path().read_text()
