"""The segment-sparse product and its two derivative products as torch operators (``torch.ops.hol``).

With ``phi [B, I, n]`` (float), ``base [B, I]`` (int64, ``0 <= base <= K - n``), ``weight [O, I, K]``:

* ``hol::segment_sparse_product(Tensor phi, Tensor base, Tensor weight) -> Tensor`` (F), ``[B, O]``:
  ``y[b, o] = sum_{i,k} phi[b, i, k] weight[o, i, base[b, i] + k]``;
* ``hol::segment_sparse_weight_grad(Tensor phi, Tensor base, Tensor grad, SymInt width) -> Tensor`` (A),
  ``[O, I, width]``: ``dW[o, i, base[b, i] + k] += phi[b, i, k] grad[b, o]`` over every ``(b, k)`` (repeated
  indices accumulate);
* ``hol::segment_sparse_phi_grad(Tensor grad, Tensor weight, Tensor base, SymInt n) -> Tensor`` (B),
  ``[B, I, n]``: ``dphi[b, i, k] = sum_o grad[b, o] weight[o, i, base[b, i] + k]``.

All three are bilinear in their float operands with the same index pattern, so the set is closed under
differentiation (``base`` is an index and gets no gradient):

* F: ``d phi = B(g, W)``, ``d W = A(phi, g)``;
* A (cotangent ``G [O, I, K]``): ``d phi = B(grad, G)``, ``d grad = F(phi, G)``;
* B (cotangent ``H [B, I, n]``): ``d grad = F(H, W)``, ``d W = A(H, grad)``;

and the forward-mode derivative of each is the sum of the same product with one operand replaced by its
tangent. Derivatives of every order follow.

Registered with every operator (:func:`hol.ops.registration.define_operator`, the host implementation below
serving every device but CUDA): a fake (meta) implementation (shapes only: meta tensors, ``torch.compile``,
``torch.export``), a FLOP formula, a vmap rule (a vmapped dimension of one operand folds into a free index of
the result; when both bilinear operands are vmapped, one call per vmapped entry), and an autograd formula.
Autograd is
registered twice with the same formulas: at the dispatcher (``register_autograd``: what ``torch.compile`` and
``torch.export`` trace, and what direct ``torch.ops.hol`` calls use), and as ``autograd.Function`` classes
behind the eager entry points (:func:`segment_sparse_product` and friends), because the dispatcher
registration works neither under ``torch.func`` transforms (pytorch/pytorch#168393, #179652) nor with
forward-mode AD, and ``torch.compile`` does not trace a Function with a custom ``jvp``. A Function's backward
computes with the operators unless one of those is active (:func:`_backward_entry`).

Implementations (:data:`HOST_KERNELS` unless a device registers its own with :func:`register_kernels`):

* CPU with the C++ kernels (:mod:`hol.ops.segment_sparse`): float32 and float64; float16 and bfloat16 operands
  are computed in float32 and the result rounded once (float32 accumulation, as torch's CPU GEMMs do);
* CUDA with the Triton kernels (:mod:`hol.ops.segment_sparse_triton`, imported at the first CUDA call): every
  floating dtype, float32 accumulation for the half types, deterministic (no atomics);
* everywhere else (other devices, kernels unavailable, Triton missing or ``HOL_SPARSE_CPP=0`` on the CPU):
  torch's sparse ops (CSR ``torch.sparse.mm``, ``torch.sparse.sampled_addmm``, COO transpose), in float32 for
  the half types.
"""
from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable
from types import ModuleType
from typing import NamedTuple

import torch
from torch import Tensor

from . import loader
from .registration import compute_operands, define_operator

CPP_NAME = "segment_sparse"
CPP_DISABLE = "HOL_SPARSE_CPP"


def extension() -> ModuleType | None:
    """The compiled kernels, or ``None`` (with a warning) when they cannot be built here."""
    module = loader.load(CPP_NAME)  # HOL_SPARSE_CPP is read by extension_available, at every call
    return module if isinstance(module, ModuleType) else None


