"""The fused piecewise Lagrange operator (hol.ops.lagrange_linear) against the dense definition.

The reference is the math written out independently of the operator's Chebyshev form: the Lagrange basis on
Chebyshev-Lobatto nodes as products ``prod_{j != k} (t - X_j) / (X_k - X_j)``, the segment geometry and the
extrapolations of the module docstring, the dense expansion ``[B, I, K]`` and an einsum with the weights, in
float64; its derivatives come from autograd. The C++ kernels are tested wherever they build (a test that
needs them says so when it skips).
"""
import math
import os
import subprocess
import sys

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from hol.ops import lagrange_linear as fused
from hol.ops.lagrange import EXTRAPOLATIONS, chebyshev_lobatto_nodes, lagrange_transform
from hol.ops.lagrange_linear import lagrange_linear, lagrange_linear_reference

f64 = torch.float64
TOL = 1e-12


# --- the definition -----------------------------------------------------------------------------------------

def product_basis(t, n):
    """``phi_k(t)`` and ``phi_k'(t)`` on Chebyshev-Lobatto nodes as products. Shapes ``[...] -> [..., n]``."""
    nodes = chebyshev_lobatto_nodes(n, dtype=t.dtype)
    values, slopes = [], []
    for k in range(n):
        others = [j for j in range(n) if j != k]
        value = torch.ones_like(t)
        for j in others:
            value = value * (t - nodes[j]) / (nodes[k] - nodes[j])
        slope = torch.zeros_like(t)
        for m in others:
            term = torch.ones_like(t) / (nodes[k] - nodes[m])
            for j in others:
                if j != m:
                    term = term * (t - nodes[j]) / (nodes[k] - nodes[j])
            slope = slope + term
        values.append(value)
        slopes.append(slope)
    return torch.stack(values, -1), torch.stack(slopes, -1)


def definition(x, scale, shift, weight, n, segments, continuous, extrapolation, bias=None):
    """``y [..., O]`` written out from the math, differentiable in ``x`` and ``weight`` by autograd."""
    u = x * scale + shift
    if extrapolation == "clamp":
        u = u.clamp(0, segments)
    elif extrapolation == "mirror":
        u = segments - (torch.remainder(u, 2 * segments) - segments).abs()
    s = u.detach().floor().nan_to_num(nan=0.0).clamp(0, segments - 1)
    t = 2 * (u - s) - 1
    if extrapolation == "linear":
        inside = t.clamp(-1, 1)
        values, slopes = product_basis(inside, n)
        phi = values + (t - inside).unsqueeze(-1) * slopes
    else:
        phi = product_basis(t, n)[0]
    stride = n - 1 if continuous else n
    index = (s.long() * stride).unsqueeze(-1) + torch.arange(n)
    expansion = phi.new_zeros(*phi.shape[:-1], weight.shape[2]).scatter(-1, index, phi)
    y = torch.einsum("...ik,oik->...o", expansion, weight)
    return y if bias is None else y + bias


def operands(batch, inputs, outputs, n, segments, continuous, *, dtype=f64, spread=1.6, seed=0):
    """x over [-spread, spread] (the domain is [-1, 1] before the per-input maps, which differ per input:
    domains of centre c and width w), the maps, a weight, the transform."""
    generator = torch.Generator().manual_seed(seed)
    x = (torch.rand(batch, inputs, generator=generator, dtype=f64) * 2 - 1) * spread
    centre = torch.rand(inputs, generator=generator, dtype=f64) * 0.4 - 0.2
    width = 1.6 + torch.rand(inputs, generator=generator, dtype=f64) * 0.8
    scale, shift = segments / width, segments / 2 - centre * segments / width
    width_k = (n - 1) * segments + 1 if continuous else n * segments
    weight = torch.randn(outputs, inputs, width_k, generator=generator, dtype=f64)
    transform = lagrange_transform(n)
    return [tensor.to(dtype) for tensor in (x, scale, shift, weight, transform)]


