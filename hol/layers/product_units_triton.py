"""Triton kernels of the product-unit operator (the CUDA implementation of ``hol::product_units``).

Same operator as the C++ kernels (:mod:`hol.layers.product_units`, whose docstring has the formulas):

* forward, one program per tile of ``BLOCK_B`` samples x ``BLOCK_O`` outputs, looping over the inputs: it gathers
  the ``n`` weights ``W[o, i, base[b, i] + k]`` of every link, forms ``f`` and multiplies the factors, counting
  zero factors instead of multiplying by them; it writes ``y``, the product of the nonzero factors and
  ``zero_at`` (int32);
* ``d phi``, one program per tile of samples x outputs: it recomputes ``f`` with the same code as the forward,
  forms ``c = dy (d y / d f)`` from the saved state and reduces ``c W`` over its outputs into its own slice of a
  ``[output tiles, B, I, n]`` buffer, which is then summed over the tiles;
* ``d W``, one program per (output tile, input), owning ``dW[tile, i, :]``: it walks the samples in the order of
  their segment offset (a stable ``argsort``), so samples that share a segment form runs; the sum of ``c phi_k``
  over each run (a one-hot matrix product) is added to ``dW[o, i, base + k]`` run by run. When every input uses the
  whole link (``n = K``), the sum over samples is kept in registers instead.

No atomics: every output element is written by one program in a fixed order, so results are deterministic. Loads are
converted to ``float32`` (``float64`` for ``float64`` tensors) and everything accumulates in that type.

With ``TRITON_INTERPRET=1`` set before this module is imported, the kernels run on CPU tensors (how the tests check
them on machines without a GPU).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

BLOCK_B = 32
BLOCK_O = 32
ACCUMULATION = {torch.float16: torch.float32, torch.bfloat16: torch.float32, torch.float32: torch.float32,
                torch.float64: torch.float64}
_TRITON_TYPES = {torch.float32: tl.float32, torch.float64: tl.float64}


@triton.jit
def _link_values(phi_ptr, base_ptr, w_ptr, offs_b, offs_o, mask_b, mask_o, i, I, K,
                 N: tl.constexpr, BB: tl.constexpr, BO: tl.constexpr, ACC: tl.constexpr):
    """f[b, o] = sum_k phi[b, i, k] W[o, i, base[b, i] + k] for a [BB, BO] tile (zero outside the masks)."""
    row = offs_b * I + i
    base = tl.load(base_ptr + row, mask=mask_b, other=0)
    w_rows = w_ptr + (offs_o[None, :] * I + i) * K + base[:, None]
    mask = mask_b[:, None] & mask_o[None, :]
    f = tl.zeros((BB, BO), dtype=ACC)
    for k in tl.static_range(N):
        p = tl.load(phi_ptr + row * N + k, mask=mask_b, other=0).to(ACC)
        f += p[:, None] * tl.load(w_rows + k, mask=mask, other=0).to(ACC)
    return f


@triton.jit
def _coefficients(f, scaled, shift, zero_at, i):
    """c = dy (d y / d f): scaled / (1 + f) where no factor is zero, scaled for the single zero factor, minus shift."""
    one = f + 1
    others = tl.where(zero_at == -1, scaled / tl.where(one == 0, 1, one), 0)
    return others + tl.where(zero_at == i, scaled, 0) - shift


@triton.jit
def _forward_kernel(phi_ptr, base_ptr, w_ptr, y_ptr, prod_ptr, zero_ptr, alpha_ptr, B, I, O, K,
                    N: tl.constexpr, BB: tl.constexpr, BO: tl.constexpr, ACC: tl.constexpr):
    alpha = tl.load(alpha_ptr)
    offs_b = tl.program_id(0).to(tl.int64) * BB + tl.arange(0, BB)
    offs_o = tl.program_id(1).to(tl.int64) * BO + tl.arange(0, BO)
    mask_b, mask_o = offs_b < B, offs_o < O
    prod = tl.full((BB, BO), 1, dtype=ACC)
    total = tl.zeros((BB, BO), dtype=ACC)
    zero_at = tl.full((BB, BO), -1, dtype=tl.int32)
    for i in range(I):
        f = _link_values(phi_ptr, base_ptr, w_ptr, offs_b, offs_o, mask_b, mask_o, i, I, K, N, BB, BO, ACC)
        one = f + 1
        is_zero = one == 0
        prod = tl.where(is_zero, prod, prod * one)
        zero_at = tl.where(is_zero, tl.where(zero_at == -1, i, -2), zero_at)
        total += f
    y = tl.where(zero_at == -1, prod, 0) - 1 - (1 - alpha) * total
    out = offs_b[:, None] * O + offs_o[None, :]
    mask = mask_b[:, None] & mask_o[None, :]
    tl.store(y_ptr + out, y.to(y_ptr.dtype.element_ty), mask=mask)
    tl.store(prod_ptr + out, prod, mask=mask)
    tl.store(zero_ptr + out, zero_at, mask=mask)


@triton.jit
def _load_state(gy_ptr, prod_ptr, zero_ptr, rows, offs_o, mask_b, mask_o, O, alpha, ACC: tl.constexpr):
    """(dy prod, dy (1 - alpha), zero_at) of the samples ``rows`` (zero coefficients outside the masks)."""
    at = rows[:, None] * O + offs_o[None, :]
    mask = mask_b[:, None] & mask_o[None, :]
    g = tl.load(gy_ptr + at, mask=mask, other=0).to(ACC)
    prod = tl.load(prod_ptr + at, mask=mask, other=1)
    zero_at = tl.load(zero_ptr + at, mask=mask, other=-1)
    return g * prod, g * (1 - alpha), zero_at


@triton.jit
def _grad_phi_kernel(gy_ptr, phi_ptr, base_ptr, w_ptr, prod_ptr, zero_ptr, alpha_ptr, partial_ptr, B, I, O, K,
                     N: tl.constexpr, BB: tl.constexpr, BO: tl.constexpr, ACC: tl.constexpr):
    alpha = tl.load(alpha_ptr)
    tile_o = tl.program_id(1)
    offs_b = tl.program_id(0).to(tl.int64) * BB + tl.arange(0, BB)
    offs_o = tile_o.to(tl.int64) * BO + tl.arange(0, BO)
    mask_b, mask_o = offs_b < B, offs_o < O
    scaled, shift, zero_at = _load_state(gy_ptr, prod_ptr, zero_ptr, offs_b, offs_o, mask_b, mask_o, O, alpha, ACC)
    mask = mask_b[:, None] & mask_o[None, :]
    out = partial_ptr + (tile_o.to(tl.int64) * B + offs_b) * I * N
    for i in range(I):
        f = _link_values(phi_ptr, base_ptr, w_ptr, offs_b, offs_o, mask_b, mask_o, i, I, K, N, BB, BO, ACC)
        c = _coefficients(f, scaled, shift, zero_at, i)
        base = tl.load(base_ptr + offs_b * I + i, mask=mask_b, other=0)
        w_rows = w_ptr + (offs_o[None, :] * I + i) * K + base[:, None]
        for k in tl.static_range(N):
            w = tl.load(w_rows + k, mask=mask, other=0).to(ACC)
            tl.store(out + i * N + k, tl.sum(c * w, axis=1), mask=mask_b)


@triton.jit
def _grad_weight_kernel(gy_ptr, phi_ptr, base_ptr, w_ptr, prod_ptr, zero_ptr, alpha_ptr, order_ptr, gw_ptr, B, I,
                        O, K, N: tl.constexpr, NP: tl.constexpr, BB: tl.constexpr, BO: tl.constexpr,
                        ACC: tl.constexpr, DENSE: tl.constexpr):
    alpha = tl.load(alpha_ptr)
    offs_o = tl.program_id(0).to(tl.int64) * BO + tl.arange(0, BO)
    i = tl.program_id(1)
    mask_o = offs_o < O
    gw_rows = gw_ptr + (offs_o * I + i) * K  # [BO] starts of dW[o, i, :]
    dense_sums = tl.zeros((NP, BO), dtype=ACC)  # DENSE: sum over samples of c phi_k, kept in registers
    k_index = tl.arange(0, NP)  # nodes, padded to a power of two
    for j0 in range(0, B, BB):
        slots = j0 + tl.arange(0, BB)
        mask_b = slots < B
        if DENSE:
            rows = slots.to(tl.int64)
        else:
            rows = tl.load(order_ptr + i * B + slots, mask=mask_b, other=0)  # samples sorted by segment offset
        scaled, shift, zero_at = _load_state(gy_ptr, prod_ptr, zero_ptr, rows, offs_o, mask_b, mask_o, O, alpha,
                                             ACC)
        f = _link_values(phi_ptr, base_ptr, w_ptr, rows, offs_o, mask_b, mask_o, i, I, K, N, BB, BO, ACC)
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
            one_hot = tl.where((run[:, None] == runs[None, :]) & mask_b[:, None], 1.0, 0.0).to(ACC)  # [sample, run]
            run_base = tl.sum(tl.where(starts[:, None] & (run[:, None] == runs[None, :]), base[:, None], 0), axis=0)
            valid = runs < tl.sum(starts.to(tl.int32), axis=0)
            for k in tl.static_range(N):
                p = tl.sum(tl.where(k_index[None, :] == k, phi, 0), axis=1)  # [BB] phi[:, k]
                sums = tl.dot(tl.trans(one_hot), p[:, None] * c, input_precision="ieee")  # [run, BO]
                at = gw_rows[None, :] + (run_base + k)[:, None]
                mask = valid[:, None] & mask_o[None, :]
                tl.store(at, tl.load(at, mask=mask, other=0) + sums, mask=mask)
                tl.debug_barrier()  # the next k (or tile) may update the same entries (shared end nodes)
    if DENSE:
        tl.store(gw_rows[None, :] + k_index[:, None], dense_sums, mask=(k_index[:, None] < N) & mask_o[None, :])


def _scalar(value: float, dtype: torch.dtype, device) -> Tensor:
    """``value`` as a one-element tensor: a Python float reaches a kernel as float32, too coarse for float64."""
    return torch.tensor([value], dtype=dtype, device=device)


def _grid(*sizes):
    return tuple(triton.cdiv(size, block) for size, block in sizes)


def forward(phi: Tensor, base: Tensor, weight: Tensor, alpha: float) -> tuple[Tensor, Tensor, Tensor]:
    """``(y, prod, zero_at)`` of the operator ``hol::product_units`` (shapes and dtypes as there)."""
    phi, base, weight = phi.contiguous(), base.contiguous(), weight.contiguous()
    (batch, inputs, n), (outputs, _, width) = phi.shape, weight.shape
    acc = ACCUMULATION[phi.dtype]
    y = phi.new_empty(batch, outputs)
    prod = phi.new_empty(batch, outputs, dtype=acc)
    zero_at = phi.new_empty(batch, outputs, dtype=torch.int32)
    if y.numel():
        _forward_kernel[_grid((batch, BLOCK_B), (outputs, BLOCK_O))](
            phi, base, weight, y, prod, zero_at, _scalar(alpha, acc, phi.device), batch, inputs, outputs, width,
            N=n, BB=BLOCK_B, BO=BLOCK_O, ACC=_TRITON_TYPES[acc])
    return y, prod, zero_at


def backward(grad_y: Tensor, phi: Tensor, base: Tensor, weight: Tensor, prod: Tensor, zero_at: Tensor,
             alpha: float, phi_grad: bool, weight_grad: bool) -> tuple[Tensor | None, Tensor | None]:
    """``(d phi, d weight)`` of the operator, each only if asked for (else ``None``), in the accumulation dtype."""
    grad_y, phi, base, weight = grad_y.contiguous(), phi.contiguous(), base.contiguous(), weight.contiguous()
    prod, zero_at = prod.contiguous(), zero_at.contiguous()
    (batch, inputs, n), (outputs, _, width) = phi.shape, weight.shape
    acc = ACCUMULATION[phi.dtype]
    operands = (grad_y, phi, base, weight, prod, zero_at, _scalar(alpha, acc, phi.device))
    grad_phi = grad_weight = None
    if phi_grad:
        tiles = triton.cdiv(outputs, BLOCK_O)
        partial = phi.new_zeros(tiles, batch, inputs, n, dtype=acc)
        if batch and outputs and inputs:
            _grad_phi_kernel[_grid((batch, BLOCK_B), (outputs, BLOCK_O))](
                *operands, partial, batch, inputs, outputs, width,
                N=n, BB=BLOCK_B, BO=BLOCK_O, ACC=_TRITON_TYPES[acc])
        grad_phi = partial.sum(0)
    if weight_grad:
        grad_weight = weight.new_zeros(weight.shape, dtype=acc)
        dense = n == width
        order = base if dense else torch.argsort(base.t(), dim=1, stable=True).contiguous()  # [I, B], by segment
        if outputs and inputs:
            _grad_weight_kernel[(triton.cdiv(outputs, BLOCK_O), inputs)](
                *operands, order, grad_weight, batch, inputs, outputs, width,
                N=n, NP=triton.next_power_of_2(n), BB=BLOCK_B, BO=BLOCK_O, ACC=_TRITON_TYPES[acc], DENSE=dense)
    return grad_phi, grad_weight