def extension_available() -> bool:
    """Whether the C++ kernels serve CPU calls: not when ``HOL_SPARSE_CPP=0``, else whether they build (the
    first call builds them)."""
    return os.environ.get(CPP_DISABLE, "1") != "0" and extension() is not None


def kernels() -> ModuleType:
    """The compiled kernels, for callers that checked :func:`extension_available`; ``RuntimeError`` where they
    cannot be built."""
    module = extension()
    if module is None:
        raise RuntimeError("hol: the segment-sparse C++ kernels are unavailable (see the earlier warning)")
    return module


def build_key() -> str:
    """12 hex digits identifying the kernels' source and headers, the torch version and this CPU's instruction
    sets."""
    return loader.build_key(CPP_NAME)


PRODUCT = "hol::segment_sparse_product"
WEIGHT_GRAD = "hol::segment_sparse_weight_grad"
PHI_GRAD = "hol::segment_sparse_phi_grad"


# ------------------------------------------------------------------------------------------------ checks


def _fail(message: str):
    raise ValueError(message)


def _check_floats(name_a: str, a: Tensor, name_b: str, b: Tensor) -> None:
    if not a.is_floating_point() or a.dtype != b.dtype:
        _fail(f"{name_a} and {name_b} must share a floating dtype, got {a.dtype} and {b.dtype}")


def _check_base(base: Tensor, rows: int, inputs: int) -> None:
    if base.dtype != torch.int64 or base.dim() != 2 or base.shape[0] != rows or base.shape[1] != inputs:
        _fail(f"base must be an int64 tensor [{rows}, {inputs}], got {base.dtype} {list(base.shape)}")


def _check_product(phi: Tensor, base: Tensor, weight: Tensor) -> None:
    if phi.dim() != 3 or weight.dim() != 3 or phi.shape[1] != weight.shape[1]:
        _fail(f"phi must be [B, I, n] and weight [O, I, K], got {list(phi.shape)} and {list(weight.shape)}")
    if phi.shape[2] > weight.shape[2]:
        _fail(f"phi has n={phi.shape[2]} values per input, more than weight's K={weight.shape[2]}")
    _check_floats("phi", phi, "weight", weight)
    _check_base(base, phi.shape[0], phi.shape[1])


def _check_weight_grad(phi: Tensor, base: Tensor, grad: Tensor, width: int) -> None:
    if phi.dim() != 3 or grad.dim() != 2 or phi.shape[0] != grad.shape[0]:
        _fail(f"phi must be [B, I, n] and grad [B, O], got {list(phi.shape)} and {list(grad.shape)}")
    if width < phi.shape[2]:
        _fail(f"width must be >= n={phi.shape[2]}, got {width}")
    _check_floats("phi", phi, "grad", grad)
    _check_base(base, phi.shape[0], phi.shape[1])


def _check_phi_grad(grad: Tensor, weight: Tensor, base: Tensor, n: int) -> None:
    if grad.dim() != 2 or weight.dim() != 3 or grad.shape[1] != weight.shape[0]:
        _fail(f"grad must be [B, O] and weight [O, I, K], got {list(grad.shape)} and {list(weight.shape)}")
    if not 1 <= n <= weight.shape[2]:
        _fail(f"n must be in [1, K={weight.shape[2]}], got {n}")
    _check_floats("grad", grad, "weight", weight)
    _check_base(base, grad.shape[0], weight.shape[1])


# ------------------------------------------------------------------------------------- torch implementation


def _expansion_matrix(phi: Tensor, base: Tensor, width: int) -> tuple[Tensor, Tensor]:
    """The dense expansion ``[B, I K]`` as a sparse CSR matrix ``A[b, i K + base[b, i] + k] = phi[b, i, k]``,
    and its column indices ``[B, I n]``. Columns ascend within each row, so the values keep the order of
    ``phi``."""
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


def _check_offsets(base: Tensor, n: int, width: int) -> None:
    if base.numel() and not bool(((base >= 0) & (base <= width - n)).all()):
        _fail(f"base holds segment offsets outside [0, {width - n}] (K={width}, n={n})")


