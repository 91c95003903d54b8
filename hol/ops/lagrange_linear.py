"""A piecewise Lagrange layer as one operator: basis values and their product with the weights, fused.

For inputs ``x [B, I]``, per-input maps ``u = x scale + shift`` onto the segment coordinate (``u`` in
``[0, S]`` over the domain: a domain of centre ``c`` and width ``w`` has ``scale = S / w``,
``shift = S / 2 - c S / w``), weights ``weight [O, I, K]`` and the matrix ``C = transform``
(:func:`~hol.ops.lagrange.lagrange_transform`, ``phi_k(t) = sum_j T_j(t) C[j, k]``):

1. fold: ``clamp`` clamps ``u`` to ``[0, S]``; ``mirror`` maps it to ``S - |remainder(u, 2S) - S|``;
   ``polynomial`` and ``linear`` leave it;
2. segment ``s = clamp(floor(u), 0, S - 1)`` (a NaN ``u`` gets ``s = 0`` and NaN values), local coordinate
   ``t = 2 (u - s) - 1``;
3. basis ``phi_k(t)``; ``linear``: outside ``[-1, 1]`` the end's tangent ``phi(t_c) + (t - t_c) phi'(t_c)``,
   ``t_c = clamp(t, -1, 1)``;
4. ``y[b, o] = sum_i sum_k phi_k(t_bi) weight[o, i, s_bi stride + k] (+ bias[o])``, ``stride = n - 1``
   (``continuous``, ``K = (n-1) S + 1``) or ``n`` (``K = n S``).

The same values as the basis expansion of :mod:`hol.ops.lagrange` followed by a matrix product, without the
basis values in memory: the operator ``hol::lagrange_linear`` keeps only its operands for the backward
``hol::lagrange_linear_backward``, which recomputes ``phi`` and ``phi'``. Gradients: ``x`` gets
``sum_k phi_k'(t) 2 scale fold'(u) sum_o grad[b, o] weight[o, i, s stride + k]`` (``fold'``: 1; ``clamp``: 0
outside ``[0, S]``, as ``torch.clamp``'s gradient; ``mirror``: ``+-1``), ``weight`` the usual one, ``scale``,
``shift`` and ``transform`` none (a layer's buffers).

Implementations: C++ kernels on the CPU (``csrc/lagrange_linear.cpp``: float32 and float64, ``n <=``
:data:`MAX_NODES`, bitwise reproducible whatever the number of threads; ``HOL_LAGRANGE_CPP=0`` turns them
off), Triton kernels on CUDA (:mod:`hol.ops.lagrange_linear_triton`, imported at the first CUDA call: float32
and float64, ``n <=`` :data:`MAX_NODES`, deterministic without atomics), the torch formula
(:func:`lagrange_linear_reference`) everywhere else (other devices, other dtypes, more nodes, no Triton;
:func:`register_kernels` serves a device with other kernels). Registered through
:func:`hol.ops.registration.define_operator` (fake, FLOP formula, autograd); eager CPU calls run the same
kernels through an ``autograd.Function`` (:class:`_FusedFunction`), without the Python dispatch of the custom
operator. Derivatives of every order: when the backward is itself differentiated (``create_graph=True``) the
gradients come from autograd through the torch formula. Under torch.func transforms, forward-mode AD and ONNX
export (:func:`~hol.ops.registration.formula_only`) :func:`lagrange_linear` computes with the torch formula.
float16 and bfloat16 operands are computed in float32 and the result rounded once; under ``torch.autocast``
the operator computes in the autocast dtype, as ``nn.Linear`` does.
"""
from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

from . import loader
from .lagrange import (
    EXTRAPOLATIONS,
    active_basis,
    expand_active,
    fold_segment_coordinate,
    lagrange_basis_derivative,
    locate,
)
from .registration import (
    ACCUMULATION,
    KernelLookup,
    autocast_dtype,
    define_operator,
    formula_only,
    kernel_or_formula,
)

EXTRAPOLATION_CODES = {"polynomial": 0, "clamp": 1, "linear": 2, "mirror": 3}
"""The codes of the extrapolations in the C++ and Triton kernels."""
MAX_NODES = 32
"""The largest ``n`` the C++ and Triton kernels take; larger ``n`` use the torch formula."""

__all__ = ["MAX_NODES", "extension", "lagrange_linear", "lagrange_linear_reference", "register_kernels"]


