"""Triton kernels of the segment-sparse products F, A, B: the CUDA implementation of the operators of
:mod:`hol.ops.segment_sparse` (whose docstring defines them).

With ``phi [B, I, n]``, ``base [B, I]``, ``weight [O, I, K]``, ``grad [B, O]``:

* F, ``y [B, O]``: one program per tile of ``BLOCK_B`` samples x ``BLOCK_O`` outputs, looping over the inputs
  and the ``n`` nodes: ``y[b, o] += phi[b, i, k] W[o, i, base[b, i] + k]``, the weight read transposed to
  ``[I, K, O]`` (one copy per call) so that every gathered row is a run of consecutive outputs;
* B, ``d phi [B, I, n]``: one program per tile of ``BLOCK_B_PHI`` samples and one input, looping over tiles of
  outputs: ``d phi[b, i, k] = sum_o grad[b, o] W[o, i, base[b, i] + k]`` (same transposed weight);
* A, ``d W [O, I, K]``: one program per (input, tile of ``BLOCK_M`` link values, tile of ``BLOCK_O`` outputs),
  owning ``d W[o tile, i, m tile]``. The samples of each input are sorted by segment offset (a stable
  ``torch.sort``), so the samples whose ``n`` values meet the program's link values form one contiguous range
  (``torch.searchsorted``, :func:`sample_ranges`); the program walks it in tiles of ``BLOCK_B`` samples and
  adds ``E^T grad`` with ``E[b, m] = phi[b, i, m - base[b, i]]`` (zero outside the sample's ``n`` values): a
  matrix product (``tl.dot``; float64: a broadcast sum) in which every sample of a shared segment adds its
  term, so repeated indices accumulate and none is dropped. Programs without samples write zeros.

Deterministic: no atomics; every output element is written by exactly one program, which sums its terms in a
fixed order (the stable sort makes the sample order unique), so results are bitwise reproducible, with or
without ``torch.use_deterministic_algorithms``.

Precision: float16 and bfloat16 operands are loaded as they are and accumulated in float32 (A's ``tl.dot``
multiplies them exactly and sums in float32), float32 in float32 (``tl.dot`` with ``input_precision="ieee"``,
no TF32), float64 in float64; the result is rounded once to the operands' dtype. Offsets outside
``[0, K - n]`` are refused with ``torch._assert_async`` (no wait for the device; the error surfaces at the
next synchronization).

With ``TRITON_INTERPRET=1`` set before this module is imported, the kernels run on CPU tensors (how the tests
check them on machines without a GPU). Two deviations of Triton's interpreter are worked around there: it
keeps bfloat16 as ``uint16`` (so ``tl.dot`` would multiply integers: bfloat16 enters A's dot as float32, the
same exact products) and truncates float32 to the half types instead of rounding (so the kernels write float32
and torch rounds). The tests also compile the kernels ahead of time for sm_80 and sm_90 GPUs (PTX and cubin,
with Triton's bundled ptxas; no atomic instruction in them). No GPU has run them yet: the block sizes are
untuned powers of two.
"""
from __future__ import annotations

import contextlib
import os

import torch
import triton
import triton.language as tl
from torch import Tensor

from .lagrange import HALF_TYPES

INTERPRETING = os.environ.get("TRITON_INTERPRET") == "1"
BLOCK_B = 32  # samples per program (F) or per step (A)
BLOCK_O = 32  # outputs per program (F, A) or per step (B)
BLOCK_M = 16  # link values per program (A); tl.dot needs at least 16
BLOCK_B_PHI = 16  # samples per program (B), whose accumulator is [BLOCK_B_PHI, nodes, BLOCK_O]
ACCUMULATION = {torch.float16: tl.float32, torch.bfloat16: tl.float32, torch.float32: tl.float32,
                torch.float64: tl.float64}
