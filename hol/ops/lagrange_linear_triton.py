"""Triton kernels of the fused piecewise Lagrange operator: the CUDA implementation of
``hol::lagrange_linear`` and ``hol::lagrange_linear_backward`` (:mod:`hol.ops.lagrange_linear`, whose
docstring defines them), with the semantics of the C++ kernels (``csrc/lagrange_linear.cpp``).

For ``x [B, I]``, ``scale``, ``shift [I]``, ``weight [O, I, K]``, ``C = transform [n, n]`` and
``grad [B, O]``, every kernel evaluates the geometry and basis of its (sample, input) pairs itself, from ``x``
(nothing but the operands in memory), with three shared helpers: :func:`_fold` (``u = x scale + shift``,
``clamp``'s and ``mirror``'s fold and its slope ``fold'``), :func:`_segment` (``s = clamp(floor(u), 0, S-1)``,
NaN: 0) and :func:`_basis` (``t = 2 (u - s) - 1``, the Chebyshev recurrences, ``phi_k(t) = sum_j T_j(t)
C[j, k]`` and ``phi_k'(t)``, ``linear``'s tangent outside ``[-1, 1]``), the basis as 2-D register tensors
``[samples, columns]`` whose columns are any node index per sample (padded and foreign columns masked to 0).
The weight is read transposed to ``[I, K, O]`` (one copy per call), so every gathered row is a run of
consecutive outputs:

* forward, ``y [B, O]``: one program per tile of ``BB = 128 / NP`` samples x ``BLOCK_O`` outputs, looping
  over the inputs: ``acc[b, k, o] += phi_k(t_bi) W[o, i, s_bi stride + k]``, ``k`` over the ``n`` nodes padded
  to a power of two ``NP``, summed over ``k`` once at the end;
* input gradient, ``gx [B, I]``: one program per tile of ``BB = 64 / NP`` samples and one input, looping over
  tiles of outputs: ``links[b, k] = sum_o grad[b, o] W[o, i, s_bi stride + k]``, then
  ``gx = sum_k phi_k'(t) links[b, k] 2 scale fold'(u)``, exactly 0 where ``fold' = 0`` (``clamp`` outside
  ``[0, S]``, ``mirror`` where ``remainder(u, 2S) = S``) whatever ``phi'`` is, as in the C++ kernel;
* segments, ``s [B, I]`` (int64): one program per tile of (sample, input) pairs, the same helpers;
* weight gradient, ``gw [O, I, K]``: one program per (input, tile of ``BLOCK_M`` link values, tile of
  ``BLOCK_O`` outputs), owning ``gw[o tile, i, m tile]``. The samples of each input are sorted by their
  segment offset ``s stride`` (a stable ``torch.sort`` of the segments kernel's result), so the samples whose
  ``n`` values meet the program's link values form one contiguous range
  (:func:`hol.ops.segment_sparse_triton.sample_ranges`); the program walks it in tiles of ``BLOCK_B``
  samples, evaluates ``E[b, m] = phi_{m - s_b stride}(t_b)`` (zero outside the sample's ``n`` values) in
  registers with the segment the ranges were built from (so ranges and values always agree), and adds
  ``E^T grad``: a matrix product (``tl.dot``; float64: a broadcast sum) to which every sample adds its term,
  so both samples of neighbouring segments that share a node (``continuous``) add to it. Programs without
  samples write zeros.

Deterministic: no atomics; every output element is written by exactly one program, which sums its terms in a
fixed order (the stable sort makes the sample order unique), so results are bitwise reproducible, with or
without ``torch.use_deterministic_algorithms``.

Precision: float32 operands compute and accumulate in float32 (``tl.dot`` with ``input_precision="ieee"``, no
TF32), float64 in float64 (the operator's callers compute the half types in float32; other dtypes take the
torch formula). ``mirror``'s ``remainder(u, 2S)`` is exact, as ``torch.remainder``'s (``fmod``, then moved to
the divisor's sign): Triton's float ``%`` compiles to ``u - P trunc(u / P)`` on NVIDIA GPUs and its
interpreter has no ``libdevice.fmod``, so :func:`_remainder` corrects the truncated quotient by one where the
division (approximate in float32 on NVIDIA GPUs) crossed an integer: exact while ``|u| < 2^23`` in float32
(``2^52`` in float64), inputs millions of domain widths away.

With ``TRITON_INTERPRET=1`` set before this module is imported, the kernels run on CPU tensors (how the tests
check them on machines without a GPU: tests/helpers/triton_lagrange_check.py serves the CPU operators with
them). The tests also compile the kernels ahead of time for sm_80 and sm_90 GPUs (PTX and cubin, with Triton's
bundled ptxas; no atomic instruction in them; ptxas reported no register spill at ``n = 5`` for sm_90). No GPU
has run them yet: the block sizes are untuned powers of two.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from .lagrange_linear import EXTRAPOLATION_CODES
from .segment_sparse_triton import device_of, gathered_links, sample_ranges, transposed

BLOCK_O = 32  # outputs per program (forward, weight gradient) or per step (input gradient)
SAMPLE_NODES = 128  # samples x padded nodes per program of the forward: BB = 128 / NP
SAMPLE_NODES_GRAD = 64  # of the input gradient, whose [BB, NP, BLOCK_O] loads and sums take more registers
BLOCK_B = {torch.float32: 32, torch.float64: 16}
"""Samples per step of the weight gradient (float32: ``tl.dot``'s depth, at least 16; float64: a broadcast sum
``[BLOCK_B, BLOCK_M, BLOCK_O]``, without register spills at 16)."""
BLOCK_M = 16  # link values per program of the weight gradient; tl.dot needs at least 16
BLOCK_SEGMENTS = 256  # (sample, input) pairs per program of the segments kernel
ACCUMULATION = {torch.float32: tl.float32, torch.float64: tl.float64}
"""The Triton type each operand dtype computes in (the kernels take float32 and float64)."""


@triton.jit
def _remainder(u, period):
    """``torch.remainder(u, period)`` for a positive integer ``period``, exactly while ``|u| < 2^23``
    (float32; ``2^52``, float64): :func:`_remainder_from` the rounded quotient."""
    return _remainder_from(u, period, u / period)


@triton.jit
def _remainder_from(u, period, quotient):
    """``torch.remainder(u, period)`` from an estimate ``quotient`` of ``u / period`` within a few ulps (on
    NVIDIA GPUs the float32 division is approximate, ``div.full.f32``): ``fmod`` (the truncated quotient,
    corrected by one where the estimate crossed an integer, so that ``u - q period`` is exact), then moved to
    ``[0, period)`` by a rounded addition, as torch does."""
    q = tl.where(quotient < 0, tl.math.ceil(quotient), tl.floor(quotient))
    m = u - q * period  # exact: fmod, or fmod +- period where the estimate crossed an integer
    # u >= 0: q one too small gives fmod + period (>= period), one too large fmod - period (< 0: the last step
    # adds period); u < 0: q one too large gives fmod - period (<= -period), one too small fmod + period (> 0:
    # torch's result already)
    m = tl.where((u >= 0) & (m >= period), m - period, m)
    m = tl.where((u < 0) & (m <= -period), m + period, m)
    return tl.where(m < 0, m + period, m)


@triton.jit
def _fold(x, scale, shift, S, MODE: tl.constexpr):
    """``u = x scale + shift`` folded by the extrapolation (``MODE``, :data:`EXTRAPOLATION_CODES`) and
    ``fold'(u)`` at the unfolded ``u``: 1; ``clamp``: 1 on ``[0, S]``, else 0 (NaN: 0); ``mirror``: 1, -1, or
    0 where ``remainder(u, 2S) = S`` (NaN: NaN)."""
    u = x * scale + shift
    segments = tl.cast(S, u.dtype)
    slope = tl.zeros_like(u) + 1.0
    if MODE == 1:  # clamp
        slope = tl.where((u >= 0) & (u <= segments), 1.0, 0.0).to(u.dtype)
        u = tl.where(u < 0, 0.0, u)  # NaN stays NaN, as torch.clamp
        u = tl.where(u > segments, segments, u)
    elif MODE == 3:  # mirror
        r = _remainder(u, 2 * segments)
        slope = tl.where(r < segments, 1.0, tl.where(r > segments, -1.0, tl.where(r == segments, 0.0, r)))
        u = segments - tl.abs(r - segments)
    return u, slope


@triton.jit
def _segment(u, S):
    """``s = clamp(floor(u), 0, S - 1)`` (a float of ``u``'s type), 0 for a NaN ``u``."""
    last = tl.cast(S, u.dtype) - 1.0
    v = tl.where(u > 0, u, 0.0)  # NaN -> 0
    v = tl.where(v < last, v, last)
    return tl.floor(v)


@triton.jit
def _basis(u, s, c_ptr, cols, valid, N: tl.constexpr, MODE: tl.constexpr, PHI: tl.constexpr,
           DPHI: tl.constexpr):
    """``(phi, dphi)``, 2-D: ``phi[b, c] = phi_{cols[b, c]}(t_b)`` and ``dphi[b, c] = phi_{cols[b, c]}'(t_b)``
    (``d/dt``) where ``valid``, 0 elsewhere, for ``t = 2 (u - s) - 1``; ``u``, ``s`` ``[BB]``, ``cols`` and
    ``valid`` broadcast against ``[BB, 1]`` (``[1, NP]`` for every node of every sample). ``linear``
    (``MODE`` 2): outside ``[-1, 1]`` the tangent ``phi(t_c) + (t - t_c) phi'(t_c)``, and ``phi'(t_c)``,
    ``t_c = clamp(t, -1, 1)``. Chebyshev terms by their recurrences (``T_j' = j U_{j-1}``), as the C++
    kernels; ``PHI`` and ``DPHI`` say which of the two are wanted (the other is zeros)."""
    t = (u - s) * 2.0 - 1.0
    beyond = tl.zeros_like(t)
    if MODE == 2:  # linear
        clamped = tl.where(t < -1.0, -1.0, t)  # NaN stays NaN
        clamped = tl.where(clamped > 1.0, 1.0, clamped)
        beyond = t - clamped
        t = clamped
    twice = t + t
    one = tl.zeros_like(t) + 1.0
    term, term_next = one, t  # T_j, T_{j+1}: T_0 = 1 exactly, whatever t is (as the C++ kernels)
    second_prev, second = tl.zeros_like(t), one  # U_{j-1}, U_j
    zero = tl.zeros_like(t)[:, None] + tl.where(valid, 0.0, 0.0).to(t.dtype)  # [BB, columns]
    phi, dphi = zero, zero
    for j in range(N):
        c = tl.load(c_ptr + j * N + cols, mask=valid, other=0.0).to(t.dtype)  # C[j, cols]
        slope = second_prev * j  # T_j' = j U_{j-1}
        if PHI:
            value = term
            if MODE == 2:
                value = term + beyond * slope
            phi += value[:, None] * c
        if DPHI:
            dphi += slope[:, None] * c
        term, term_next = term_next, twice * term_next - term
        second_prev, second = second, twice * second - second_prev
    return tl.where(valid, phi, 0.0), tl.where(valid, dphi, 0.0)  # NaN t: NaN in its own values only


@triton.jit
def _forward_kernel(x_ptr, scale_ptr, shift_ptr, c_ptr, wt_ptr, y_ptr, B, I, O, K, S, STRIDE,
                    N: tl.constexpr, NP: tl.constexpr, MODE: tl.constexpr, BB: tl.constexpr, BO: tl.constexpr,
                    ACC: tl.constexpr):
    offs_b = tl.program_id(0).to(tl.int64) * BB + tl.arange(0, BB)
    offs_o = tl.program_id(1).to(tl.int64) * BO + tl.arange(0, BO)
    nodes = tl.arange(0, NP)  # padded to a power of two
    mask_b, mask_o, mask_k = offs_b < B, offs_o < O, nodes < N
    mask = mask_b[:, None, None] & mask_k[None, :, None] & mask_o[None, None, :]
    acc = tl.zeros((BB, NP, BO), dtype=ACC)
    for i in range(I):
        x = tl.load(x_ptr + offs_b * I + i, mask=mask_b, other=0).to(ACC)
        scale, shift = tl.load(scale_ptr + i).to(ACC), tl.load(shift_ptr + i).to(ACC)
        u, _ = _fold(x, scale, shift, S, MODE)
        s = _segment(u, S)
        phi, _ = _basis(u, s, c_ptr, nodes[None, :], mask_k[None, :], N, MODE, True, False)
        rows = tl.cast(i, tl.int64) * K + s.to(tl.int64) * STRIDE  # W^T[i, s stride, :]
        w = tl.load(wt_ptr + (rows[:, None] + nodes[None, :])[:, :, None] * O + offs_o[None, None, :],
                    mask=mask, other=0).to(ACC)
        acc += phi[:, :, None] * w
    y = tl.sum(acc, axis=1)
    tl.store(y_ptr + offs_b[:, None] * O + offs_o[None, :], y.to(y_ptr.dtype.element_ty),
             mask=mask_b[:, None] & mask_o[None, :])


@triton.jit
def _input_grad_kernel(grad_ptr, x_ptr, scale_ptr, shift_ptr, c_ptr, wt_ptr, gx_ptr, B, I, O, K, S, STRIDE,
                       N: tl.constexpr, NP: tl.constexpr, MODE: tl.constexpr, BB: tl.constexpr,
                       BO: tl.constexpr, ACC: tl.constexpr):
    offs_b = tl.program_id(0).to(tl.int64) * BB + tl.arange(0, BB)
    i = tl.program_id(1).to(tl.int64)
    nodes = tl.arange(0, NP)
    mask_b, mask_k = offs_b < B, nodes < N
    x = tl.load(x_ptr + offs_b * I + i, mask=mask_b, other=0).to(ACC)
    scale, shift = tl.load(scale_ptr + i).to(ACC), tl.load(shift_ptr + i).to(ACC)
    u, fold = _fold(x, scale, shift, S, MODE)
    s = _segment(u, S)
    _, dphi = _basis(u, s, c_ptr, nodes[None, :], mask_k[None, :], N, MODE, False, True)
    rows = i * K + s.to(tl.int64) * STRIDE  # W^T[i, s stride, :]
    w_rows = wt_ptr + (rows[:, None] + nodes[None, :]) * O  # [BB, NP]: W^T[i, s stride + k, 0]
    mask_bk = mask_b[:, None] & mask_k[None, :]
    links = gathered_links(grad_ptr, w_rows, offs_b, mask_b, mask_bk, O, BB, NP, BO, ACC)  # [BB, NP]
    dot = tl.sum(dphi * links, axis=1)
    gx = tl.where(fold == 0, 0.0, dot * (2 * scale) * fold)  # clamp outside [0, S]: exactly 0
    tl.store(gx_ptr + offs_b * I + i, gx.to(gx_ptr.dtype.element_ty), mask=mask_b)


@triton.jit
def _segments_kernel(x_ptr, scale_ptr, shift_ptr, seg_ptr, TOTAL, I, S, MODE: tl.constexpr,
                     BLOCK: tl.constexpr, ACC: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < TOTAL
    i = offs % I
    x = tl.load(x_ptr + offs, mask=mask, other=0).to(ACC)
    scale = tl.load(scale_ptr + i, mask=mask, other=0).to(ACC)
    shift = tl.load(shift_ptr + i, mask=mask, other=0).to(ACC)
    u, _ = _fold(x, scale, shift, S, MODE)
    tl.store(seg_ptr + offs, _segment(u, S).to(tl.int64), mask=mask)


@triton.jit
def _weight_grad_kernel(grad_ptr, x_ptr, scale_ptr, shift_ptr, c_ptr, seg_ptr, order_ptr, ranges_ptr, gw_ptr,
                        B, I, O, K, S, STRIDE, TILES_M, GW_O, GW_I, GW_K, N: tl.constexpr, MODE: tl.constexpr,
                        BB: tl.constexpr, BM: tl.constexpr, BO: tl.constexpr, ACC: tl.constexpr,
                        DOT: tl.constexpr):
    i = tl.program_id(0).to(tl.int64)
    tile_m = tl.program_id(1)
    offs_m = tile_m.to(tl.int64) * BM + tl.arange(0, BM)
    offs_o = tl.program_id(2).to(tl.int64) * BO + tl.arange(0, BO)
    mask_o = offs_o < O
    scale, shift = tl.load(scale_ptr + i).to(ACC), tl.load(shift_ptr + i).to(ACC)
    # the samples (in sorted order) whose n values meet link values offs_m: slots [start, stop)
    start = tl.load(ranges_ptr + (i * TILES_M + tile_m) * 2)
    stop = tl.load(ranges_ptr + (i * TILES_M + tile_m) * 2 + 1)
    acc = tl.zeros((BM, BO), dtype=ACC)
    for j0 in range(start, stop, BB):
        slots = j0 + tl.arange(0, BB)
        mask_j = slots < stop
        rows = tl.load(order_ptr + i * B + slots, mask=mask_j, other=0)  # sample of each slot
        x = tl.load(x_ptr + rows * I + i, mask=mask_j, other=0).to(ACC)
        s = tl.load(seg_ptr + rows * I + i, mask=mask_j, other=0)  # the segment the ranges were built from
        u, _ = _fold(x, scale, shift, S, MODE)
        node = offs_m[None, :] - (s * STRIDE)[:, None]  # [BB, BM]: which of the sample's values m is
        inside = mask_j[:, None] & (node >= 0) & (node < N)
        e, _ = _basis(u, s.to(ACC), c_ptr, node, inside, N, MODE, True, False)  # E [BB, BM]
        g = tl.load(grad_ptr + rows[:, None] * O + offs_o[None, :], mask=mask_j[:, None] & mask_o[None, :],
                    other=0).to(ACC)
        if DOT:
            acc = tl.dot(tl.trans(e), g, acc, input_precision="ieee", out_dtype=ACC)
        else:  # float64
            acc += tl.sum(e[:, :, None] * g[:, None, :], axis=0)
    out = gw_ptr + offs_o[None, :] * GW_O + i * GW_I + offs_m[:, None] * GW_K  # gw[o, i, m], [BM, BO]
    tl.store(out, acc.to(gw_ptr.dtype.element_ty), mask=(offs_m < K)[:, None] & mask_o[None, :])


# ------------------------------------------------------------------------------------------------- entries


def _samples_per_program(sample_nodes: int, padded_nodes: int) -> int:
    """``BB`` of the forward and input-gradient kernels: ``sample_nodes`` over the padded node count ``NP``
    (their ``[BB, NP, BLOCK_O]`` accumulators keep ``sample_nodes * BLOCK_O`` values)."""
    return max(1, sample_nodes // padded_nodes)


def _geometry(transform: Tensor, segments: int, continuous: bool, extrapolation: str) -> dict:
    """The kernels' geometry arguments: ``S``, ``STRIDE`` (between the segments' first link values), ``N``
    and the extrapolation's ``MODE``."""
    n = transform.shape[0]
    return {"S": segments, "STRIDE": n - 1 if continuous else n, "N": n,
            "MODE": EXTRAPOLATION_CODES[extrapolation]}


def forward(x: Tensor, scale: Tensor, shift: Tensor, weight: Tensor, transform: Tensor, segments: int,
            continuous: bool, extrapolation: str) -> Tensor:
    """``y [B, O]`` for operands of one dtype (float32 or float64) checked by the operator (the contract of
    ``hol_cpu::lagrange_linear_forward``: zeros for empty ``B``, ``O`` or ``I``). The weight in any layout: it
    is read transposed to ``[I, K, O]``, without a copy when stored so (links-major)."""
    x, scale, shift, transform = (t.contiguous() for t in (x, scale, shift, transform))
    (batch, inputs), (outputs, _, width) = x.shape, weight.shape
    if batch == 0 or outputs == 0 or inputs == 0:
        return x.new_zeros(batch, outputs)
    geometry = _geometry(transform, segments, continuous, extrapolation)
    padded = triton.next_power_of_2(geometry["N"])
    samples = _samples_per_program(SAMPLE_NODES, padded)
    y = x.new_empty(batch, outputs)
    grid = (triton.cdiv(batch, samples), triton.cdiv(outputs, BLOCK_O))
    with device_of(x):
        _forward_kernel[grid](x, scale, shift, transform, transposed(weight), y, batch, inputs, outputs,
                              width, **geometry, NP=padded, BB=samples, BO=BLOCK_O,
                              ACC=ACCUMULATION[x.dtype])
    return y


def segments_of(x: Tensor, scale: Tensor, shift: Tensor, segments: int, extrapolation: str) -> Tensor:
    """The segment ``s [B, I]`` (int64) of every (sample, input), as the kernels compute it, for contiguous
    non-empty operands."""
    out = torch.empty(x.shape, dtype=torch.int64, device=x.device)
    total = x.numel()
    with device_of(x):
        _segments_kernel[(triton.cdiv(total, BLOCK_SEGMENTS),)](
            x, scale, shift, out, total, x.shape[1], segments, MODE=EXTRAPOLATION_CODES[extrapolation],
            BLOCK=BLOCK_SEGMENTS, ACC=ACCUMULATION[x.dtype])
    return out


def backward(grad_y: Tensor, x: Tensor, scale: Tensor, shift: Tensor, weight: Tensor, transform: Tensor,
             segments: int, continuous: bool, extrapolation: str, x_grad: bool,
             weight_grad: bool) -> tuple[Tensor, Tensor]:
    """``(gx [B, I], gw [O, I, K])`` for operands of one dtype (float32 or float64) checked by the operator,
    each an empty tensor where not asked for (the contract of ``hol_cpu::lagrange_linear_backward``: zeros for
    empty ``B``, ``O`` or ``I``). ``gw`` is contiguous whatever the weight's layout, as the operator's fake
    implementation says (``torch.compile`` checks the strides); the kernel writes any strides."""
    grad_y, x, scale, shift, transform = (t.contiguous() for t in (grad_y, x, scale, shift, transform))
    (batch, inputs), (outputs, _, width) = x.shape, weight.shape
    gx, gw = x.new_empty(0), weight.new_empty(0)
    if batch == 0 or outputs == 0 or inputs == 0:  # zero gradients, no kernel
        return (x.new_zeros(batch, inputs) if x_grad else gx,
                weight.new_zeros(weight.shape) if weight_grad else gw)
    geometry = _geometry(transform, segments, continuous, extrapolation)
    n, stride, acc = geometry["N"], geometry["STRIDE"], ACCUMULATION[x.dtype]
    with device_of(x):
        if x_grad:
            padded = triton.next_power_of_2(n)
            samples = _samples_per_program(SAMPLE_NODES_GRAD, padded)
            gx = x.new_empty(batch, inputs)
            _input_grad_kernel[(triton.cdiv(batch, samples), inputs)](
                grad_y, x, scale, shift, transform, transposed(weight), gx, batch, inputs, outputs, width,
                **geometry, NP=padded, BB=samples, BO=BLOCK_O, ACC=acc)
        if weight_grad:
            segment = segments_of(x, scale, shift, segments, extrapolation)
            order, _, ranges = sample_ranges(segment * stride, n, width, BLOCK_M)
            tiles = ranges.shape[1]
            gw = weight.new_empty(weight.shape)  # contiguous, as the fake says (the kernel takes any strides)
            _weight_grad_kernel[(inputs, tiles, triton.cdiv(outputs, BLOCK_O))](
                grad_y, x, scale, shift, transform, segment, order, ranges, gw, batch, inputs, outputs, width,
                segments, stride, tiles, *gw.stride(), N=n, MODE=geometry["MODE"], BB=BLOCK_B[x.dtype],
                BM=BLOCK_M, BO=BLOCK_O, ACC=acc, DOT=x.dtype == torch.float32)
    return gx, gw
