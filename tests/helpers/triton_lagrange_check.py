"""The Triton kernels of the fused Lagrange operator on CPU tensors, under Triton's interpreter.

Run by tests/ops/test_lagrange_linear_triton.py in a subprocess with ``TRITON_INTERPRET=1`` (the variable must
be set before the kernels are defined, so not in the test process) and ``HOL_LAGRANGE_CPP=0`` (so that eager
CPU calls go through ``torch.ops.hol.lagrange_linear`` rather than the C++ kernels' ``_FusedFunction``). The
Triton kernels are registered as the CPU implementation of both operators
(``lagrange_linear.register_kernels`` with the lookups that serve CUDA), so every check goes through the
operators as a CUDA caller would: the ``lagrange_linear`` entry and ``torch.ops.hol``. Results are compared
with the operator's definition written out independently (tests/ops/test_lagrange_linear.py: Lagrange
products, dense expansion, einsum; derivatives by autograd) in float64 to 1e-12, and with finite differences
(gradcheck, gradgradcheck); a counter makes sure the Triton kernels did the work. Exits with an assertion
error at the first mismatch.
"""
from __future__ import annotations

import os
from collections import Counter

import numpy as np
import torch
import triton
import triton.language as tl

from hol.layers import fc
from hol.ops import lagrange_linear as fused
from hol.ops.lagrange import EXTRAPOLATIONS, fold_segment_coordinate, locate
from hol.ops.lagrange_linear_triton import _remainder_from
from tests.ops.test_lagrange_linear import definition, operands

f64 = torch.float64
TOL = 1e-12
OPS = torch.ops.hol
calls: Counter = Counter()


def count_calls(kernels) -> None:
    """Count every call of the Triton module's entries ``forward`` and ``backward`` in :data:`calls` (the
    lookups that serve the operators read them from the module at every call)."""

    def counted(name, function):
        def run(*args):
            calls[name] += 1
            return function(*args)
        return run

    kernels.forward = counted("forward", kernels.forward)
    kernels.backward = counted("backward", kernels.backward)


def close(got, expected, tol=TOL, what=""):
    """Equal to ``tol`` times the larger of 1 and the expected tensor's largest finite magnitude, NaN where
    the expected tensor is NaN (and only there)."""
    assert got.shape == expected.shape and got.dtype == expected.dtype, (what, got.shape, expected.shape,
                                                                        got.dtype, expected.dtype)
    assert torch.equal(got.isnan(), expected.isnan()), f"{what}: NaN at other places"
    finite = expected[~expected.isnan()]
    scale = max(1.0, finite.abs().max().item()) if finite.numel() else 1.0
    error = (got - expected).nan_to_num(nan=0.0).abs().max().item() if got.numel() else 0.0
    assert error <= tol * scale, f"{what}: max error {error:.3g} > {tol * scale:.3g}"


def entry(kind: str, geometry: dict, scale, shift, transform):
    """``(x, weight) -> y`` through the ``lagrange_linear`` entry or the dispatcher operator."""
    if kind == "entry":
        return lambda x, weight: fused.lagrange_linear(x, scale, shift, weight, transform, **geometry)
    return lambda x, weight: OPS.lagrange_linear(x, scale, shift, weight, transform, geometry["segments"],
                                                 geometry["continuous"], geometry["extrapolation"])


def defined(geometry: dict, scale, shift, n: int):
    """``(x, weight) -> y`` by the definition."""
    return lambda x, weight: definition(x, scale, shift, weight, n, **geometry)


def values_and_grads(function, x, weight, grad_y):
    x, weight = x.detach().requires_grad_(), weight.detach().requires_grad_()
    y = function(x, weight)
    return (y, *torch.autograd.grad(y, (x, weight), grad_y, allow_unused=True, materialize_grads=True))