def product_torch(phi: Tensor, base: Tensor, weight: Tensor) -> Tensor:
    """F as ``A @ W`` with torch's sparse ops (float32/float64 operands)."""
    _check_offsets(base, phi.shape[2], weight.shape[2])
    matrix, _ = _expansion_matrix(phi, base, weight.shape[2])
    return torch.sparse.mm(matrix, _weight_rows(weight))


def weight_grad_torch(phi: Tensor, base: Tensor, grad: Tensor, width: int) -> Tensor:
    """A as ``A^T grad`` with ``A^T`` a COO matrix, coalesced by ``torch.sparse.mm`` (repeated rows
    summed)."""
    _check_offsets(base, phi.shape[2], width)
    batch, inputs, _ = phi.shape
    _, columns = _expansion_matrix(phi, base, width)
    samples = torch.arange(batch, device=phi.device).unsqueeze(-1).expand_as(columns)
    transposed = torch.sparse_coo_tensor(torch.stack((columns.flatten(), samples.flatten())), phi.flatten(),
                                         (inputs * width, batch), check_invariants=False)
    result = torch.sparse.mm(transposed, grad).reshape(inputs, width, grad.shape[1])
    return result.permute(2, 0, 1).contiguous()


def phi_grad_torch(grad: Tensor, weight: Tensor, base: Tensor, n: int) -> Tensor:
    """B as ``grad W^T`` sampled at the nonzeros of ``A`` (``torch.sparse.sampled_addmm``)."""
    _check_offsets(base, n, weight.shape[2])
    pattern = grad.new_ones(grad.shape[0], weight.shape[1], n)
    matrix, _ = _expansion_matrix(pattern, base, weight.shape[2])
    sampled = torch.sparse.sampled_addmm(matrix, grad, _weight_rows(weight).T, beta=0.0)
    return sampled.values().reshape(pattern.shape)


# -------------------------------------------------------------------------------------------- operators


class Products(NamedTuple):
    """The three products as callables ``product(phi, base, weight)``,
    ``weight_grad(phi, base, grad, width)``, ``phi_grad(grad, weight, base, n)``: the operators themselves,
    their eager autograd Functions, or the kernels of a device (called with checked, non-empty operands; each
    returns its result in the operands' dtype)."""

    product: Callable[[Tensor, Tensor, Tensor], Tensor]
    weight_grad: Callable[[Tensor, Tensor, Tensor, int], Tensor]
    phi_grad: Callable[[Tensor, Tensor, Tensor, int], Tensor]


def _uses_cpp(device: torch.device) -> bool:
    return device.type == "cpu" and extension_available()


def _host_product(phi: Tensor, base: Tensor, weight: Tensor) -> Tensor:
    phi_c, weight_c = compute_operands(phi, weight)
    y = (kernels().product(phi_c, base, weight_c) if _uses_cpp(phi.device)
         else product_torch(phi_c, base, weight_c))
    return y.to(phi.dtype)


def _host_weight_grad(phi: Tensor, base: Tensor, grad: Tensor, width: int) -> Tensor:
    phi_c, grad_c = compute_operands(phi, grad)
    weight_grad = (kernels().weight_grad(phi_c, base, grad_c, width) if _uses_cpp(phi.device)
                   else weight_grad_torch(phi_c, base, grad_c, width))
    return weight_grad.to(phi.dtype)


def _host_phi_grad(grad: Tensor, weight: Tensor, base: Tensor, n: int) -> Tensor:
    grad_c, weight_c = compute_operands(grad, weight)
    phi_grad = (kernels().phi_grad(grad_c, weight_c, base, n) if _uses_cpp(grad.device)
                else phi_grad_torch(grad_c, weight_c, base, n))
    return phi_grad.to(grad.dtype)


HOST_KERNELS = Products(_host_product, _host_weight_grad, _host_phi_grad)
"""The C++ kernels on the CPU (float32 compute for the half types), torch's sparse ops elsewhere."""


