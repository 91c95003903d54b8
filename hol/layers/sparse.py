"""Segment-sparse compute path for piecewise Lagrange layers (``continuous``, ``discontinuous``).

The dense path (:mod:`hol.layers.fc`) expands every input into all ``K`` basis values of its link and runs one
GEMM, so its cost grows with ``K = (n-1) S + 1``. But an input ``x_bi`` in segment ``s_bi`` touches only the
``n`` values of that segment, starting at ``base_bi = s_bi (n-1)`` (continuous) or ``s_bi n`` (discontinuous):

    y[b, o] = sum_i sum_k phi_k(t_bi) W[o, i, base_bi + k]

which costs ``B I n O`` multiply-adds whatever ``S`` is, as many as ``nn.Linear(I*n, O)``. The backward is
written out (:class:`SegmentSparseProduct`):

* weights, the transposed sparse product: ``dW[o, i, base_bi + k] += phi_k(t_bi) dy[b, o]``, summed over every
  sample that lands in the same segment (repeated indices accumulate; nothing is dropped);
* basis values, a sampled dense-dense product: ``dphi[b, i, k] = sum_o dy[b, o] W[o, i, base_bi + k]``;
* inputs, ``dx = sum_k dphi[b, i, k] phi_k'(t_bi) dt/dx`` with ``dt/dx = 2 S / L``
  (:class:`LagrangeBasisValues`, which also carries the extrapolation rules: ``linear`` uses the tangent's slope
  ``phi'(clamp(t, -1, 1))``; ``clamp`` and ``mirror`` act on ``x`` before, so their derivative, zero outside
  the domain for ``clamp`` and +-1 for ``mirror``, comes from autograd of the fold).

Saved activations: ``phi``, ``phi'`` (``[B, I, n]``) and the segment offsets (``[B, I]``): ``O(B I n)``; the
output is ``O(B O)``. Only first derivatives are supported (the backward is not itself differentiable); use
``backend="dense"`` for higher derivatives.

Two implementations of the product, chosen per call:

* a C++ kernel (``csrc/segment_sparse.cpp``, built with ``torch.utils.cpp_extension.load`` at first use and
  cached under ``$TORCH_EXTENSIONS_DIR`` or ``~/.cache/torch_extensions``) for CPU float32/float64: it packs
  blocks of ``W`` into cache-sized panels ``[inputs, K, 128 outputs]`` so each (sample, input, node) costs one
  AXPY / dot product of 128 outputs in registers; weight gradients of 8 MiB and more are written into memory
  recycled from freed gradients of the same size (at most 512 MiB kept idle per process), since zeroing fresh
  pages at every step would cost as much as the gradient's writes;
* torch's sparse ops (CSR ``torch.sparse.mm`` forward, ``torch.sparse.sampled_addmm`` for ``d phi``, a COO
  transpose for ``d W``) for every device and dtype and wherever the extension cannot be built.

:func:`choose_backend` is the cost model behind ``backend="auto"`` of :func:`hol.layers.fc`.
"""
from __future__ import annotations

import functools
import hashlib
import logging
import os
import platform
import warnings
from pathlib import Path

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from ..checks import check_choice
from .bases import (
    chebyshev_derivatives,
    chebyshev_polynomials,
    fold_into_domain,
    piecewise_width,
    segment_coordinates,
)

BACKENDS = ("auto", "dense", "sparse")
IMPLEMENTATIONS = ("auto", "torch", "cpp")

_SOURCE = Path(__file__).parent / "csrc" / "segment_sparse.cpp"


@functools.cache
def extension():
    """The compiled C++ kernels, or ``None`` (with a warning) when they cannot be built here.

    The build is cached by torch (first build ~30-60 s); the module name carries a hash of the source, the
    torch version and this CPU's instruction-set flags, since the code is compiled with ``-march=native``.
    The environment variable ``HOL_SPARSE_CPP=0`` disables the kernels (see :func:`extension_available`).
    """
    cpp_extension = _import_cpp_extension()
    source = _SOURCE.read_bytes()
    key = hashlib.sha256(source + torch.__version__.encode() + _cpu_flags().encode()).hexdigest()[:12]
    try:
        return cpp_extension.load(name=f"hol_segment_sparse_{key}", sources=[str(_SOURCE)],
                                  extra_cflags=["-O3", "-march=native", "-fopenmp"],
                                  extra_ldflags=["-fopenmp"], verbose=False)
    except Exception as error:
        warnings.warn(f"hol: segment-sparse C++ kernels unavailable ({type(error).__name__}: {error}); "
                      "using the torch implementation", RuntimeWarning, stacklevel=2)
        return None