def values_and_grads(function, x, weight, grad_y):
    x = x.detach().requires_grad_()
    weight = weight.detach().requires_grad_()
    y = function(x, weight)
    return (y, *torch.autograd.grad(y, (x, weight), grad_y))


def assert_all_close(got, expected, tol=TOL):
    """Equal to ``tol`` times the larger of 1 and the expected tensor's largest magnitude."""
    for index, (a, b) in enumerate(zip(got, expected, strict=True)):
        assert a.shape == b.shape and a.dtype == b.dtype, (index, a.shape, b.shape, a.dtype, b.dtype)
        scale = max(1.0, b.abs().max().item()) if b.numel() else 1.0
        assert torch.allclose(a, b, atol=tol * scale, rtol=0), \
            f"output {index}: max diff {(a - b).abs().max():.3g}"


def compare(batch, inputs, outputs, n, segments, continuous, extrapolation, *, entry=lagrange_linear, seed=0):
    x, scale, shift, weight, transform = operands(batch, inputs, outputs, n, segments, continuous, seed=seed)
    grad_y = torch.randn(batch, outputs, dtype=f64, generator=torch.Generator().manual_seed(1))
    geometry = {"segments": segments, "continuous": continuous, "extrapolation": extrapolation}
    got = values_and_grads(lambda v, w: entry(v, scale, shift, w, transform, **geometry), x, weight, grad_y)
    expected = values_and_grads(lambda v, w: definition(v, scale, shift, w, n, segments, continuous,
                                                        extrapolation), x, weight, grad_y)
    assert_all_close(got, expected)


def cpp_or_skip():
    if fused.extension() is None:
        pytest.skip("lagrange_linear C++ kernels unavailable (no build, or HOL_LAGRANGE_CPP=0); the torch "
                    "formula serves CPU calls, tested through the same assertions")


# --- values and first derivatives ---------------------------------------------------------------------------

@pytest.mark.parametrize("continuous", [True, False], ids=["continuous", "discontinuous"])
@pytest.mark.parametrize("extrapolation", EXTRAPOLATIONS)
@pytest.mark.parametrize("batch, inputs, outputs, n, segments", [
    (37, 3, 20, 5, 8), (16, 4, 33, 7, 3), (9, 2, 40, 9, 2), (21, 5, 300, 3, 4), (5, 1, 1, 2, 1),
    (1, 3, 2, 4, 6),
])
def test_matches_the_definition_with_gradients(batch, inputs, outputs, n, segments, continuous,
                                               extrapolation):
    """Values, input and weight gradients against the definition in float64, inputs inside and outside their
    (per-input) domains; output counts that fill partial, single and several vector tiles."""
    compare(batch, inputs, outputs, n, segments, continuous, extrapolation)


@pytest.mark.parametrize("extrapolation", EXTRAPOLATIONS)
def test_torch_formula_matches_the_definition(extrapolation):
    compare(23, 3, 5, 4, 5, True, extrapolation, entry=lagrange_linear_reference)
    compare(23, 3, 5, 4, 5, False, extrapolation, entry=lagrange_linear_reference)


def test_many_segments_and_samples_split_in_chunks():
    """Batches larger than a chunk of the kernels, S large: every segment visited in several chunks; and
    fewer samples than 16 per segment, which the forward walks in sample order over a panel larger than L1."""
    compare(3000, 3, 24, 5, 64, True, "polynomial")
    compare(1500, 2, 17, 6, 32, False, "linear")
    compare(200, 5, 16, 5, 64, True, "mirror")


def test_float32_many_samples_inputs_and_outputs():
    x, scale, shift, weight, transform = operands(2048, 40, 150, 5, 8, True, spread=1.0)
    expected = definition(x, scale, shift, weight, 5, 8, True, "polynomial")
    y = lagrange_linear(x.float(), scale.float(), shift.float(), weight.float(), transform.float(),
                        segments=8, continuous=True)
    assert y.dtype == torch.float32
    assert (y.double() - expected).abs().max() <= 2e-5 * expected.abs().max()