def _product(kernels: Products, phi: Tensor, base: Tensor, weight: Tensor) -> Tensor:
    _check_product(phi, base, weight)
    batch, out = phi.shape[0], weight.shape[0]
    if batch * out == 0 or phi.numel() == 0:
        return phi.new_zeros(batch, out)
    return kernels.product(phi, base.contiguous(), weight)


def _weight_grad(kernels: Products, phi: Tensor, base: Tensor, grad: Tensor, width: int) -> Tensor:
    _check_weight_grad(phi, base, grad, width)
    batch, inputs, _ = phi.shape
    if batch == 0 or grad.shape[1] * inputs == 0:
        return phi.new_zeros(grad.shape[1], inputs, width)
    return kernels.weight_grad(phi, base.contiguous(), grad, width)


def _phi_grad(kernels: Products, grad: Tensor, weight: Tensor, base: Tensor, n: int) -> Tensor:
    _check_phi_grad(grad, weight, base, n)
    batch, inputs = base.shape
    if batch * inputs == 0 or grad.shape[1] == 0:
        return grad.new_zeros(batch, inputs, n)
    return kernels.phi_grad(grad, weight, base.contiguous(), n)


def _product_host(phi: Tensor, base: Tensor, weight: Tensor) -> Tensor:
    return _product(HOST_KERNELS, phi, base, weight)


def _weight_grad_host(phi: Tensor, base: Tensor, grad: Tensor, width: int) -> Tensor:
    return _weight_grad(HOST_KERNELS, phi, base, grad, width)


def _phi_grad_host(grad: Tensor, weight: Tensor, base: Tensor, n: int) -> Tensor:
    return _phi_grad(HOST_KERNELS, grad, weight, base, n)


def _product_fake(phi, base, weight):
    _check_product(phi, base, weight)
    return phi.new_empty(phi.shape[0], weight.shape[0])


def _weight_grad_fake(phi, base, grad, width):
    _check_weight_grad(phi, base, grad, width)
    return phi.new_empty(grad.shape[1], phi.shape[1], width)


def _phi_grad_fake(grad, weight, base, n):
    _check_phi_grad(grad, weight, base, n)
    return grad.new_empty(grad.shape[0], weight.shape[1], n)


# FLOP counts (torch.utils.flop_counter.FlopCounterMode): 2 FLOPs per multiply-add, as for aten.mm; each
# product is B I n O multiply-adds (the active values only, not the K of a link)


def _product_flops(phi_shape, base_shape, weight_shape, *args, **kwargs) -> int:
    batch, inputs, n = phi_shape
    return 2 * batch * inputs * n * weight_shape[0]


def _weight_grad_flops(phi_shape, base_shape, grad_shape, *args, **kwargs) -> int:
    batch, inputs, n = phi_shape
    return 2 * batch * inputs * n * grad_shape[1]


def _phi_grad_flops(grad_shape, weight_shape, base_shape, n, *args, **kwargs) -> int:
    batch, outputs = grad_shape
    return 2 * batch * weight_shape[1] * n * outputs


# the host kernels serve every device but those register_kernels names (CUDA: the Triton kernels)
_product_op = define_operator(PRODUCT, _product_host, fake=_product_fake, flops=_product_flops)
_weight_grad_op = define_operator(WEIGHT_GRAD, _weight_grad_host, fake=_weight_grad_fake,
                                  flops=_weight_grad_flops)
_phi_grad_op = define_operator(PHI_GRAD, _phi_grad_host, fake=_phi_grad_fake, flops=_phi_grad_flops)


def register_kernels(device_type: str, kernels: Callable[[], Products]) -> None:
    """Serve the three operators on ``device_type`` (e.g. ``"cuda"``) with ``kernels()``, looked up at every
    call (so it may import lazily). The operators check the operands and handle empty shapes before calling a
    kernel; fake, vmap and autograd registrations are shared by every device."""

    def product(phi: Tensor, base: Tensor, weight: Tensor) -> Tensor:
        return _product(kernels(), phi, base, weight)

    def weight_grad(phi: Tensor, base: Tensor, grad: Tensor, width: int) -> Tensor:
        return _weight_grad(kernels(), phi, base, grad, width)

    def phi_grad(grad: Tensor, weight: Tensor, base: Tensor, n: int) -> Tensor:
        return _phi_grad(kernels(), grad, weight, base, n)

    _product_op.register_kernel(device_type)(product)
    _weight_grad_op.register_kernel(device_type)(weight_grad)
    _phi_grad_op.register_kernel(device_type)(phi_grad)