def extension():
    """The C++ kernels (operators ``torch.ops.hol_cpu.lagrange_linear_forward``, ``_backward`` and
    ``_instruction_sets``), or ``None`` where they cannot be built or ``HOL_LAGRANGE_CPP=0``."""
    if loader.load("lagrange_linear", "HOL_LAGRANGE_CPP", python_module=False) is None:
        return None
    return torch.ops.hol_cpu


# ------------------------------------------------------------------------------------------------ entries


def lagrange_linear(x: Tensor, scale: Tensor, shift: Tensor, weight: Tensor, transform: Tensor, *,
                    segments: int, continuous: bool, extrapolation: str = "polynomial",
                    bias: Tensor | None = None) -> Tensor:
    """``y[..., o] = sum_i sum_k phi_k(t_i) weight[o, i, s_i stride + k] (+ bias[o])`` by the fused operator
    (module docstring).

    Shapes: ``x [..., I]``, ``scale [I]``, ``shift [I]``, ``weight [O, I, K]`` with ``K = (n-1) S + 1``
    (``continuous``) or ``n S``, ``transform [n, n]``, ``bias [O]`` -> ``[..., O]`` in ``weight``'s dtype,
    computed in it, float16 and bfloat16 in float32 and rounded once (every operand is cast to the computing
    dtype); under ``torch.autocast`` in the autocast dtype (a float64 weight stays float64).

    Weight layout: any. A weight stored links-major, a contiguous ``[I, K, O]`` seen as ``[O, I, K]``
    (``w.permute(1, 2, 0).contiguous().permute(2, 0, 1)``), with ``O`` a multiple of 16 (float32) or 8
    (float64), is read in place by the C++ kernels and gets its gradient in the same layout, which autograd
    keeps without a copy: the weight is not packed and its gradient not unpacked at every step. Same values,
    bit for bit (measured fwd+bwd of the kernels, ``I = O = 256``, ``n = 5``, ``S = 64``, 1024 samples,
    float32, Intel Xeon, 1 thread: 49.7 ms contiguous, 41.4 ms links-major).

    Raises:
        ValueError: shapes that do not fit together, non-floating tensors, ``segments`` not an integer
            ``>= 1`` or an unknown ``extrapolation``.

    Examples::

        >>> import torch
        >>> from hol.ops.lagrange import lagrange_transform
        >>> x, weight = torch.rand(8, 3) * 2 - 1, torch.randn(4, 3, 9)
        >>> scale = shift = torch.full((3,), 1.0)  # the domain [-1, 1] onto [0, S] = [0, 2]
        >>> lagrange_linear(x, scale, shift, weight, lagrange_transform(5).float(), segments=2,
        ...                 continuous=True).shape
        torch.Size([8, 4])
    """
    geometry = (segments, continuous, extrapolation)
    return _linear(x, scale, shift, weight, transform, geometry, bias, fused=True)


def lagrange_linear_reference(x: Tensor, scale: Tensor, shift: Tensor, weight: Tensor, transform: Tensor, *,
                              segments: int, continuous: bool, extrapolation: str = "polynomial",
                              bias: Tensor | None = None) -> Tensor:
    """:func:`lagrange_linear` by plain differentiable torch ops (the dense basis expansion ``[B, I, K]``
    and a matrix product): derivatives of every order, forward-mode AD, torch.func transforms, ONNX export,
    any device. Same arguments, shapes, dtypes and errors as :func:`lagrange_linear`."""
    geometry = (segments, continuous, extrapolation)
    return _linear(x, scale, shift, weight, transform, geometry, bias, fused=False)


def _linear(x: Tensor, scale: Tensor, shift: Tensor, weight: Tensor, transform: Tensor,
            geometry: tuple[int, bool, str], bias: Tensor | None, fused: bool) -> Tensor:
    _check(x, scale, shift, weight, transform, geometry, bias)
    result = autocast_dtype(x.device.type)  # computed in the autocast dtype, as nn.Linear (float64 stays)
    if result is None or weight.dtype == torch.float64:
        result = weight.dtype  # a layer's output has its weights' dtype
    compute = ACCUMULATION[result]
    leading, inputs = x.shape[:-1], x.shape[-1]
    rows = math.prod(leading)  # not Size.numel(), which would fix a symbolic batch to its example value
    operands = [t if t.dtype == compute else t.to(compute)
                for t in (x.reshape(rows, inputs), scale, shift, weight, transform)]
    if not fused or formula_only():  # torch.func transforms, forward-mode AD, ONNX export: the torch formula
        y = _reference_values(operands[0], operands[1], operands[2], operands[3], operands[4], *geometry)
    elif _eager_kernels(operands[0], transform.shape[0]):
        y = _FusedFunction.apply(*operands, *geometry)
    else:
        y = torch.ops.hol.lagrange_linear(*operands, *geometry)
    if bias is not None:
        y = y + (bias if bias.dtype == compute else bias.to(compute))
    y = y.reshape(*leading, weight.shape[0])
    return y if y.dtype == result else y.to(result)  # half types: rounded once