def _import_cpp_extension():
    """``torch.utils.cpp_extension``, imported without the warning it logs at import on machines with a CUDA
    toolkit but no GPU ("No CUDA runtime is found"): the kernels here are CPU code, the warning only confuses."""
    logger = logging.getLogger("torch.utils.cpp_extension")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        from torch.utils import cpp_extension
    finally:
        logger.setLevel(level)
    return cpp_extension


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return line
    except OSError:
        pass
    return platform.processor() or platform.machine()


def extension_available() -> bool:
    """Whether the C++ kernels serve CPU calls: not when ``HOL_SPARSE_CPP=0``, else whether they build (the
    first call builds them)."""
    return os.environ.get("HOL_SPARSE_CPP", "1") != "0" and extension() is not None


def _use_cpp(impl: str, x: Tensor) -> bool:
    check_choice("impl", impl, IMPLEMENTATIONS)
    fits = x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)
    if impl == "cpp":
        if not fits:
            raise ValueError(f"impl 'cpp' needs CPU float32/float64 tensors, got {x.device} {x.dtype}")
        if not extension_available():
            raise RuntimeError("impl 'cpp': the segment-sparse C++ kernels could not be built here")
        return True
    return impl == "auto" and fits and extension_available()


# --------------------------------------------------------------------------------------------------- basis


class LagrangeBasisValues(torch.autograd.Function):
    """``phi_k(t)`` with ``d phi / dt`` saved for the backward (``linear=True``: tangent line outside [-1, 1]).

    ``phi(t) = T(t) C`` and ``phi'(t) = T'(t) C`` (Chebyshev recurrences, ``C = transform``); with ``linear``,
    ``phi(t) = phi(t_c) + (t - t_c) phi'(t_c)``, ``t_c = clamp(t, -1, 1)``, whose derivative is ``phi'(t_c)``
    everywhere. ``use_cpp``: one fused C++ loop instead of torch ops. Shape: ``(...) -> (..., n)``.
    """

    @staticmethod
    def forward(ctx, t: Tensor, transform: Tensor, linear: bool, use_cpp: bool) -> Tensor:
        if use_cpp:
            phi, slope = extension().basis(t, transform, linear)
            ctx.save_for_backward(slope)
            return phi
        n = transform.shape[0]
        t_c = t.clamp(-1.0, 1.0) if linear else t
        phi = chebyshev_polynomials(t_c, n) @ transform
        slope = chebyshev_derivatives(t_c, n) @ transform
        if linear:
            phi = phi + (t - t_c).unsqueeze(-1) * slope
        ctx.save_for_backward(slope)
        return phi

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_phi: Tensor):
        (slope,) = ctx.saved_tensors
        return (grad_phi * slope).sum(-1), None, None, None


def segment_basis(x: Tensor, transform: Tensor, segments: int, length: float, continuous: bool,
                  extrapolation: str, use_cpp: bool = False) -> tuple[Tensor, Tensor]:
    """The ``n`` active basis values of every input and the offset of its segment in the link's ``K`` values.

    Same geometry and extrapolation as :func:`hol.layers.bases.piecewise_expand`: ``phi[..., k]`` is the entry
    ``base + k`` of the dense expansion, all other entries being zero.

    Shape: ``(...) -> phi (..., n), base (...)`` (int64).
    """
    n = transform.shape[0]
    x = fold_into_domain(x, length, extrapolation)
    s, t = segment_coordinates(x, segments, length)
    phi = LagrangeBasisValues.apply(t, transform, extrapolation == "linear", use_cpp)
    s = s.clamp(0, segments - 1)  # a NaN input gives an arbitrary integer: keep the offset valid, phi is NaN
    return phi, s * (n - 1 if continuous else n)


# ------------------------------------------------------------------------------------------------- product