@functools.cache
def triton_kernels() -> Products:
    """The Triton kernels (:mod:`hol.ops.segment_sparse_triton`), or :data:`HOST_KERNELS` (torch's sparse ops)
    where Triton cannot be imported."""
    try:
        from . import segment_sparse_triton
    except ImportError:
        return HOST_KERNELS
    kernels = segment_sparse_triton
    return Products(kernels.product, kernels.weight_grad, kernels.phi_grad)


register_kernels("cuda", triton_kernels)


# ---------------------------------------------------------------------------------------------- vmap rules


def _batched_first(x: Tensor, dim: int | None, size: int) -> Tensor:
    """``x`` with its vmapped dimension first (expanded to ``size`` when ``x`` is not vmapped)."""
    return x.movedim(dim, 0) if dim is not None else x.expand(size, *x.shape)


def _one_call_per_entry(op, info, in_dims, args):
    """The fallback vmap rule: ``op`` once per vmapped entry, results stacked along dimension 0."""
    results = [op(*[a.select(d, v) if d is not None else a for a, d in zip(args, in_dims, strict=True)])
               for v in range(info.batch_size)]
    return torch.stack(results), 0


@_product_op.register_vmap
def _(info, in_dims, phi, base, weight):
    phi_dim, base_dim, weight_dim = in_dims
    size = info.batch_size
    if weight_dim is None:  # samples of every entry form one batch
        phi, base = _batched_first(phi, phi_dim, size), _batched_first(base, base_dim, size)
        result = _product_op(phi.flatten(0, 1), base.flatten(0, 1), weight)
        return result.unflatten(0, (size, phi.shape[1])), 0
    if phi_dim is None and base_dim is None:  # the weights of every entry form one output dimension
        weight = weight.movedim(weight_dim, 0)
        return _product_op(phi, base, weight.flatten(0, 1)).unflatten(1, (size, weight.shape[1])), 1
    return _one_call_per_entry(_product_op, info, in_dims, (phi, base, weight))


@_weight_grad_op.register_vmap
def _(info, in_dims, phi, base, grad, width):
    phi_dim, base_dim, grad_dim, _ = in_dims
    size = info.batch_size
    if phi_dim is None and base_dim is None:  # the output gradients of every entry form one output dimension
        grad = grad.movedim(grad_dim, 1)  # [B, V, O]
        return _weight_grad_op(phi, base, grad.flatten(1, 2), width).unflatten(0, (size, grad.shape[2])), 0
    if grad_dim is None:  # the inputs of every entry form one input dimension
        phi = _batched_first(phi, phi_dim, size).movedim(0, 1)  # [B, V, I, n]
        base = _batched_first(base, base_dim, size).movedim(0, 1)
        result = _weight_grad_op(phi.flatten(1, 2), base.flatten(1, 2), grad, width)
        return result.unflatten(1, (size, phi.shape[2])), 1
    return _one_call_per_entry(_weight_grad_op, info, in_dims, (phi, base, grad, width))


@_phi_grad_op.register_vmap
def _(info, in_dims, grad, weight, base, n):
    grad_dim, weight_dim, base_dim, _ = in_dims
    size = info.batch_size
    if weight_dim is None:  # samples of every entry form one batch
        grad, base = _batched_first(grad, grad_dim, size), _batched_first(base, base_dim, size)
        result = _phi_grad_op(grad.flatten(0, 1), weight, base.flatten(0, 1), n)
        return result.unflatten(0, (size, grad.shape[1])), 0
    if grad_dim is None and base_dim is None:  # the weights of every entry form one input dimension
        weight = weight.movedim(weight_dim, 1)  # [O, V, I, K]
        result = _phi_grad_op(grad, weight.flatten(1, 2), base.repeat(1, size), n)
        return result.unflatten(1, (size, weight.shape[2])), 1
    return _one_call_per_entry(_phi_grad_op, info, in_dims, (grad, weight, base, n))