def _check(x: Tensor, scale: Tensor, shift: Tensor, weight: Tensor, transform: Tensor, geometry: tuple,
           bias: Tensor | None) -> None:
    segments, continuous, extrapolation = geometry
    if not isinstance(segments, int) or isinstance(segments, bool) or segments < 1:
        raise ValueError(f"segments must be an integer >= 1, got {segments!r}")
    if extrapolation not in EXTRAPOLATIONS:
        raise ValueError(f"extrapolation must be one of {', '.join(EXTRAPOLATIONS)}, got {extrapolation!r}")
    tensors = {"x": x, "scale": scale, "shift": shift, "weight": weight, "transform": transform, "bias": bias}
    for name, tensor in tensors.items():
        if tensor is not None and not tensor.is_floating_point():
            raise ValueError(f"{name} must be a floating tensor, got {tensor.dtype}")
    if x.dim() < 1:
        raise ValueError("x must have at least one dimension [..., I]")
    if transform.dim() != 2 or transform.shape[0] != transform.shape[1] or transform.shape[0] < 1:
        raise ValueError(f"transform must be [n, n], got shape {tuple(transform.shape)}")
    inputs, n = x.shape[-1], transform.shape[0]
    width = (n - 1) * segments + 1 if continuous else n * segments
    if weight.dim() != 3 or weight.shape[1] != inputs or weight.shape[2] != width:
        raise ValueError(f"weight must be [O, {inputs}, {width}] (I = {inputs}, n = {n}, segments = "
                         f"{segments}, continuous = {continuous}), got shape {tuple(weight.shape)}")
    for name, tensor in (("scale", scale), ("shift", shift)):
        if tensor.shape != (inputs,):
            raise ValueError(f"{name} must be [I] = [{inputs}], got shape {tuple(tensor.shape)}")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"bias must be [O] = [{weight.shape[0]}], got shape {tuple(bias.shape)}")


# ------------------------------------------------------------------------------------------ torch formula


def _expansion(x: Tensor, scale: Tensor, shift: Tensor, transform: Tensor, segments: int, continuous: bool,
               extrapolation: str, width: int) -> Tensor:
    """The dense basis expansion ``E[b, i, m]`` at the segment coordinates ``x scale + shift``. Shape
    ``[B, I, K]``."""
    phi, base = active_basis(x * scale + shift, transform, segments, continuous, extrapolation)
    return expand_active(phi, base, width)


def _reference_values(x: Tensor, scale: Tensor, shift: Tensor, weight: Tensor, transform: Tensor,
                      segments: int, continuous: bool, extrapolation: str) -> Tensor:
    """``y [B, O]`` from ``x [B, I]`` by differentiable torch ops."""
    expansion = _expansion(x, scale, shift, transform, segments, continuous, extrapolation, weight.shape[2])
    return expansion.flatten(1) @ weight.flatten(1).T


def _fold_slope(u: Tensor, segments: int, extrapolation: str) -> Tensor:
    """``d fold / d u`` at the unfolded ``u``: 1; ``clamp``: 1 on ``[0, S]``, else 0; ``mirror``:
    ``-sign(remainder(u, 2S) - S)``, NaN at a NaN ``u`` (as the kernels and autograd through the fold give;
    ``torch.sign(nan)`` is 0)."""
    if extrapolation == "clamp":
        return ((u >= 0) & (u <= segments)).to(u.dtype)
    if extrapolation == "mirror":
        return torch.where(u.isnan(), u, -torch.sign(torch.remainder(u, 2 * segments) - segments))
    return torch.ones_like(u)