def test_matches_the_continuous_layer_on_its_default_domain():
    """``fc("continuous", ...)`` on its default domain [-1, 1] (length 2) is the operator with
    ``scale = shift = S / 2``."""
    from hol.layers import fc

    torch.manual_seed(0)
    for extrapolation in EXTRAPOLATIONS:
        layer = fc("continuous", 4, 3, n=5, segments=6, extrapolation=extrapolation, bias=True).double()
        torch.nn.init.uniform_(layer.bias, -1, 1)
        x = torch.rand(11, 4, dtype=f64) * 3.2 - 1.6
        half = torch.full((4,), 3.0, dtype=f64)
        y = lagrange_linear(x, half, half, layer.weight, lagrange_transform(5), segments=6, continuous=True,
                            extrapolation=extrapolation, bias=layer.bias)
        assert_all_close([y], [layer(x)])


@pytest.mark.parametrize("leading, inputs, outputs", [((0,), 3, 4), ((1,), 3, 4), ((6,), 1, 4), ((6,), 3, 1),
                                                      ((2, 3), 3, 4), ((0, 2), 2, 3)])
def test_degenerate_shapes(leading, inputs, outputs):
    x, scale, shift, weight, transform = operands(math.prod(leading), inputs, outputs, 3, 2, True)
    x = x.reshape(*leading, inputs).requires_grad_()
    weight.requires_grad_()
    y = lagrange_linear(x, scale, shift, weight, transform, segments=2, continuous=True)
    assert y.shape == (*leading, outputs)
    expected = definition(x, scale, shift, weight, 3, 2, True, "polynomial")
    assert_all_close([y], [expected])
    y.sum().backward()
    assert x.grad.shape == x.shape and weight.grad.shape == weight.shape
    if x.numel() == 0:
        assert torch.equal(weight.grad, torch.zeros_like(weight))


def test_bias_non_contiguous_operands_and_leading_dimensions():
    x, scale, shift, weight, transform = operands(24, 5, 6, 4, 3, False)
    bias = torch.randn(6, dtype=f64)
    x_t = x.reshape(4, 6, 5).transpose(0, 1)  # non-contiguous [6, 4, 5]
    weight_t = weight.transpose(0, 1).contiguous().transpose(0, 1)  # non-contiguous [O, I, K]
    y = lagrange_linear(x_t, scale, shift, weight_t, transform, segments=3, continuous=False, bias=bias)
    assert_all_close([y], [definition(x_t, scale, shift, weight, 4, 3, False, "polynomial", bias)])


def test_nan_inputs_make_only_their_own_rows_nan():
    x, scale, shift, weight, transform = operands(5, 3, 4, 4, 3, True)
    x[2, 1] = float("nan")
    for extrapolation in EXTRAPOLATIONS:
        y = lagrange_linear(x, scale, shift, weight, transform, segments=3, continuous=True,
                            extrapolation=extrapolation)
        assert y[2].isnan().all() and not y[[0, 1, 3, 4]].isnan().any()


@pytest.mark.parametrize("extrapolation", EXTRAPOLATIONS)
def test_a_nan_input_gets_the_same_gradient_from_every_implementation(extrapolation):
    """The kernels, autograd through the dense formula and the explicit gradient formula (torch.func's) agree
    at a NaN input: NaN, except clamp's exact 0 (torch.clamp's gradient outside its range)."""
    x, scale, shift, weight, transform = operands(5, 3, 4, 4, 3, True)
    x[2, 1] = float("nan")
    grad_y = torch.ones(5, 4, dtype=f64)
    geometry = {"segments": 3, "continuous": True, "extrapolation": extrapolation}
    entries = (lagrange_linear, lagrange_linear_reference)
    gradients = [values_and_grads(lambda v, w, f=entry: f(v, scale, shift, w, transform, **geometry), x,
                                  weight, grad_y)[1] for entry in entries]
    explicit = fused._reference_gradients(grad_y, x, scale, shift, weight, transform, 3, True, extrapolation,
                                          True, False)
    gradients.append(explicit[0])
    for gradient in gradients:
        assert gradient[2, 1].isnan() != (extrapolation == "clamp")
        assert torch.equal(gradient.isnan(), gradients[0].isnan())
        finite = ~gradients[0].isnan()
        assert torch.allclose(gradient[finite], gradients[0][finite], rtol=0, atol=1e-12)