DOT_TYPES = {torch.float16: tl.float16, torch.bfloat16: tl.float32 if INTERPRETING else tl.bfloat16,
             torch.float32: tl.float32, torch.float64: None}
"""Operand type of A's ``tl.dot`` per dtype (``None``: a broadcast sum instead, for float64)."""


@triton.jit
def _product_kernel(phi_ptr, base_ptr, wt_ptr, y_ptr, B, I, O, K, N: tl.constexpr, BB: tl.constexpr,
                    BO: tl.constexpr, ACC: tl.constexpr):
    offs_b = tl.program_id(0).to(tl.int64) * BB + tl.arange(0, BB)
    offs_o = tl.program_id(1).to(tl.int64) * BO + tl.arange(0, BO)
    mask_b, mask_o = offs_b < B, offs_o < O
    mask = mask_b[:, None] & mask_o[None, :]
    acc = tl.zeros((BB, BO), dtype=ACC)
    for i in range(I):
        row = offs_b * I + i
        base = tl.load(base_ptr + row, mask=mask_b, other=0)
        w_rows = wt_ptr + (base + i * K)[:, None] * O + offs_o[None, :]  # W^T[i, base, o tile]
        for k in tl.static_range(N):
            p = tl.load(phi_ptr + row * N + k, mask=mask_b, other=0).to(ACC)
            acc += p[:, None] * tl.load(w_rows + k * O, mask=mask, other=0).to(ACC)
    tl.store(y_ptr + offs_b[:, None] * O + offs_o[None, :], acc.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _phi_grad_kernel(grad_ptr, wt_ptr, base_ptr, out_ptr, B, I, O, K, N: tl.constexpr, NP: tl.constexpr,
                     BB: tl.constexpr, BO: tl.constexpr, ACC: tl.constexpr):
    offs_b = tl.program_id(0).to(tl.int64) * BB + tl.arange(0, BB)
    i = tl.program_id(1).to(tl.int64)
    nodes = tl.arange(0, NP)  # padded to a power of two
    mask_b, mask_k = offs_b < B, nodes < N
    base = tl.load(base_ptr + offs_b * I + i, mask=mask_b, other=0)
    w_rows = wt_ptr + ((base + i * K)[:, None] + nodes[None, :]) * O  # [BB, NP]: W^T[i, base + k, 0]
    mask_bk = mask_b[:, None] & mask_k[None, :]
    links = gathered_links(grad_ptr, w_rows, offs_b, mask_b, mask_bk, O, BB, NP, BO, ACC)
    out = out_ptr + (offs_b * I + i)[:, None] * N + nodes[None, :]
    tl.store(out, links.to(out_ptr.dtype.element_ty), mask=mask_bk)


@triton.jit
def gathered_links(grad_ptr, w_rows, offs_b, mask_b, mask_bk, O, BB: tl.constexpr, NP: tl.constexpr,
                   BO: tl.constexpr, ACC: tl.constexpr):
    """``[BB, NP]``: ``sum_o grad[b, o] W^T[r_bk, o]`` for the gathered rows ``w_rows`` of the transposed
    weight (pointers to ``W^T[r_bk, 0]``; masked by ``mask_bk``), over tiles of ``BO`` outputs; also the
    input gradient's links in :mod:`hol.ops.lagrange_linear_triton`."""
    acc = tl.zeros((BB, NP, BO), dtype=ACC)
    for o0 in range(0, O, BO):
        offs_o = o0 + tl.arange(0, BO)
        mask_o = offs_o < O
        g = tl.load(grad_ptr + offs_b[:, None] * O + offs_o[None, :], mask=mask_b[:, None] & mask_o[None, :],
                    other=0).to(ACC)
        w = tl.load(w_rows[:, :, None] + offs_o[None, None, :],
                    mask=mask_bk[:, :, None] & mask_o[None, None, :], other=0).to(ACC)
        acc += g[:, None, :] * w
    return tl.sum(acc, axis=2)


@triton.jit
def _weight_grad_kernel(phi_ptr, grad_ptr, order_ptr, sorted_base_ptr, ranges_ptr, out_ptr, B, I, O, K,
                        TILES_M, N: tl.constexpr, BB: tl.constexpr, BM: tl.constexpr, BO: tl.constexpr,
                        ACC: tl.constexpr, DOT: tl.constexpr, PRECISION: tl.constexpr):
    i = tl.program_id(0).to(tl.int64)
    tile_m = tl.program_id(1)
    offs_m = tile_m.to(tl.int64) * BM + tl.arange(0, BM)
    offs_o = tl.program_id(2).to(tl.int64) * BO + tl.arange(0, BO)
    mask_o = offs_o < O
    # the samples (in sorted order) whose n values meet link values offs_m: slots [start, stop)
    start = tl.load(ranges_ptr + (i * TILES_M + tile_m) * 2)
    stop = tl.load(ranges_ptr + (i * TILES_M + tile_m) * 2 + 1)
    acc = tl.zeros((BM, BO), dtype=ACC)
    for j0 in range(start, stop, BB):
        slots = j0 + tl.arange(0, BB)
        mask_j = slots < stop
        rows = tl.load(order_ptr + i * B + slots, mask=mask_j, other=0)  # sample of each slot
        base = tl.load(sorted_base_ptr + i * B + slots, mask=mask_j, other=0)
        node = offs_m[None, :] - base[:, None]  # [BB, BM]: which of the sample's values link value m is
        inside = mask_j[:, None] & (node >= 0) & (node < N)
        e = tl.load(phi_ptr + (rows * I + i)[:, None] * N + node, mask=inside, other=0)  # E [BB, BM]
        g = tl.load(grad_ptr + rows[:, None] * O + offs_o[None, :], mask=mask_j[:, None] & mask_o[None, :],
                    other=0)
        if DOT is not None:
            acc = tl.dot(tl.trans(e.to(DOT)), g.to(DOT), acc, input_precision=PRECISION, out_dtype=ACC)
        else:  # float64
            acc += tl.sum(e.to(ACC)[:, :, None] * g.to(ACC)[:, None, :], axis=0)
    out = out_ptr + offs_o[None, :] * I * K + i * K + offs_m[:, None]  # dW[o, i, m], [BM, BO]
    tl.store(out, acc.to(out_ptr.dtype.element_ty), mask=(offs_m < K)[:, None] & mask_o[None, :])


def _assert_offsets(base: Tensor, n: int, width: int) -> None:
    """Refuse offsets outside ``[0, K - n]`` (they would read and write outside the tensors) without waiting
    for the device."""
    torch._assert_async(((base >= 0) & (base <= width - n)).all(),
                        f"base holds segment offsets outside [0, {width - n}] (K={width}, n={n})")


def transposed(weight: Tensor) -> Tensor:
    """``W [O, I, K]`` as a contiguous ``[I, K, O]`` (a copy)."""
    return weight.permute(1, 2, 0).contiguous()


def device_of(tensor: Tensor):
    """Make ``tensor``'s GPU the current one while a kernel is launched (Triton launches on the current
    device); nothing for CPU tensors (the interpreter)."""
    return torch.cuda.device(tensor.device) if tensor.is_cuda else contextlib.nullcontext()


def _output(like: Tensor, *shape: int) -> Tensor:
    """An uninitialized result for the kernels to write: in ``like``'s dtype, except float32 for the half
    types under the interpreter (module docstring; the caller rounds it with ``.to``)."""
    interpreted_half = INTERPRETING and like.dtype in HALF_TYPES
    return like.new_empty(shape, dtype=torch.float32 if interpreted_half else like.dtype)


def product(phi: Tensor, base: Tensor, weight: Tensor) -> Tensor:
    """F, ``[B, O]`` in the operands' dtype, for operands checked by the operator and non-empty."""
    phi, base = phi.contiguous(), base.contiguous()
    (batch, inputs, n), (outputs, _, width) = phi.shape, weight.shape
    _assert_offsets(base, n, width)
    y = _output(phi, batch, outputs)
    grid = (triton.cdiv(batch, BLOCK_B), triton.cdiv(outputs, BLOCK_O))
    with device_of(phi):
        _product_kernel[grid](phi, base, transposed(weight), y, batch, inputs, outputs, width,
                              N=n, BB=BLOCK_B, BO=BLOCK_O, ACC=ACCUMULATION[phi.dtype])
    return y.to(phi.dtype)


def phi_grad(grad: Tensor, weight: Tensor, base: Tensor, n: int) -> Tensor:
    """B, ``[B, I, n]`` in the operands' dtype, for operands checked by the operator and non-empty."""
    grad, base = grad.contiguous(), base.contiguous()
    (batch, inputs), (outputs, _, width) = base.shape, weight.shape
    _assert_offsets(base, n, width)
    out = _output(grad, batch, inputs, n)
    grid = (triton.cdiv(batch, BLOCK_B_PHI), inputs)
    with device_of(grad):
        _phi_grad_kernel[grid](grad, transposed(weight), base, out, batch, inputs, outputs, width,
                               N=n, NP=triton.next_power_of_2(n), BB=BLOCK_B_PHI, BO=BLOCK_O,
                               ACC=ACCUMULATION[grad.dtype])
    return out.to(grad.dtype)


def sample_ranges(base: Tensor, n: int, width: int, block: int = BLOCK_M) -> tuple[Tensor, Tensor, Tensor]:
    """The samples of every input sorted by segment offset, and the ones each tile of ``block`` link values
    needs.

    Shapes: ``base [B, I]`` -> ``order [I, B]`` (a stable ``argsort`` of ``base`` per input),
    ``sorted_base [I, B]``, ``ranges [I, tiles, 2]`` (int64, ``tiles = ceil(width / block)``): the slots
    ``[start, stop)`` of ``order`` holding the samples with ``base <= m < base + n`` for some link value ``m``
    of the tile, i.e. ``t block - n < base < (t + 1) block`` for tile ``t``.
    """
    sorted_base, order = torch.sort(base.t().contiguous(), dim=1, stable=True)
    first = torch.arange(triton.cdiv(width, block), device=base.device) * block  # each tile's first value
    inputs = sorted_base.shape[0]
    lowest = (first - n + 1).expand(inputs, -1).contiguous()
    highest = (first + block - 1).expand(inputs, -1).contiguous()
    start = torch.searchsorted(sorted_base, lowest)  # first slot with base >= lowest
    stop = torch.searchsorted(sorted_base, highest, right=True)  # first slot with base > highest
    return order, sorted_base, torch.stack((start, stop), dim=-1).contiguous()


def weight_grad(phi: Tensor, base: Tensor, grad: Tensor, width: int) -> Tensor:
    """A, ``[O, I, width]`` in the operands' dtype, for operands checked by the operator and non-empty."""
    phi, grad = phi.contiguous(), grad.contiguous()
    (batch, inputs, n), outputs = phi.shape, grad.shape[1]
    _assert_offsets(base, n, width)
    order, sorted_base, ranges = sample_ranges(base, n, width)
    out = _output(phi, outputs, inputs, width)
    tiles = ranges.shape[1]
    with device_of(phi):
        _weight_grad_kernel[(inputs, tiles, triton.cdiv(outputs, BLOCK_O))](
            phi, grad, order, sorted_base, ranges, out, batch, inputs, outputs, width, tiles,
            N=n, BB=BLOCK_B, BM=BLOCK_M, BO=BLOCK_O, ACC=ACCUMULATION[phi.dtype], DOT=DOT_TYPES[phi.dtype],
            PRECISION="ieee" if phi.dtype == torch.float32 else None)
    return out.to(phi.dtype)