def _reference_gradients(grad_y: Tensor, x: Tensor, scale: Tensor, shift: Tensor, weight: Tensor,
                         transform: Tensor, segments: int, continuous: bool, extrapolation: str, x_grad: bool,
                         weight_grad: bool) -> tuple[Tensor, Tensor]:
    """``(d x [B, I], d weight [O, I, K])`` of ``sum(grad_y * y)`` by explicit torch formulas (no autograd,
    which the backward operator's implementations cannot use), each an empty tensor where not asked for."""
    n, width = transform.shape[0], weight.shape[2]
    grad_x, grad_weight = x.new_empty(0), weight.new_empty(0)
    if weight_grad:
        expansion = _expansion(x, scale, shift, transform, segments, continuous, extrapolation, width)
        grad_weight = (grad_y.T @ expansion.flatten(1)).reshape(weight.shape)
    if x_grad:
        u = x * scale + shift
        s, t = locate(fold_segment_coordinate(u, segments, extrapolation), segments)
        slope = lagrange_basis_derivative(t.clamp(-1, 1) if extrapolation == "linear" else t, transform)
        links = (grad_y @ weight.flatten(1)).reshape(*x.shape, width)  # sum_o grad[b, o] weight[o, i, m]
        if segments > 1:
            stride = n - 1 if continuous else n
            offsets = (s.long() * stride).unsqueeze(-1) + torch.arange(n, device=s.device)
            links = links.gather(-1, offsets)
        fold = _fold_slope(u, segments, extrapolation)
        grad_x = torch.where(fold == 0, 0, (slope * links).sum(-1) * (2 * scale) * fold)
    return grad_x, grad_weight


# -------------------------------------------------------------------------------------------------- operators


def _forward_formula(x: Tensor, scale: Tensor, shift: Tensor, weight: Tensor, transform: Tensor,
                     segments: int, continuous: bool, extrapolation: str) -> Tensor:
    """``y [B, O]`` for ``x [B, I]`` (operands in one float dtype) by the torch formula."""
    return _reference_values(x, scale, shift, weight, transform, segments, continuous, extrapolation)


def _kernels_take(x: Tensor, transform: Tensor) -> bool:
    """Whether the C++ kernels take these operands (float32 or float64, ``n <=`` :data:`MAX_NODES`)."""
    return x.dtype in (torch.float32, torch.float64) and transform.shape[0] <= MAX_NODES


def _kernel_forward(kernels, x, scale, shift, weight, transform, segments, continuous,
                    extrapolation) -> Tensor:
    return kernels.lagrange_linear_forward(
        x.contiguous(), scale.contiguous(), shift.contiguous(), weight, transform.contiguous(),
        segments, continuous, EXTRAPOLATION_CODES[extrapolation])


def _kernel_backward(kernels, grad_y, x, scale, shift, weight, transform, segments, continuous, extrapolation,
                     x_grad, weight_grad) -> tuple[Tensor, Tensor]:
    return kernels.lagrange_linear_backward(
        grad_y.contiguous(), x.contiguous(), scale.contiguous(), shift.contiguous(), weight,
        transform.contiguous(), segments, continuous, EXTRAPOLATION_CODES[extrapolation], x_grad, weight_grad)


def _forward_cpu():
    kernels = extension()
    if kernels is None:
        return None

    def forward(x, scale, shift, weight, transform, *geometry):
        if not _kernels_take(x, transform):
            return _forward_formula(x, scale, shift, weight, transform, *geometry)
        return _kernel_forward(kernels, x, scale, shift, weight, transform, *geometry)

    return forward


def _forward_fake(x, scale, shift, weight, transform, segments, continuous, extrapolation):
    return x.new_empty(x.shape[0], weight.shape[0])


def _forward_flops(x_shape, scale_shape, shift_shape, weight_shape, transform_shape, *args, **kwargs) -> int:
    """FLOPs of the forward (2 per multiply-add, as torch counts ``aten.mm``): the basis values, ``n^2``
    multiply-adds per sample and input, and their product with the weights, ``B I n O``."""
    (batch, inputs), n = x_shape, transform_shape[0]
    return 2 * batch * inputs * n * (n + weight_shape[0])