def test_clamp_gradient_is_zero_outside_and_mirror_is_periodic():
    x, scale, shift, weight, transform = operands(8, 2, 3, 4, 2, True)
    x = torch.tensor([[-5.0, 7.0], [0.1, -0.3]], dtype=f64, requires_grad=True)
    y = lagrange_linear(x, scale, shift, weight, transform, segments=2, continuous=True,
                        extrapolation="clamp")
    (grad,) = torch.autograd.grad(y.sum(), x)
    assert torch.equal(grad[0], torch.zeros(2, dtype=f64)) and (grad[1] != 0).all()
    period = 2 * 2 / scale  # u -> u + 2S
    mirror = {"segments": 2, "continuous": True, "extrapolation": "mirror"}
    y0 = lagrange_linear(x.detach(), scale, shift, weight, transform, **mirror)
    y1 = lagrange_linear(x.detach() + 3 * period, scale, shift, weight, transform, **mirror)
    assert_all_close([y1], [y0], tol=1e-10)


# --- higher derivatives -------------------------------------------------------------------------------------

@pytest.mark.parametrize("continuous", [True, False], ids=["continuous", "discontinuous"])
@pytest.mark.parametrize("extrapolation", EXTRAPOLATIONS)
def test_gradcheck_and_gradgradcheck_in_x_and_weight(continuous, extrapolation):
    x, scale, shift, weight, transform = operands(6, 3, 4, 4, 3, continuous, spread=1.4, seed=3)
    geometry = {"segments": 3, "continuous": continuous, "extrapolation": extrapolation}

    def function(v, w):
        return lagrange_linear(v, scale, shift, w, transform, **geometry)

    arguments = (x.requires_grad_(), weight.requires_grad_())
    assert torch.autograd.gradcheck(function, arguments)
    assert torch.autograd.gradgradcheck(function, arguments)


def test_third_derivative_in_x_matches_the_definition():
    x, scale, shift, weight, transform = operands(5, 3, 2, 5, 4, True, seed=5)
    results = []
    geometry = {"segments": 4, "continuous": True}
    for function in (lambda v: lagrange_linear(v, scale, shift, weight, transform, **geometry),
                     lambda v: definition(v, scale, shift, weight, 5, 4, True, "polynomial")):
        v = x.clone().requires_grad_()
        (first,) = torch.autograd.grad(function(v).square().sum(), v, create_graph=True)
        (second,) = torch.autograd.grad(first.sin().sum(), v, create_graph=True)
        (third,) = torch.autograd.grad(second.sum(), v)
        results.append((first, second, third))
    assert_all_close(results[0], results[1], tol=1e-10)


def test_weight_gradient_alone_and_input_gradient_alone():
    x, scale, shift, weight, transform = operands(30, 4, 5, 3, 5, False)
    grad_y = torch.randn(30, 5, dtype=f64)
    geometry = {"segments": 5, "continuous": False}
    for needs in ((True, False), (False, True)):
        v, w = x.clone().requires_grad_(needs[0]), weight.clone().requires_grad_(needs[1])
        y = lagrange_linear(v, scale, shift, w, transform, **geometry)
        (got,) = torch.autograd.grad(y, [v, w][needs[1]], grad_y)
        v, w = x.clone().requires_grad_(), weight.clone().requires_grad_()
        y = definition(v, scale, shift, w, 3, 5, False, "polynomial")
        expected = torch.autograd.grad(y, (v, w), grad_y)
        assert_all_close([got], [expected[needs[1]]])