def compare(batch, inputs, outputs, n, segments, continuous, extrapolation, kind="entry", nan=False, seed=0,
            spread=1.6):
    """Values, x and weight gradients through ``kind`` against the definition (per-input domains, inputs
    outside them; with ``nan`` a NaN input too)."""
    x, scale, shift, weight, transform = operands(batch, inputs, outputs, n, segments, continuous, seed=seed,
                                                  spread=spread)
    if nan and batch:
        x[batch // 2, inputs - 1] = float("nan")
    grad_y = torch.randn(batch, outputs, dtype=f64, generator=torch.Generator().manual_seed(seed + 1))
    geometry = {"segments": segments, "continuous": continuous, "extrapolation": extrapolation}
    before = calls.copy()
    got = values_and_grads(entry(kind, geometry, scale, shift, transform), x, weight, grad_y)
    assert calls["forward"] == before["forward"] + 1 and calls["backward"] == before["backward"] + 1, \
        "the Triton kernels did not run"
    expected = values_and_grads(defined(geometry, scale, shift, n), x, weight, grad_y)
    case = f"{kind} B={batch} I={inputs} O={outputs} n={n} S={segments} {continuous} {extrapolation}"
    for name, a, b in zip(("y", "d x", "d weight"), got, expected, strict=True):
        close(a, b, what=f"{case}: {name}")


def check_definitions():
    """Every extrapolation, continuous and discontinuous, through both entries, over shapes that cross the
    tiles (forward: 128 / NP samples, 32 outputs; input gradient: 64 / NP samples; weight gradient: 16 link
    values, 32 or 16 samples per step) and degenerate ones, inputs outside their domains and NaN."""
    cases = [  # batch, inputs, outputs, n, segments
        (37, 3, 20, 5, 8),   # K = 33 (continuous): 3 link-value tiles; 3 forward, 5 input-gradient tiles
        (40, 2, 37, 4, 3),   # more outputs than one tile
        (9, 2, 5, 9, 2),     # n = 9: 16 padded nodes, 8 samples per forward program
        (70, 1, 3, 3, 1),    # S = 1, I = 1: every sample in one segment, several sample steps
        (5, 3, 1, 2, 4),     # O = 1, n = 2
        (1, 3, 2, 4, 6),     # B = 1
        (6, 2, 3, 1, 3),     # n = 1: constant links (continuous: K = 1, every segment on one value)
    ]
    for extrapolation in EXTRAPOLATIONS:
        for continuous in (True, False):
            for index, (batch, inputs, outputs, n, segments) in enumerate(cases):
                kind = ("entry", "operator")[index % 2]
                compare(batch, inputs, outputs, n, segments, continuous, extrapolation, kind=kind,
                        nan=index % 3 == 0 and n > 1, seed=index)


def check_degenerate_shapes():
    """B = 0, I = 0 and O = 0 through both entries: zeros, zero gradients (the kernels' entries return them
    without a launch)."""
    for kind in ("entry", "operator"):
        for batch, inputs, outputs in ((0, 3, 4), (4, 0, 3), (4, 3, 0)):
            x, scale, shift, weight, transform = operands(batch, inputs, outputs, 3, 2, True)
            geometry = {"segments": 2, "continuous": True, "extrapolation": "clamp"}
            function = entry(kind, geometry, scale, shift, transform)
            got = values_and_grads(function, x, weight, torch.ones(batch, outputs, dtype=f64))
            for tensor, shape in zip(got, ((batch, outputs), x.shape, weight.shape), strict=True):
                assert tensor.shape == shape and not tensor.any(), (kind, batch, inputs, outputs)


def check_repeated_segments():
    """Many samples in two neighbouring segments that share a node (continuous) or not, spread over several
    sample steps of one range, and samples exactly on the breakpoints: every sample adds to the weight
    gradient."""
    n, segments, batch = 4, 3, 90
    for continuous in (True, False):
        x, scale, shift, weight, transform = operands(batch, 2, 5, n, segments, continuous)
        # input 0: u in segment 1 or 2 (around the shared node u = 2), a few exactly on it and on u = 1
        u = torch.where(torch.arange(batch) % 2 == 0, 1.5, 2.5) + torch.linspace(-0.4, 0.4, batch, dtype=f64)
        u[::7], u[3::11] = 2.0, 1.0
        x[:, 0] = (u - shift[0]) / scale[0]
        grad_y = torch.randn(batch, 5, dtype=f64, generator=torch.Generator().manual_seed(2))
        for extrapolation in ("polynomial", "clamp"):
            geometry = {"segments": segments, "continuous": continuous, "extrapolation": extrapolation}
            expected = values_and_grads(defined(geometry, scale, shift, n), x, weight, grad_y)
            for kind in ("entry", "operator"):
                got = values_and_grads(entry(kind, geometry, scale, shift, transform), x, weight, grad_y)
                for name, a, b in zip(("y", "d x", "d weight"), got, expected, strict=True):
                    close(a, b, what=f"repeated {continuous} {extrapolation} {kind}: {name}")
        # every sample adds to input 0's weight gradient: its values sum to sum_b grad_y[b] (sum_k phi_k is 1)
        geometry = {"segments": segments, "continuous": continuous, "extrapolation": "polynomial"}
        function = entry("entry", geometry, scale, shift, transform)
        grad_weight = values_and_grads(function, x, weight, grad_y)[2]
        close(grad_weight[:, 0].sum(-1), grad_y.sum(0), what="partition of unity")


@triton.jit
def _remainder_kernel(u_ptr, quotient_ptr, out_ptr, period, size, BLOCK: tl.constexpr):
    offs = tl.arange(0, BLOCK)
    mask = offs < size
    u = tl.load(u_ptr + offs, mask=mask, other=0)
    out = _remainder_from(u, tl.cast(period, u.dtype), tl.load(quotient_ptr + offs, mask=mask, other=0))
    tl.store(out_ptr + offs, out, mask=mask)


def check_segments_exactly():
    """The kernels' segments equal torch's (:func:`locate` of :func:`fold_segment_coordinate`) exactly: on
    the breakpoints, one ulp either side, far outside the domain (``mirror``'s remainder, many periods away)
    and for NaN and infinite inputs; so does the remainder from an inexact quotient."""
    kernels = fused._triton()
    segments = 3
    for dtype in (torch.float32, f64):
        breaks = torch.arange(-4 * segments, 4 * segments + 1, dtype=dtype)
        far = torch.tensor([1e3, 1e5, 6e5 + 3, -6e5 - 3, 2 * segments * 12345 + segments], dtype=dtype)
        u = torch.cat((breaks, breaks.nextafter(breaks + 1), breaks.nextafter(breaks - 1), far,
                       far.nextafter(far + 1), far.nextafter(far - 1),
                       torch.tensor([float("nan"), float("inf"), -float("inf")], dtype=dtype)))
        x = u.reshape(-1, 1)
        one, zero = torch.ones(1, dtype=dtype), torch.zeros(1, dtype=dtype)
        for extrapolation in EXTRAPOLATIONS:
            with np.errstate(invalid="ignore"):  # inf - inf in the interpreter's numpy
                got = kernels.segments_of(x, one, zero, segments, extrapolation)
            s, _ = locate(fold_segment_coordinate(x, segments, extrapolation), segments)
            assert torch.equal(got, s.long()), (dtype, extrapolation, x[got != s.long()])
        # the remainder from quotients a few ulps off (a GPU's float32 division is approximate, and crosses
        # integers where the interpreter's correctly rounded one does not): still torch.remainder's, bitwise
        period = 2 * segments
        finite = u[u.isfinite()]
        rounded = (finite.double() / period).to(dtype)
        for direction in (float("inf"), -float("inf")):
            quotient = rounded
            for _ in range(3):
                quotient = quotient.nextafter(torch.full_like(quotient, direction))
                out = torch.empty_like(finite)
                _remainder_kernel[(1,)](finite, quotient, out, period, finite.numel(),
                                        BLOCK=triton.next_power_of_2(finite.numel()))
                assert torch.equal(out, torch.remainder(finite, period)), (dtype, direction)


def check_derivatives_of_every_order():
    """gradcheck and gradgradcheck in x and weight through both entries, every extrapolation, continuous and
    discontinuous (the first derivatives from the Triton backward; the second from autograd through the torch
    formula, as the operator's create_graph path)."""
    for continuous in (True, False):
        for index, extrapolation in enumerate(EXTRAPOLATIONS):
            x, scale, shift, weight, transform = operands(4, 2, 3, 4, 3, continuous, spread=1.4, seed=3)
            geometry = {"segments": 3, "continuous": continuous, "extrapolation": extrapolation}
            function = entry(("entry", "operator")[index % 2], geometry, scale, shift, transform)
            arguments = (x.requires_grad_(), weight.requires_grad_())
            before = calls["backward"]
            assert torch.autograd.gradcheck(function, arguments, fast_mode=True)
            assert calls["backward"] > before, "the Triton backward did not run"
            assert torch.autograd.gradgradcheck(function, arguments, fast_mode=True)


def check_single_gradients():
    """The weight gradient alone and the input gradient alone, through autograd and through the backward
    operator (an empty tensor for the gradient not asked for)."""
    x, scale, shift, weight, transform = operands(30, 4, 5, 3, 5, False)
    grad_y = torch.randn(30, 5, dtype=f64, generator=torch.Generator().manual_seed(4))
    geometry = {"segments": 5, "continuous": False, "extrapolation": "mirror"}
    expected = values_and_grads(defined(geometry, scale, shift, 3), x, weight, grad_y)
    for needs in ((True, False), (False, True)):
        v, w = x.clone().requires_grad_(needs[0]), weight.clone().requires_grad_(needs[1])
        (got,) = torch.autograd.grad(fused.lagrange_linear(v, scale, shift, w, transform, **geometry),
                                     [v, w][needs[1]], grad_y)
        close(got, expected[1 + needs[1]], what=f"alone {needs}")
        before = calls["backward"]
        grad_x, grad_weight = OPS.lagrange_linear_backward(grad_y, x, scale, shift, weight, transform, 5,
                                                           False, "mirror", *needs)
        assert calls["backward"] == before + 1
        close(*((grad_x, expected[1]) if needs[0] else (grad_weight, expected[2])), what=f"operator {needs}")
        empty = grad_weight if needs[0] else grad_x
        assert empty.shape == (0,), empty.shape


def check_float32():
    """float32 operands against the float64 definition at the same (rounded) operands, within a float32
    bound; continuous links, so a sample that float32 rounding moves across a breakpoint changes little."""
    for extrapolation in EXTRAPOLATIONS:
        x, scale, shift, weight, transform = operands(70, 5, 40, 5, 6, True, spread=1.2)
        x, scale, shift, weight = (t.float() for t in (x, scale, shift, weight))
        grad_y = torch.randn(70, 40, generator=torch.Generator().manual_seed(5))
        geometry = {"segments": 6, "continuous": True, "extrapolation": extrapolation}
        before = calls.copy()
        got = values_and_grads(entry("entry", geometry, scale, shift, transform.float()), x, weight, grad_y)
        assert calls["forward"] == before["forward"] + 1 and calls["backward"] == before["backward"] + 1
        expected = values_and_grads(defined(geometry, scale.double(), shift.double(), 5), x.double(),
                                    weight.double(), grad_y.double())
        for name, a, b in zip(("y", "d x", "d weight"), got, expected, strict=True):
            assert a.dtype == torch.float32, name
            error = (a.double() - b).abs().max().item()
            bound = 64 * torch.finfo(torch.float32).eps * b.abs().max().item()  # measured: up to 19
            assert error <= bound, f"float32 {extrapolation} {name}: {error:.3g} > {bound:.3g}"


def check_determinism():
    """Repeats are bitwise equal, in torch's deterministic mode too (no atomics to refuse)."""
    x, scale, shift, weight, transform = operands(300, 3, 40, 5, 4, True)
    x, scale, shift, weight, transform = (t.float() for t in (x, scale, shift, weight, transform))
    x[:150, 1] = x[0, 1]  # half the samples of input 1 in one segment
    grad_y = torch.randn(300, 40, generator=torch.Generator().manual_seed(6))
    geometry = {"segments": 4, "continuous": True, "extrapolation": "polynomial"}
    function = entry("entry", geometry, scale, shift, transform)
    runs = []
    for deterministic in (False, True, True):
        torch.use_deterministic_algorithms(deterministic)
        try:
            runs.append(values_and_grads(function, x, weight, grad_y))
        finally:
            torch.use_deterministic_algorithms(False)
    for run in runs[1:]:
        assert all(torch.equal(a, b) for a, b in zip(runs[0], run, strict=True))


def check_layouts():
    """A weight stored links-major (a contiguous ``[I, K, O]`` seen as ``[O, I, K]``, read in place) and
    operands in other layouts: bitwise the values and gradients of contiguous operands; the weight gradient
    contiguous, as the operator's fake implementation says."""
    for dtype in (torch.float32, f64):
        x, scale, shift, weight, transform = (t.to(dtype) for t in operands(50, 3, 20, 5, 4, True))
        grad_y = torch.randn(50, 20, dtype=dtype, generator=torch.Generator().manual_seed(7))
        geometry = {"segments": 4, "continuous": True, "extrapolation": "mirror"}
        function = entry("entry", geometry, scale, shift, transform)
        expected = values_and_grads(function, x, weight, grad_y)
        links_major = weight.permute(1, 2, 0).contiguous().permute(2, 0, 1)
        strided = weight.transpose(0, 2).contiguous().transpose(0, 2)  # [K, I, O] storage
        x_t = x.T.contiguous().T
        for v, w in ((x, links_major), (x_t, strided), (x_t, weight)):
            got = values_and_grads(function, v, w, grad_y)
            assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=True)), (dtype, w.stride())
            assert got[2].is_contiguous(), got[2].stride()