def _backward_formula(grad_y: Tensor, x: Tensor, scale: Tensor, shift: Tensor, weight: Tensor,
                      transform: Tensor, segments: int, continuous: bool, extrapolation: str, x_grad: bool,
                      weight_grad: bool) -> tuple[Tensor, Tensor]:
    """``(d x [B, I], d weight [O, I, K])`` by the torch formula, each an empty tensor where not asked
    for."""
    return _reference_gradients(grad_y, x, scale, shift, weight, transform, segments, continuous,
                                extrapolation, x_grad, weight_grad)


def _backward_cpu():
    kernels = extension()
    if kernels is None:
        return None

    def backward(grad_y, x, scale, shift, weight, transform, *rest):
        if not _kernels_take(x, transform):
            return _backward_formula(grad_y, x, scale, shift, weight, transform, *rest)
        grad_x, grad_weight = _kernel_backward(kernels, grad_y, x, scale, shift, weight, transform, *rest)
        # the operator's gradients are contiguous, as its fake says (torch.compile checks the strides); only
        # the eager path (_FusedFunction) keeps a links-major weight's gradient in place
        return grad_x, grad_weight.contiguous()

    return backward


def _backward_fake(grad_y, x, scale, shift, weight, transform, segments, continuous, extrapolation, x_grad,
                   weight_grad):
    return x.new_empty(x.shape if x_grad else (0,)), weight.new_empty(weight.shape if weight_grad else (0,))


def _backward_flops(grad_shape, x_shape, scale_shape, shift_shape, weight_shape, transform_shape, segments,
                    continuous, extrapolation, x_grad, weight_grad, *args, **kwargs) -> int:
    """FLOPs of the backward: per gradient asked for, the basis values or their derivatives again and a
    product of ``B I n O`` multiply-adds."""
    (batch, inputs), n = x_shape, transform_shape[0]
    return 2 * batch * inputs * n * (n + weight_shape[0]) * (int(x_grad) + int(weight_grad))


@functools.cache
def _triton():
    """The Triton kernels (:mod:`hol.ops.lagrange_linear_triton`), or ``None`` where Triton cannot be
    imported."""
    try:
        from . import lagrange_linear_triton
    except ImportError:
        return None
    return lagrange_linear_triton


def _triton_takes(operands: tuple[Tensor, ...], transform: Tensor) -> bool:
    """Whether the Triton kernels take these operands: all float32 or all float64, ``n <=``
    :data:`MAX_NODES`."""
    dtype = operands[0].dtype
    return (dtype in (torch.float32, torch.float64) and transform.shape[0] <= MAX_NODES
            and all(tensor.dtype == dtype for tensor in operands))


def _forward_triton():
    """The forward on CUDA: the Triton kernel, the torch formula for the operands it does not take; ``None``
    without Triton."""
    kernels = _triton()
    if kernels is None:
        return None

    def forward(x, scale, shift, weight, transform, *geometry):
        if not _triton_takes((x, scale, shift, weight, transform), transform):
            return _forward_formula(x, scale, shift, weight, transform, *geometry)
        return kernels.forward(x, scale, shift, weight, transform, *geometry)

    return forward


def _backward_triton():
    """The backward on CUDA: the Triton kernels, the torch formula for the operands they do not take;
    ``None`` without Triton."""
    kernels = _triton()
    if kernels is None:
        return None

    def backward(grad_y, x, scale, shift, weight, transform, *rest):
        if not _triton_takes((grad_y, x, scale, shift, weight, transform), transform):
            return _backward_formula(grad_y, x, scale, shift, weight, transform, *rest)
        return kernels.backward(grad_y, x, scale, shift, weight, transform, *rest)

    return backward


_forward_op = define_operator("hol::lagrange_linear", _forward_formula, fake=_forward_fake,
                              flops=_forward_flops, kernels={"cpu": _forward_cpu, "cuda": _forward_triton})
_backward_op = define_operator("hol::lagrange_linear_backward", _backward_formula, fake=_backward_fake,
                               flops=_backward_flops,
                               kernels={"cpu": _backward_cpu, "cuda": _backward_triton})


def register_kernels(device_type: str, forward: KernelLookup, backward: KernelLookup) -> None:
    """Serve ``hol::lagrange_linear`` and ``hol::lagrange_linear_backward`` on ``device_type`` with
    ``forward()`` and ``backward()`` (called with the operators' arguments; looked up at every call, the torch
    formula where a lookup returns ``None``), replacing the device's kernels: e.g.
    ``register_kernels("cpu", _forward_triton, _backward_triton)`` serves CPU calls with the Triton kernels,
    as the interpreter check does (tests/helpers/triton_lagrange_check.py, with ``HOL_LAGRANGE_CPP=0`` so that
    eager CPU calls go through the operators rather than :class:`_FusedFunction`). Fake, FLOP and autograd
    registrations are shared by every device."""
    _forward_op.register_kernel(device_type)(kernel_or_formula(forward, _forward_formula))
    _backward_op.register_kernel(device_type)(kernel_or_formula(backward, _backward_formula))