# --- dtypes, determinism, fallbacks, errors -----------------------------------------------------------------

@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.bfloat16, 2e-2), (torch.float16, 2e-3)])
def test_low_precision_is_computed_in_float32_and_rounded_once(dtype, tol):
    x, scale, shift, weight, transform = operands(64, 6, 8, 5, 8, True, spread=1.0)
    x, weight = x.to(dtype), weight.to(dtype)
    y = lagrange_linear(x, scale, shift, weight, transform, segments=8, continuous=True)
    assert y.dtype == dtype
    expected = definition(x.double(), scale, shift, weight.double(), 5, 8, True, "polynomial")
    assert (y.double() - expected).abs().max() <= tol * expected.abs().max()
    x.requires_grad_()
    weight.requires_grad_()
    lagrange_linear(x, scale, shift, weight, transform, segments=8, continuous=True).sum().backward()
    assert x.grad.dtype == dtype and weight.grad.dtype == dtype


def test_result_has_the_weight_dtype_or_the_autocast_dtype():
    x, scale, shift, weight, transform = operands(32, 4, 6, 4, 3, True, spread=1.0)
    expected = definition(x, scale, shift, weight, 4, 3, True, "polynomial")
    geometry = {"segments": 3, "continuous": True}
    y = lagrange_linear(x.float(), scale, shift, weight.half(), transform, **geometry)
    assert y.dtype == torch.float16
    assert (y.double() - expected).abs().max() <= 2e-3 * expected.abs().max()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = lagrange_linear(*(t.float() for t in (x, scale, shift, weight, transform)), **geometry)
        assert y.dtype == torch.bfloat16
        assert lagrange_linear(x, scale, shift, weight, transform, **geometry).dtype == f64
    assert (y.double() - expected).abs().max() <= 2e-2 * expected.abs().max()


def test_eager_cpu_calls_run_the_kernels_and_keep_only_the_operands():
    """Float32 and float64 CPU calls run the C++ kernels; autograd keeps the operands, no basis values."""
    cpp_or_skip()
    x, scale, shift, weight, transform = operands(64, 8, 5, 5, 4, True)
    assert fused._eager_kernels(x, 5) and fused._eager_kernels(x.float(), 5)
    sizes = saved_sizes(lagrange_linear, x.requires_grad_(), scale, shift, weight.requires_grad_(), transform,
                        segments=4, continuous=True)
    assert sum(sizes) == x.numel() + weight.numel() + 2 * 8 + 25


def saved_sizes(function, *args, **kwargs) -> list[int]:
    """The element counts of the tensors autograd saves while ``function(*args, **kwargs)`` runs."""
    sizes = []

    def pack(tensor):
        sizes.append(tensor.numel())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        function(*args, **kwargs)
    return sizes


def test_runs_are_bitwise_reproducible_whatever_the_threads():
    cpp_or_skip()
    x, scale, shift, weight, transform = operands(3000, 9, 40, 5, 8, True)
    x, scale, shift, weight, transform = (t.float() for t in (x, scale, shift, weight, transform))
    threads = torch.get_num_threads()
    results = []
    try:
        for count in (1, 2, 2):
            torch.set_num_threads(count)
            results.append(values_and_grads(
                lambda v, w: lagrange_linear(v, scale, shift, w, transform, segments=8, continuous=True),
                x, weight, torch.ones(3000, 40)))
    finally:
        torch.set_num_threads(threads)
    for other in results[1:]:
        assert all(torch.equal(a, b) for a, b in zip(results[0], other, strict=True))


def links_major(weight):
    """``weight [O, I, K]`` stored as a contiguous ``[I, K, O]`` (same values, other strides)."""
    return weight.permute(1, 2, 0).contiguous().permute(2, 0, 1)


