"""Triton kernels of the product-unit operator (the CUDA implementation of ``hol::product_units``).

Same operator as the C++ kernels (:mod:`hol.ops.product_units`, whose docstring has the formulas). The
weight is read transposed to ``[I, K, O]`` (one copy per call), so every gathered row is a run of consecutive
outputs:

* forward, one program per tile of ``BLOCK_B`` samples x ``BLOCK_O`` outputs, looping over the inputs: it
  gathers the ``n`` weights ``W[o, i, base[b, i] + k]`` of every link, forms ``f`` and multiplies the factors,
  counting zero factors instead of multiplying by them; it writes the product of the nonzero factors,
  ``zero_at`` (int32) and ``sum_i f``, from which torch forms ``y`` (``alpha`` stays a float64 there);
* ``d phi``, one program per tile of samples x outputs: it recomputes ``f`` with the same code as the forward,
  forms ``c = dy (d y / d f)`` from the saved state (``dy prod`` and ``dy (1 - alpha)`` precomputed by torch)
  and reduces ``c W`` over its outputs into its own slice of a ``[output tiles, B, I, n]`` buffer, then summed
  over the tiles;
* ``d W``, one program per (input, output tile), owning ``dW[tile, i, :]``: it walks the samples in the order
  of their segment offset (a stable ``argsort``), so samples that share a segment form runs; the sum of
  ``c phi_k`` over each run (a one-hot matrix product) is added to ``dW[o, i, base + k]`` run by run. When
  every input uses the whole link (``n = K``), the sum over samples is kept in registers instead.

No atomics: every output element is written by one program in a fixed order, so results are deterministic.
Loads are converted to ``float32`` (``float64`` for ``float64`` tensors) and everything accumulates in that
type.

With ``TRITON_INTERPRET=1`` set before this module is imported, the kernels run on CPU tensors (how the tests
check them on machines without a GPU).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from .registration import ACCUMULATION

BLOCK_B = 32
BLOCK_O = 32
_TRITON_TYPES = {torch.float32: tl.float32, torch.float64: tl.float64}


@triton.jit
def _link_values(phi_ptr, base_ptr, w_ptr, offs_b, offs_o, mask_b, mask_o, i, I, K, O,
                 N: tl.constexpr, BB: tl.constexpr, BO: tl.constexpr, ACC: tl.constexpr):
    """f[b, o] = sum_k phi[b, i, k] W[o, i, base[b, i] + k] for a [BB, BO] tile (zero outside the masks), with
    the weight transposed to [I, K, O] (``w_ptr``), so that every load reads consecutive outputs."""
    row = offs_b * I + i
    base = tl.load(base_ptr + row, mask=mask_b, other=0)
    w_rows = w_ptr + (i * K + base[:, None]) * O + offs_o[None, :]
    mask = mask_b[:, None] & mask_o[None, :]
    f = tl.zeros((BB, BO), dtype=ACC)
    for k in tl.static_range(N):
        p = tl.load(phi_ptr + row * N + k, mask=mask_b, other=0).to(ACC)
        f += p[:, None] * tl.load(w_rows + k * O, mask=mask, other=0).to(ACC)
    return f


@triton.jit
def _coefficients(f, scaled, shift, zero_at, i):
    """c = dy (d y / d f): scaled / (1 + f) where no factor is zero, scaled for the single zero factor, minus
    shift."""
    one = f + 1
    others = tl.where(zero_at == -1, scaled / tl.where(one == 0, 1, one), 0)
    return others + tl.where(zero_at == i, scaled, 0) - shift


@triton.jit
def _forward_kernel(phi_ptr, base_ptr, w_ptr, prod_ptr, zero_ptr, total_ptr, B, I, O, K,
                    N: tl.constexpr, BB: tl.constexpr, BO: tl.constexpr, ACC: tl.constexpr):
    offs_b = tl.program_id(0).to(tl.int64) * BB + tl.arange(0, BB)
    offs_o = tl.program_id(1).to(tl.int64) * BO + tl.arange(0, BO)
    mask_b, mask_o = offs_b < B, offs_o < O
    prod = tl.full((BB, BO), 1, dtype=ACC)
    total = tl.zeros((BB, BO), dtype=ACC)
    zero_at = tl.full((BB, BO), -1, dtype=tl.int32)
    for i in range(I):
        f = _link_values(phi_ptr, base_ptr, w_ptr, offs_b, offs_o, mask_b, mask_o, i, I, K, O, N, BB, BO, ACC)
        one = f + 1
        is_zero = one == 0
        prod = tl.where(is_zero, prod, prod * one)
        zero_at = tl.where(is_zero, tl.where(zero_at == -1, i, -2), zero_at)
        total += f
    out = offs_b[:, None] * O + offs_o[None, :]
    mask = mask_b[:, None] & mask_o[None, :]
    tl.store(prod_ptr + out, prod, mask=mask)
    tl.store(zero_ptr + out, zero_at, mask=mask)
    tl.store(total_ptr + out, total, mask=mask)


@triton.jit
def _load_state(scaled_ptr, shift_ptr, zero_ptr, rows, offs_o, mask_b, mask_o, O):
    """(dy prod, dy (1 - alpha), zero_at) of the samples ``rows`` (zero coefficients outside the masks)."""
    at = rows[:, None] * O + offs_o[None, :]
    mask = mask_b[:, None] & mask_o[None, :]
    scaled = tl.load(scaled_ptr + at, mask=mask, other=0)
    shift = tl.load(shift_ptr + at, mask=mask, other=0)
    return scaled, shift, tl.load(zero_ptr + at, mask=mask, other=-1)


@triton.jit
def _grad_phi_kernel(scaled_ptr, shift_ptr, zero_ptr, phi_ptr, base_ptr, w_ptr, partial_ptr, B, I, O, K,
                     N: tl.constexpr, BB: tl.constexpr, BO: tl.constexpr, ACC: tl.constexpr):
    tile_o = tl.program_id(1)
    offs_b = tl.program_id(0).to(tl.int64) * BB + tl.arange(0, BB)
    offs_o = tile_o.to(tl.int64) * BO + tl.arange(0, BO)
    mask_b, mask_o = offs_b < B, offs_o < O
    scaled, shift, zero_at = _load_state(scaled_ptr, shift_ptr, zero_ptr, offs_b, offs_o, mask_b, mask_o, O)
    mask = mask_b[:, None] & mask_o[None, :]
    out = partial_ptr + (tile_o.to(tl.int64) * B + offs_b) * I * N
    for i in range(I):
        f = _link_values(phi_ptr, base_ptr, w_ptr, offs_b, offs_o, mask_b, mask_o, i, I, K, O, N, BB, BO, ACC)
        c = _coefficients(f, scaled, shift, zero_at, i)
        base = tl.load(base_ptr + offs_b * I + i, mask=mask_b, other=0)
        w_rows = w_ptr + (i * K + base[:, None]) * O + offs_o[None, :]
        for k in tl.static_range(N):
            w = tl.load(w_rows + k * O, mask=mask, other=0).to(ACC)
            tl.store(out + i * N + k, tl.sum(c * w, axis=1), mask=mask_b)


@triton.jit
def _grad_weight_kernel(scaled_ptr, shift_ptr, zero_ptr, phi_ptr, base_ptr, w_ptr, order_ptr, gw_ptr, B, I, O,
                        K, N: tl.constexpr, NP: tl.constexpr, BB: tl.constexpr, BO: tl.constexpr,
                        ACC: tl.constexpr, DENSE: tl.constexpr):
    i = tl.program_id(0).to(tl.int64)
    offs_o = tl.program_id(1).to(tl.int64) * BO + tl.arange(0, BO)
    mask_o = offs_o < O
    gw_rows = gw_ptr + i * K * O + offs_o  # [BO]: dW[o, i, 0] in the transposed gradient [I, K, O]
    dense_sums = tl.zeros((NP, BO), dtype=ACC)  # DENSE: sum over samples of c phi_k, kept in registers
    k_index = tl.arange(0, NP)  # nodes, padded to a power of two
    for j0 in range(0, B, BB):
        slots = j0 + tl.arange(0, BB)
        mask_b = slots < B
        # the samples in order (DENSE), else sorted by segment offset
        rows = slots.to(tl.int64) if DENSE else tl.load(order_ptr + i * B + slots, mask=mask_b, other=0)
        scaled, shift, zero_at = _load_state(scaled_ptr, shift_ptr, zero_ptr, rows, offs_o, mask_b, mask_o, O)
        f = _link_values(phi_ptr, base_ptr, w_ptr, rows, offs_o, mask_b, mask_o, i, I, K, O, N, BB, BO, ACC)
        c = _coefficients(f, scaled, shift, zero_at, i)
        phi = tl.load(phi_ptr + (rows * I + i)[:, None] * N + k_index[None, :],
                      mask=mask_b[:, None] & (k_index[None, :] < N), other=0).to(ACC)  # [BB, NP]
        if DENSE:
            dense_sums += tl.sum(phi[:, :, None] * c[:, None, :], axis=0)
        else:
            base = tl.load(base_ptr + rows * I + i, mask=mask_b, other=-1)
            previous = tl.load(base_ptr + tl.load(order_ptr + i * B + slots - 1, mask=mask_b & (slots > j0),
                                                  other=0) * I + i, mask=mask_b & (slots > j0), other=-1)
            starts = (base != previous) & mask_b  # first sample of each run of one segment within this tile
            run = tl.cumsum(starts.to(tl.int32), axis=0) - 1  # [BB] run of each sample
            runs = tl.arange(0, BB)
            same_run = run[:, None] == runs[None, :]  # [sample, run]
            one_hot = tl.where(same_run & mask_b[:, None], 1.0, 0.0).to(ACC)
            run_base = tl.sum(tl.where(starts[:, None] & same_run, base[:, None], 0), axis=0)
            valid = runs < tl.sum(starts.to(tl.int32), axis=0)
            for k in tl.static_range(N):
                p = tl.sum(tl.where(k_index[None, :] == k, phi, 0), axis=1)  # [BB] phi[:, k]
                sums = tl.dot(tl.trans(one_hot), p[:, None] * c, input_precision="ieee")  # [run, BO]
                at = gw_rows[None, :] + (run_base + k)[:, None] * O
                mask = valid[:, None] & mask_o[None, :]
                tl.store(at, tl.load(at, mask=mask, other=0) + sums, mask=mask)
                tl.debug_barrier()  # the next k (or tile) may update the same entries (shared end nodes)
    if DENSE:
        tl.store(gw_rows[None, :] + k_index[:, None] * O, dense_sums,
                 mask=(k_index[:, None] < N) & mask_o[None, :])


def _grid(*sizes):
    return tuple(triton.cdiv(size, block) for size, block in sizes)


def forward(phi: Tensor, base: Tensor, weight: Tensor, alpha: float) -> tuple[Tensor, Tensor, Tensor]:
    """``(y, prod, zero_at)`` of the operator ``hol::product_units`` (shapes and dtypes as there)."""
    phi, base, weight_t = phi.contiguous(), base.contiguous(), weight.permute(1, 2, 0).contiguous()
    (batch, inputs, n), (outputs, _, width) = phi.shape, weight.shape
    acc = ACCUMULATION[phi.dtype]
    prod = phi.new_ones(batch, outputs, dtype=acc)
    zero_at = phi.new_full((batch, outputs), -1, dtype=torch.int32)
    total = phi.new_zeros(batch, outputs, dtype=acc)  # sum_i f
    if prod.numel() and inputs:
        _forward_kernel[_grid((batch, BLOCK_B), (outputs, BLOCK_O))](
            phi, base, weight_t, prod, zero_at, total, batch, inputs, outputs, width,
            N=n, BB=BLOCK_B, BO=BLOCK_O, ACC=_TRITON_TYPES[acc])
    # alpha enters here, in torch (a Python float reaches a kernel as float32, too coarse for float64)
    y = torch.where(zero_at == -1, prod, 0) - 1 - (1 - alpha) * total
    return y.to(phi.dtype), prod, zero_at


def backward(grad_y: Tensor, phi: Tensor, base: Tensor, weight: Tensor, prod: Tensor, zero_at: Tensor,
             alpha: float, phi_grad: bool, weight_grad: bool) -> tuple[Tensor | None, Tensor | None]:
    """``(d phi, d weight)`` of the operator, each only if asked for (else ``None``), in the accumulation
    dtype."""
    phi, base, zero_at = phi.contiguous(), base.contiguous(), zero_at.contiguous()
    weight_t = weight.permute(1, 2, 0).contiguous()
    (batch, inputs, n), (outputs, _, width) = phi.shape, weight.shape
    acc = ACCUMULATION[phi.dtype]
    grad_y = grad_y.to(acc)
    scaled, shift = (grad_y * prod).contiguous(), (grad_y * (1 - alpha)).contiguous()
    state = (scaled, shift, zero_at)
    grad_phi = grad_weight = None
    if phi_grad:
        tiles = triton.cdiv(outputs, BLOCK_O)
        partial = phi.new_zeros(tiles, batch, inputs, n, dtype=acc)
        if batch and outputs and inputs:
            _grad_phi_kernel[_grid((batch, BLOCK_B), (outputs, BLOCK_O))](
                *state, phi, base, weight_t, partial, batch, inputs, outputs, width,
                N=n, BB=BLOCK_B, BO=BLOCK_O, ACC=_TRITON_TYPES[acc])
        grad_phi = partial.sum(0)
    if weight_grad:
        grad_weight_t = weight.new_zeros(inputs, width, outputs, dtype=acc)
        dense = n == width
        # order [I, B]: the samples of each input, by segment
        order = base if dense else torch.argsort(base.t(), dim=1, stable=True).contiguous()
        if outputs and inputs:
            _grad_weight_kernel[(inputs, triton.cdiv(outputs, BLOCK_O))](
                *state, phi, base, weight_t, order, grad_weight_t, batch, inputs, outputs, width,
                N=n, NP=triton.next_power_of_2(n), BB=BLOCK_B, BO=BLOCK_O, ACC=_TRITON_TYPES[acc],
                DENSE=dense)
        grad_weight = grad_weight_t.permute(2, 0, 1).contiguous()
    return grad_phi, grad_weight