def _expansion_matrix(phi: Tensor, base: Tensor, width: int) -> tuple[Tensor, Tensor]:
    """The dense expansion ``[B, I K]`` as a sparse CSR matrix ``A[b, i K + base[b, i] + k] = phi[b, i, k]``,
    and its column indices ``[B, I n]``. Columns ascend within each row, so the values keep the order of ``phi``."""
    batch, inputs, n = phi.shape
    starts = base + torch.arange(inputs, device=base.device) * width  # [B, I]
    columns = (starts.unsqueeze(-1) + torch.arange(n, device=base.device)).flatten(1)  # [B, I n]
    crow = torch.arange(0, batch * inputs * n + 1, inputs * n, device=base.device)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta")
        matrix = torch.sparse_csr_tensor(crow, columns.flatten(), phi.flatten(), (batch, inputs * width),
                                         check_invariants=False)
    return matrix, columns


def _weight_rows(weight: Tensor) -> Tensor:
    """``W[o, i, m]`` as ``[I K, O]`` rows (a copy)."""
    return weight.permute(1, 2, 0).reshape(-1, weight.shape[0])


def product_torch(phi: Tensor, base: Tensor, weight: Tensor) -> Tensor:
    """``y[b, o] = sum_{i,k} phi[b, i, k] W[o, i, base[b, i] + k]`` as ``A @ W`` with torch's sparse ops.

    Shapes: ``phi [B, I, n]``, ``base [B, I]``, ``weight [O, I, K]`` -> ``[B, O]``.
    """
    matrix, _ = _expansion_matrix(phi, base, weight.shape[2])
    return torch.sparse.mm(matrix, _weight_rows(weight))


def product_torch_backward(grad_y: Tensor, phi: Tensor, base: Tensor, weight: Tensor, phi_grad: bool = True,
                           weight_grad: bool = True) -> tuple[Tensor | None, Tensor | None]:
    """Gradients ``(d phi, d weight)`` of :func:`product_torch`, each only if asked for (else ``None``).

    ``d phi = (dy W^T)`` sampled at the nonzeros of ``A`` (``torch.sparse.sampled_addmm``);
    ``d weight = A^T dy`` with ``A^T`` as a COO matrix, coalesced by ``torch.sparse.mm`` (repeated rows summed).
    """
    batch, inputs, _ = phi.shape
    n_out, _, width = weight.shape
    matrix, columns = _expansion_matrix(phi, base, width)
    grad_phi = grad_weight = None
    if phi_grad:
        rows = _weight_rows(weight)
        grad_phi = torch.sparse.sampled_addmm(matrix, grad_y, rows.T, beta=0.0).values().reshape(phi.shape)
    if weight_grad:
        samples = torch.arange(batch, device=phi.device).unsqueeze(-1).expand_as(columns)
        transposed = torch.sparse_coo_tensor(torch.stack((columns.flatten(), samples.flatten())), phi.flatten(),
                                             (inputs * width, batch), check_invariants=False)
        grad_weight = torch.sparse.mm(transposed, grad_y).reshape(inputs, width, n_out).permute(2, 0, 1)
        grad_weight = grad_weight.contiguous()
    return grad_phi, grad_weight


class SegmentSparseProduct(torch.autograd.Function):
    """``y[b, o] = sum_{i,k} phi[b, i, k] W[o, i, base[b, i] + k]`` with its own backward (module docstring).

    ``use_cpp`` selects the C++ kernels (CPU float32/float64) or the torch implementation.
    """

    @staticmethod
    def forward(ctx, phi: Tensor, base: Tensor, weight: Tensor, use_cpp: bool) -> Tensor:
        phi, base, weight = phi.contiguous(), base.contiguous(), weight.contiguous()
        ctx.use_cpp = use_cpp
        ctx.save_for_backward(phi, base, weight)
        return extension().forward(phi, base, weight) if use_cpp else product_torch(phi, base, weight)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y: Tensor):
        phi, base, weight = ctx.saved_tensors
        grad_y = grad_y.contiguous()
        phi_grad, _, weight_grad, _ = ctx.needs_input_grad  # an input layer needs no d phi, a frozen one no d W
        backward = extension().backward if ctx.use_cpp else product_torch_backward
        grad_phi, grad_weight = backward(grad_y, phi, base, weight, phi_grad, weight_grad)
        return grad_phi, None, grad_weight, None