@pytest.mark.parametrize("dtype, outputs, segments", [(f64, 16, 3), (f64, 8, 64), (torch.float32, 32, 5),
                                                      (torch.float32, 48, 64), (f64, 5, 3), (f64, 1, 2)],
                         ids=["f64", "f64_S64", "f32", "f32_S64", "partial_vector", "one_output"])
def test_links_major_weights_give_the_same_bits_and_a_gradient_of_their_layout(dtype, outputs, segments):
    """A weight stored as [I, K, O] (rows read in place by the kernels where O is a whole number of vectors,
    else copied) gives bitwise the values and gradients of the contiguous weight, its gradient in the weight's
    layout (autograd keeps it as it is) where the kernels read it in place, and the definition's values."""
    cpp_or_skip()
    x, scale, shift, weight, transform = operands(300, 3, outputs, 5, segments, True, dtype=dtype)
    grad_y = torch.randn(300, outputs, dtype=dtype, generator=torch.Generator().manual_seed(2))
    geometry = {"segments": segments, "continuous": True, "extrapolation": "clamp"}
    stored = links_major(weight)
    threads = torch.get_num_threads()
    results = []
    try:
        for count, w in ((1, weight), (1, stored), (2, stored)):  # the threads split tiles, chunks and inputs
            torch.set_num_threads(count)
            results.append(values_and_grads(
                lambda v, w: lagrange_linear(v, scale, shift, w, transform, **geometry), x, w, grad_y))
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(a, b) for a, b in zip(results[1], results[2], strict=True))
    in_place = outputs % (64 // weight.element_size()) == 0 and not stored.is_contiguous()
    assert results[1][2].stride() == stored.stride() if in_place else results[1][2].is_contiguous()
    for a, b in zip(results[0], results[1], strict=True):
        assert torch.equal(a, b)
    expected = definition(*(t.double() for t in (x, scale, shift, weight)), 5, segments, True, "clamp")
    tol = 1e-12 if dtype == f64 else 2e-5
    assert (results[1][0].double() - expected).abs().max() <= tol * max(1.0, expected.abs().max().item())


def test_a_layer_with_links_major_weights_trains_as_with_contiguous_ones():
    """The gradient keeps the links-major layout through autograd's accumulation (no copy), and an optimizer
    step moves both layouts alike."""
    cpp_or_skip()
    x, scale, shift, weight, transform = operands(64, 4, 16, 5, 8, True)
    geometry = {"segments": 8, "continuous": True}
    parameters = [torch.nn.Parameter(weight.clone()), torch.nn.Parameter(links_major(weight))]
    for parameter in parameters:
        optimizer = torch.optim.SGD([parameter], lr=0.1)
        for _ in range(2):
            optimizer.zero_grad(set_to_none=True)
            lagrange_linear(x, scale, shift, parameter, transform, **geometry).pow(2).sum().backward()
            optimizer.step()
    assert parameters[1].grad.stride() == parameters[1].stride() != parameters[0].stride()
    assert torch.equal(parameters[0], parameters[1])


def test_torch_formula_serves_cpu_calls_without_the_kernels(monkeypatch):
    """Where the C++ kernels cannot be built, the operator computes with the torch formula: same numbers."""
    monkeypatch.setattr(fused, "extension", lambda: None)
    compare(17, 3, 6, 4, 3, True, "linear")
    x, scale, shift, weight, transform = operands(7, 2, 3, 4, 3, True)
    y = torch.ops.hol.lagrange_linear(x, scale, shift, weight, transform.contiguous(), 3, True, "mirror")
    assert_all_close([y], [definition(x, scale, shift, weight, 4, 3, True, "mirror")])


def test_environment_variable_turns_the_kernels_off():
    code = ("from hol.ops import lagrange_linear as f; import torch\n"
            "from hol.ops.lagrange import lagrange_transform\n"
            "assert f.extension() is None\n"
            "y = f.lagrange_linear(torch.rand(3, 2), torch.ones(2), torch.ones(2), torch.ones(4, 2, 9),\n"
            "                      lagrange_transform(5).float(), segments=2, continuous=True)\n"
            "assert y.shape == (3, 4)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HOL_LAGRANGE_CPP": "0"}, check=False)
    assert done.returncode == 0, done.stderr[-2000:]