def _setup_context(ctx, inputs, output) -> None:
    x, scale, shift, weight, transform, *geometry = inputs
    ctx.save_for_backward(x, scale, shift, weight, transform)
    ctx.geometry = tuple(geometry)


def _backward(ctx, grad_y):
    return _gradients(ctx, grad_y, fused_backward=torch.ops.hol.lagrange_linear_backward)


_forward_op.register_autograd(_backward, setup_context=_setup_context)


def _gradients(ctx, grad_y: Tensor, fused_backward) -> tuple[Tensor | None, ...]:
    """The gradients of the operator's 8 arguments from the context ``_setup_context`` fills: by
    ``fused_backward`` (the backward operator, or the C++ kernel itself: same arguments); where the backward
    is being differentiated (``create_graph=True``), by autograd through the torch formula, so that
    derivatives of every order are exact; under torch.func transforms (``is_grads_batched``, vectorized
    jacobians) by the explicit torch formula, which they support."""
    x, scale, shift, weight, transform = ctx.saved_tensors
    x_grad, weight_grad = ctx.needs_input_grad[0], ctx.needs_input_grad[3]
    if not (x_grad or weight_grad):
        return (None,) * 8
    if torch.is_grad_enabled():
        wanted = [tensor for tensor, needed in ((x, x_grad), (weight, weight_grad)) if needed]
        y = _reference_values(x, scale, shift, weight, transform, *ctx.geometry)
        grads = list(torch.autograd.grad(y, wanted, grad_y, create_graph=True, allow_unused=True,
                                         materialize_grads=True))
        grad_x = grads.pop(0) if x_grad else None
        grad_weight = grads.pop(0) if weight_grad else None
    else:
        if torch._C._are_functorch_transforms_active():  # is_grads_batched, vectorized jacobians
            segments, continuous, extrapolation = ctx.geometry
            grad_x, grad_weight = _backward_formula(grad_y, x, scale, shift, weight, transform, segments,
                                                    continuous, extrapolation, x_grad, weight_grad)
        else:
            grad_x, grad_weight = fused_backward(grad_y, x, scale, shift, weight, transform, *ctx.geometry,
                                                 x_grad, weight_grad)
    return (grad_x if x_grad else None, None, None, grad_weight if weight_grad else None, None, None, None,
            None)


# ----------------------------------------------------------------------------------------------- eager path


def _eager_kernels(x: Tensor, n: int) -> bool:
    """Whether :func:`lagrange_linear` calls the C++ kernels directly (:class:`_FusedFunction`): eager CPU
    calls the kernels take, where they are built. ``torch.compile``, ``torch.export`` and ``torch.jit.trace``
    record the operator instead (a traced Function could not be saved)."""
    recording = torch.compiler.is_compiling() or torch.jit.is_tracing()
    return (not recording and x.device.type == "cpu" and n <= MAX_NODES
            and x.dtype in (torch.float32, torch.float64) and extension() is not None)


class _FusedFunction(torch.autograd.Function):
    """The operator with its C++ kernels called directly, for eager CPU calls: the same forward, backward
    and derivatives of every order as ``hol::lagrange_linear``, without the Python dispatch of a custom
    operator and its autograd (measured ~100 us per training step, as much as the kernels of a 32 x 32 layer
    on 256 samples)."""

    @staticmethod
    def forward(ctx, x, scale, shift, weight, transform, segments, continuous, extrapolation):
        ctx.save_for_backward(x, scale, shift, weight, transform)  # the inputs, as create_graph needs them
        ctx.geometry = (segments, continuous, extrapolation)
        return _kernel_forward(extension(), x, scale, shift, weight, transform, segments, continuous,
                               extrapolation)

    @staticmethod
    def backward(ctx, grad_y):
        kernels = extension()

        def fused_backward(*arguments):
            return _kernel_backward(kernels, *arguments)

        return _gradients(ctx, grad_y, fused_backward)