# ---------------------------------------------------------------------------------------------- autograd


def _add(a: Tensor | None, b: Tensor | None) -> Tensor | None:
    return b if a is None else a if b is None else a + b


def product_vjp(ops: Products, saved, needs, grad: Tensor):
    """``(d phi, None, d weight)`` of F for output gradient ``grad``; ``saved = (phi, base, weight)``."""
    phi, base, weight = saved
    return (ops.phi_grad(grad, weight, base, phi.shape[2]) if needs[0] else None, None,
            ops.weight_grad(phi, base, grad, weight.shape[2]) if needs[2] else None)


def weight_grad_vjp(ops: Products, saved, needs, cotangent: Tensor):
    """``(d phi, None, d grad, None)`` of A for cotangent ``[O, I, K]``; ``saved = (phi, base, grad)``."""
    phi, base, grad = saved
    return (ops.phi_grad(grad, cotangent, base, phi.shape[2]) if needs[0] else None, None,
            ops.product(phi, base, cotangent) if needs[2] else None, None)


def phi_grad_vjp(ops: Products, saved, needs, cotangent: Tensor, width: int):
    """``(d grad, d weight, None, None)`` of B for cotangent ``[B, I, n]``;
    ``saved = (grad, weight, base)``."""
    grad, weight, base = saved
    return (ops.product(cotangent, base, weight) if needs[0] else None,
            ops.weight_grad(cotangent, base, grad, width) if needs[1] else None, None, None)


OPERATORS = Products(_product_op, _weight_grad_op, _phi_grad_op)


def _setup_three(ctx, inputs, output):
    ctx.save_for_backward(*inputs[:3])


def _setup_phi_grad(ctx, inputs, output):
    ctx.save_for_backward(*inputs[:3])
    ctx.width = inputs[1].shape[2]


_product_op.register_autograd(
    lambda ctx, grad: product_vjp(OPERATORS, ctx.saved_tensors, ctx.needs_input_grad, grad),
    setup_context=_setup_three)
_weight_grad_op.register_autograd(
    lambda ctx, cotangent: weight_grad_vjp(OPERATORS, ctx.saved_tensors, ctx.needs_input_grad, cotangent),
    setup_context=_setup_three)
_phi_grad_op.register_autograd(
    lambda ctx, cotangent: phi_grad_vjp(OPERATORS, ctx.saved_tensors, ctx.needs_input_grad, cotangent,
                                        ctx.width),
    setup_context=_setup_phi_grad)


class _Product(torch.autograd.Function):
    """F for eager calls: reverse mode, forward mode and vmap (rule generated from the operator's)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(phi, base, weight):
        return _product_op(phi, base, weight)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)
        ctx.save_for_forward(*inputs)

    @staticmethod
    def backward(ctx, grad):
        return product_vjp(_backward_entry(), ctx.saved_tensors, ctx.needs_input_grad, grad)

    @staticmethod
    def jvp(ctx, phi_tangent, _, weight_tangent):
        phi, base, weight = ctx.saved_tensors
        return _add(None if phi_tangent is None else _Product.apply(phi_tangent, base, weight),
                    None if weight_tangent is None else _Product.apply(phi, base, weight_tangent))


class _WeightGrad(torch.autograd.Function):
    """A for eager calls (see :class:`_Product`)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(phi, base, grad, width):
        return _weight_grad_op(phi, base, grad, width)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs[:3])
        ctx.save_for_forward(*inputs[:3])
        ctx.width = inputs[3]

    @staticmethod
    def backward(ctx, cotangent):
        return weight_grad_vjp(_backward_entry(), ctx.saved_tensors, ctx.needs_input_grad, cotangent)

    @staticmethod
    def jvp(ctx, phi_tangent, _, grad_tangent, __):
        phi, base, grad = ctx.saved_tensors
        return _add(None if phi_tangent is None else _WeightGrad.apply(phi_tangent, base, grad, ctx.width),
                    None if grad_tangent is None else _WeightGrad.apply(phi, base, grad_tangent, ctx.width))