def test_many_nodes_use_the_torch_formula():
    compare(9, 2, 3, fused.MAX_NODES + 1, 2, True, "polynomial")


def test_bad_operands_raise_value_error():
    x, scale, shift, weight, transform = operands(4, 3, 2, 4, 2, True)
    geometry = {"segments": 2, "continuous": True}
    with pytest.raises(ValueError, match="weight must be"):
        lagrange_linear(x, scale, shift, weight[:, :, :5], transform, **geometry)
    with pytest.raises(ValueError, match="weight must be"):
        lagrange_linear(x, scale, shift, weight, transform, segments=2, continuous=False)
    with pytest.raises(ValueError, match="scale must be"):
        lagrange_linear(x, scale[:2], shift, weight, transform, **geometry)
    with pytest.raises(ValueError, match="transform must be"):
        lagrange_linear(x, scale, shift, weight, transform[:3], **geometry)
    with pytest.raises(ValueError, match="extrapolation must be"):
        lagrange_linear(x, scale, shift, weight, transform, **geometry, extrapolation="periodic")
    with pytest.raises(ValueError, match="segments must be"):
        lagrange_linear(x, scale, shift, weight, transform, segments=0, continuous=True)
    with pytest.raises(ValueError, match="bias must be"):
        lagrange_linear(x, scale, shift, weight, transform, **geometry, bias=torch.zeros(3, dtype=f64))
    with pytest.raises(ValueError, match="floating"):
        lagrange_linear(x.long(), scale, shift, weight, transform, **geometry)


def test_flop_counter_counts_both_operators():
    x, scale, shift, weight, transform = operands(16, 3, 4, 5, 2, True)
    x.requires_grad_()
    with FlopCounterMode(display=False) as counter:
        torch.ops.hol.lagrange_linear(x, scale, shift, weight, transform.contiguous(), 2, True,
                                      "polynomial").sum().backward()
    flops = counter.get_flop_counts()["Global"]
    assert flops[torch.ops.hol.lagrange_linear] == 2 * 16 * 3 * 5 * (5 + 4)
    assert flops[torch.ops.hol.lagrange_linear_backward] == 2 * 16 * 3 * 5 * (5 + 4)


# --- operator properties: opcheck, compile, export, meta, torch.func ----------------------------------------

def test_opcheck_forward_and_backward_operators():
    x, scale, shift, weight, transform = operands(6, 3, 4, 4, 3, False)
    transform = transform.contiguous()
    for extrapolation in EXTRAPOLATIONS:
        torch.library.opcheck(torch.ops.hol.lagrange_linear.default,
                              (x.clone().requires_grad_(), scale, shift, weight.clone().requires_grad_(),
                               transform, 3, False, extrapolation))
    torch.library.opcheck(torch.ops.hol.lagrange_linear_backward.default,
                          (torch.randn(6, 4, dtype=f64), x, scale, shift, weight, transform, 3, False,
                           "linear", True, False))


def test_compile_fullgraph():
    x, scale, shift, weight, transform = operands(12, 3, 4, 4, 3, True)
    grad_y = torch.randn(12, 4, dtype=f64)

    def function(v, w):
        return lagrange_linear(v, scale, shift, w, transform, segments=3, continuous=True,
                               extrapolation="linear")

    expected = values_and_grads(function, x, weight, grad_y)
    compiled = torch.compile(function, fullgraph=True, backend="aot_eager")
    assert_all_close(values_and_grads(compiled, x, weight, grad_y), expected)
    # a links-major weight (read in place by the kernels): the operator's gradient keeps the fake's strides
    x, scale, shift, weight, transform = operands(12, 3, 8, 4, 3, True)
    grad_y = torch.randn(12, 8, dtype=f64)
    expected = values_and_grads(function, x, weight, grad_y)
    compiled = torch.compile(function, fullgraph=True, backend="aot_eager")
    assert_all_close(values_and_grads(compiled, x, links_major(weight), grad_y), expected)