def check_layer_and_fallbacks():
    """A fused layer (``fc(..., backend="fused")``, per-input domains) against its dense path: output, both
    gradients and the x-gradient's own gradient; more than :data:`MAX_NODES` nodes and float16 operands given
    to the operator directly take the torch formula, without the kernels."""
    torch.manual_seed(0)
    for extrapolation in EXTRAPOLATIONS:
        fused_layer = fc("continuous", 3, 2, n=4, segments=3, extrapolation=extrapolation, backend="fused",
                         dtype=f64)
        dense = fc("continuous", 3, 2, n=4, segments=3, extrapolation=extrapolation, backend="dense",
                   dtype=f64)
        with torch.no_grad():
            fused_layer.domain_centre.copy_(torch.tensor([0.1, -0.2, 0.0]))
            fused_layer.domain_width.copy_(torch.tensor([1.5, 2.5, 2.0]))
        dense.load_state_dict(fused_layer.state_dict())
        x = torch.linspace(-1.6, 1.6, 21, dtype=f64).reshape(7, 3).requires_grad_()
        results = []
        for layer in (fused_layer, dense):
            before = calls["forward"]
            y = layer(x)
            assert (calls["forward"] > before) == (layer is fused_layer)
            dx, dw = torch.autograd.grad(y.pow(2).sum(), (x, layer.weight), create_graph=True)
            (ddx,) = torch.autograd.grad(dx.pow(2).sum() + dw.sum(), x)
            results.append((y, dx, dw, ddx))
        for name, got, want in zip(("y", "d x", "d weight", "dd x"), *results, strict=True):
            close(got, want, tol=1e-10, what=f"layer {extrapolation}: {name}")
    before = calls.copy()
    n = fused.MAX_NODES + 1
    x, scale, shift, weight, transform = operands(5, 2, 3, n, 2, True)
    close(OPS.lagrange_linear(x, scale, shift, weight, transform, 2, True, "linear"),
          definition(x, scale, shift, weight, n, 2, True, "linear"), tol=1e-9, what="many nodes")
    x, scale, shift, weight, transform = operands(5, 2, 3, 4, 2, True)
    half = OPS.lagrange_linear(*(t.half() for t in (x, scale, shift, weight, transform)), 2, True, "clamp")
    assert half.dtype == torch.float16
    expected = definition(x, scale, shift, weight, 4, 2, True, "clamp")
    assert (half.double() - expected).abs().max() <= 1e-2 * expected.abs().max()
    assert calls == before, "the kernels ran on operands they do not take"


CHECKS = (check_definitions, check_degenerate_shapes, check_repeated_segments, check_segments_exactly,
          check_derivatives_of_every_order, check_single_gradients, check_float32, check_determinism,
          check_layouts, check_layer_and_fallbacks)


def main():
    assert os.environ.get("TRITON_INTERPRET") == "1", "run with TRITON_INTERPRET=1"
    assert os.environ.get("HOL_LAGRANGE_CPP") == "0" and fused.extension() is None, \
        "run with HOL_LAGRANGE_CPP=0 (eager CPU calls through the operators)"
    kernels = fused._triton()
    assert kernels is not None, "Triton cannot be imported"
    count_calls(kernels)
    fused.register_kernels("cpu", fused._forward_triton, fused._backward_triton)
    for check in CHECKS:
        check()
        print(f"{check.__name__}: ok", flush=True)
    assert calls["forward"] and calls["backward"], calls


if __name__ == "__main__":
    main()