class _PhiGrad(torch.autograd.Function):
    """B for eager calls (see :class:`_Product`)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(grad, weight, base, n):
        return _phi_grad_op(grad, weight, base, n)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs[:3])
        ctx.save_for_forward(*inputs[:3])
        ctx.n, ctx.width = inputs[3], inputs[1].shape[2]

    @staticmethod
    def backward(ctx, cotangent):
        return phi_grad_vjp(_backward_entry(), ctx.saved_tensors, ctx.needs_input_grad, cotangent, ctx.width)

    @staticmethod
    def jvp(ctx, grad_tangent, weight_tangent, _, __):
        grad, weight, base = ctx.saved_tensors
        return _add(None if grad_tangent is None else _PhiGrad.apply(grad_tangent, weight, base, ctx.n),
                    None if weight_tangent is None else _PhiGrad.apply(grad, weight_tangent, base, ctx.n))


FUNCTIONS = Products(_Product.apply, _WeightGrad.apply, _PhiGrad.apply)


def _backward_entry() -> Products:
    """The products a Function's backward computes with: the Functions under a differentiating ``torch.func``
    transform (``grad``, ``vjp``, ``jacrev``, ``jvp``, ...) or with a forward-mode level open (the operators'
    dispatcher autograd works under neither); else the operators. Plain autograd differentiates the
    operators to every order (``create_graph=True``), also under the ``vmap`` of a batched backward
    (``is_grads_batched=True``, ``torch.autograd.functional.hessian(vectorize=True)``), where the Functions'
    generated vmap rule loses the graph of their results; and an ``autograd.Function`` call costs tens of
    microseconds of Python, as much as a small product (100 of the 790 us of a B=16, I=O=32 step)."""
    if torch.autograd.forward_ad._current_level >= 0 or _differentiating_transform():
        return FUNCTIONS
    return OPERATORS


def _differentiating_transform() -> bool:
    """Whether a ``torch.func`` transform that differentiates (``grad`` and ``vjp``: Grad; ``jvp``: Jvp) is
    active."""
    stack = torch._C._functorch.get_interpreter_stack() or []
    return any(interpreter.key() in _DIFFERENTIATING for interpreter in stack)


_DIFFERENTIATING = (torch._C._functorch.TransformType.Grad, torch._C._functorch.TransformType.Jvp)


def _entry() -> Products:
    """The operators while ``torch.compile``/``torch.export`` or ``torch.jit.trace`` trace (they see one
    opaque op and its registered autograd; a traced graph holding a Python Function cannot be saved), the
    Functions in eager mode (``torch.func`` transforms and forward-mode AD work there)."""
    return OPERATORS if torch.compiler.is_compiling() or torch.jit.is_tracing() else FUNCTIONS


def segment_sparse_product(phi: Tensor, base: Tensor, weight: Tensor) -> Tensor:
    """F: ``y[b, o] = sum_{i,k} phi[b, i, k] weight[o, i, base[b, i] + k]`` (module docstring).

    Shapes: ``phi [B, I, n]``, ``base [B, I]`` (int64), ``weight [O, I, K]`` -> ``[B, O]``.
    Raises ``ValueError`` for shapes or dtypes that disagree.
    """
    return _entry().product(phi, base, weight)


def segment_sparse_weight_grad(phi: Tensor, base: Tensor, grad: Tensor, width: int) -> Tensor:
    """A: the weight gradient of F for output gradient ``grad [B, O]``; ``[O, I, width]``."""
    return _entry().weight_grad(phi, base, grad, width)


def segment_sparse_phi_grad(grad: Tensor, weight: Tensor, base: Tensor, n: int) -> Tensor:
    """B: the ``phi`` gradient of F for output gradient ``grad [B, O]``; ``[B, I, n]``."""
    return _entry().phi_grad(grad, weight, base, n)