def segment_sparse_linear(x: Tensor, weight: Tensor, transform: Tensor, *, segments: int, length: float,
                          continuous: bool, extrapolation: str = "polynomial", bias: Tensor | None = None,
                          impl: str = "auto") -> Tensor:
    """``y[..., o] = sum_i f_oi(x[..., i]) (+ bias)`` for piecewise Lagrange links, by the segment-sparse path.

    Same result as the dense path of :class:`hol.layers.fc.HighOrderLinear` with the same weights.
    ``impl``: ``cpp`` (C++ kernels), ``torch`` (torch ops), ``auto`` (C++ for CPU float32/float64 tensors when
    the kernels build, else torch).

    Shapes: ``x [..., I]``, ``weight [O, I, K]``, ``transform [n, n]`` -> ``[..., O]``.
    """
    use_cpp = _use_cpp(impl, x)
    phi, base = segment_basis(x, transform, segments, length, continuous, extrapolation, use_cpp)
    leading = x.shape[:-1]
    phi = phi.reshape(-1, *phi.shape[-2:])
    y = SegmentSparseProduct.apply(phi, base.reshape(phi.shape[:2]), weight, use_cpp)
    y = y.reshape(*leading, weight.shape[0])
    return y if bias is None else y + bias


# ---------------------------------------------------------------------------------------------- cost model

SPARSE_COST = {"cpp": (3.6, 0.9), "torch": (0.0, 30.0), "cuda": (0.0, 8.0)}
"""Cost ``(a, b)`` of the sparse path per (sample, input, output) as ``a + b n`` multiply-adds of the dense GEMM,
by implementation. ``cpp``: fitted to fwd+bwd times of both paths (input gradient included) on a 2-core CPU at
n = 2, 3, 5, S = 2 to 8 and B x I x O from 64 x 100 x 10 to 1024 x 256 x 256, where the sparse/dense time ratio
ranged from 0.63 to 1.23; the fit picks the faster path in all 11 shapes measured, and in 10 of 11 for an input
layer, whose backward skips ``d phi`` (the miss costs 12%). ``a`` is the per-input work that does not scale with
n: segment lookup, basis, output tile traffic. ``torch``: from
``benchmarks/bench_sparse.py --impl torch`` (overtakes the dense path near S=40 at n=5). ``cuda``: an
unmeasured estimate."""
WEIGHT_PASSES = 4.0
"""Passes over the whole weight per fwd+bwd the sparse path makes beyond the dense one (packing, gradient)."""


def choose_backend(*, n: int, segments: int, batch: int, in_features: int, out_features: int,
                   device: torch.device | str = "cpu", continuous: bool = True, cpp: bool | None = None) -> str:
    """``"dense"`` or ``"sparse"``, whichever the cost model expects to be faster for fwd+bwd.

    Dense: expansion + GEMM, ``B I K O`` multiply-adds with ``K = (n-1) S + 1`` (``n S`` discontinuous).
    Sparse: ``B I O (a + b n)`` (:data:`SPARSE_COST`: C++ kernels on CPU, torch ops on CPU, torch ops on CUDA)
    plus ``c =`` :data:`WEIGHT_PASSES` passes over the ``I K O`` weights. Sparse is chosen when
    ``B I O (a + b n) + c I K O < B I K O``; with a large batch that is ``K > a + b n``.
    ``cpp``: whether the C++ kernels serve this call (default: CPU and the kernels build).
    """
    device = torch.device(device)
    width = piecewise_width(n, segments, continuous)
    links = in_features * out_features

    def sparse_wins(implementation: str) -> bool:
        fixed, per_node = SPARSE_COST[implementation]
        return batch * links * (fixed + per_node * n) + WEIGHT_PASSES * links * width < batch * links * width

    if device.type != "cpu":
        return "sparse" if sparse_wins("cuda") else "dense"
    if not sparse_wins("cpp"):  # decided without building the kernels
        return "dense"
    cpp = extension_available() if cpp is None else cpp
    return "sparse" if sparse_wins("cpp" if cpp else "torch") else "dense"