def test_export_with_a_dynamic_batch_and_meta_tensors():
    x, scale, shift, weight, transform = operands(12, 3, 4, 4, 3, True)

    class Layer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(weight.clone())
            self.register_buffer("scale", scale)
            self.register_buffer("shift", shift)
            self.register_buffer("transform", transform.contiguous())

        def forward(self, v):
            return lagrange_linear(v, self.scale, self.shift, self.weight, self.transform, segments=3,
                                   continuous=True, extrapolation="clamp")

    layer = Layer()
    batch = torch.export.Dim("batch")
    exported = torch.export.export(layer, (x,), dynamic_shapes={"v": {0: batch}})
    assert "hol.lagrange_linear" in exported.graph_module.code
    for rows in (12, 5, 31):
        v = operands(rows, 3, 4, 4, 3, True, seed=rows)[0]
        assert_all_close([exported.module()(v)], [layer(v)])
    meta = [t.to("meta") for t in (x, scale, shift, weight, transform)]
    meta[0].requires_grad_()
    meta[3].requires_grad_()
    y = lagrange_linear(meta[0].reshape(2, 6, 3), *meta[1:], segments=3, continuous=True)
    assert y.shape == (2, 6, 4) and y.device.type == "meta"
    y.sum().backward()
    assert meta[0].grad.shape == (12, 3) and meta[3].grad.shape == weight.shape


def test_torch_func_transforms_match_the_definition():
    x, scale, shift, weight, transform = operands(5, 3, 4, 4, 3, True)
    geometry = {"segments": 3, "continuous": True, "extrapolation": "mirror"}

    def function(v, w=weight):
        return lagrange_linear(v, scale, shift, w, transform, **geometry)

    def reference(v, w=weight):
        return definition(v, scale, shift, w, 4, 3, True, "mirror")

    torch.testing.assert_close(torch.vmap(function)(x), reference(x), rtol=0, atol=TOL)
    for transform_ in (torch.func.jacrev, torch.func.jacfwd):
        torch.testing.assert_close(transform_(function)(x[0]), transform_(reference)(x[0]), rtol=0, atol=TOL)
    got = torch.func.grad(lambda w: function(x, w).square().sum())(weight)
    expected = torch.func.grad(lambda w: reference(x, w).square().sum())(weight)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-10)
    tangent = torch.randn_like(x)
    got = torch.func.jvp(function, (x,), (tangent,))
    expected = torch.func.jvp(reference, (x,), (tangent,))
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-10)


def test_vectorized_jacobians_and_batched_gradients_equal_the_loops():
    """``jacobian(vectorize=True)`` and ``grad(is_grads_batched=True)`` run the backward under vmap, with and
    without ``create_graph``."""
    x, scale, shift, weight, transform = operands(4, 3, 2, 3, 2, True)
    weight.requires_grad_()

    def function(v):
        return lagrange_linear(v, scale, shift, weight, transform, segments=2, continuous=True)

    x.requires_grad_()
    for create_graph in (False, True):
        jacobian = torch.autograd.functional.jacobian
        vectorized = jacobian(function, x, vectorize=True, create_graph=create_graph)
        looped = jacobian(function, x, vectorize=False, create_graph=create_graph)
        torch.testing.assert_close(vectorized, looped)
    cotangents = torch.eye(2, dtype=f64)[:, None, :].expand(2, 4, 2)
    (batched,) = torch.autograd.grad(function(x), x, cotangents, is_grads_batched=True)
    rows = [torch.autograd.grad(function(x), x, cotangent)[0] for cotangent in cotangents]
    torch.testing.assert_close(batched, torch.stack(rows))
