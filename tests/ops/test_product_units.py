"""Product units without the [B, O, I] tensor (hol.ops.product_units) against the einsum formula.

The reference everywhere is the definition: every link value ``f_oi(x_i)`` from the layer's dense basis
expansion (``layer.links``, an einsum), then ``prod_i (1 + f) - 1 - (1 - alpha) sum_i f`` with ``torch.prod``;
its derivatives come from autograd. The C++ kernels are tested wherever they build (a test that needs them
says so when it skips); the Triton kernels run under Triton's interpreter on CPU tensors, and on CUDA where
there is a GPU.
"""
import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hol.layers import fc
from hol.ops import product_units

f64 = torch.float64
TOL = 1e-12
PRODUCT_KINDS = ["product", "polynomial_prod", "continuous_prod", "discontinuous_prod"]


def options(kind):
    return {"product": {}, "polynomial_prod": {"n": 4}}.get(kind, {"n": 3, "segments": 3})


def layer_for(kind, inputs=4, outputs=3, *, alpha=1.0, bias=True, dtype=f64, **extra):
    torch.manual_seed(0)
    layer = fc(kind, inputs, outputs, alpha=alpha, bias=bias, init="uniform", dtype=dtype,
               **{**options(kind), **extra})
    if bias:
        torch.nn.init.uniform_(layer.bias, -1, 1)
    return layer


def wide_input(*shape, dtype=f64):
    """Inputs over the domain [-1, 1], its segment breaks (S = 3) and outside it."""
    x = torch.rand(*shape, dtype=dtype) * 3.2 - 1.6
    x.view(-1)[:4] = torch.tensor([-1.0, 1.0, -1 / 3, 1 / 3], dtype=dtype)
    return x


def einsum_formula(layer, x):
    """The definition: all link values [..., O, I] by einsum of the dense expansion, then the product
    formula."""
    f = layer.links(x)
    y = torch.prod(1 + f, dim=-1) - 1 - (1 - layer.alpha) * f.sum(-1)
    return y if layer.bias is None else y + layer.bias


def values_and_grads(function, layer, x, grad_y):
    x = x.detach().requires_grad_()
    y = function(x)
    params = [p for p in (layer.weight, layer.bias) if p is not None]
    return (y, *torch.autograd.grad(y, [x, *params], grad_y))


def assert_all_close(got, expected, tol=TOL):
    """Equal to ``tol`` times the larger of 1 and the expected tensor's largest magnitude."""
    for index, (a, b) in enumerate(zip(got, expected, strict=True)):
        assert a.shape == b.shape, index
        scale = max(1.0, b.abs().max().item()) if b.numel() else 1.0
        assert torch.allclose(a, b, atol=tol * scale, rtol=0), \
            f"output {index}: max diff {(a - b).abs().max():.3g}"


def cpp_or_skip():
    if product_units.extension() is None:
        pytest.skip("product-unit C++ kernels unavailable (no build, or HOL_PRODUCT_UNITS_CPP=0); the torch "
                    "formula serves CPU calls, tested through the same assertions")


def exact_zero_operands():
    """phi, base, weight with 1 + f = 0 exactly for (b=1, o=2, i=3) and for (b=2, o=0, i=0 and 4)."""
    generator = torch.Generator().manual_seed(0)
    phi = torch.randn(4, 5, 3, generator=generator, dtype=f64)
    base = torch.randint(0, 3, (4, 5), generator=generator) * 2
    weight = torch.randn(3, 5, 7, generator=generator, dtype=f64) * 0.4
    phi[1, 3] = torch.tensor([1.0, 0.0, 0.0])
    weight[2, 3, base[1, 3]] = -1.0
    for i in (0, 4):
        phi[2, i] = torch.tensor([0.0, 1.0, 0.0])
        weight[0, i, base[2, i] + 1] = -1.0
    return phi, base, weight


# --- the layers against the definition ----------------------------------------------------------------------

@pytest.mark.parametrize("kind", PRODUCT_KINDS)
@pytest.mark.parametrize("alpha", [1.0, 0.3])
def test_layer_matches_einsum_formula_with_gradients(kind, alpha):
    cpp_or_skip()
    layer = layer_for(kind, alpha=alpha)
    x = wide_input(2, 5, 4)  # leading dims
    grad_y = torch.randn(2, 5, 3, dtype=f64)
    got = values_and_grads(layer, layer, x, grad_y)
    expected = values_and_grads(lambda v: einsum_formula(layer, v), layer, x, grad_y)
    assert_all_close(got, expected)


@pytest.mark.parametrize("extrapolation", ["clamp", "linear", "mirror"])
def test_piecewise_extrapolations_match_einsum_formula(extrapolation):
    layer = layer_for("continuous_prod", extrapolation=extrapolation)
    x = wide_input(6, 4)
    grad_y = torch.randn(6, 3, dtype=f64)
    got = values_and_grads(layer, layer, x, grad_y)
    expected = values_and_grads(lambda v: einsum_formula(layer, v), layer, x, grad_y)
    assert_all_close(got, expected)


@pytest.mark.parametrize("dtype, tol", [(f64, 1e-11), (torch.float32, 2e-5)])
def test_wide_layer_uses_full_register_tiles(dtype, tol):
    """More than one output tile (128 float / 64 double lanes), several input blocks, full transpose blocks of
    the packing (16 x 16 float, 8 x 8 double), against the formula in float64."""
    cpp_or_skip()
    layer = layer_for("discontinuous_prod", inputs=40, outputs=150, segments=5)
    with torch.no_grad():
        layer.weight.mul_(0.2)  # keeps the product of 40 factors of order one
    x = torch.rand(33, 40, dtype=f64) * 3.2 - 1.6  # no input on a break (float32 could change its segment)
    grad_y = torch.randn(33, 150, dtype=f64)
    expected = values_and_grads(lambda v: einsum_formula(layer, v), layer, x, grad_y)
    tested = copy.deepcopy(layer).to(dtype)
    got = values_and_grads(tested, tested, x.to(dtype), grad_y.to(dtype))
    assert_all_close([t.double() for t in got], expected, tol=tol)


def test_many_segments_match_einsum_formula():
    """K large enough that a block of the kernels holds one input (its rows are then copied input-major)."""
    layer = layer_for("continuous_prod", inputs=3, outputs=5, n=2, segments=200, alpha=0.5)
    x = wide_input(20, 3)
    grad_y = torch.randn(20, 5, dtype=f64)
    got = values_and_grads(layer, layer, x, grad_y)
    expected = values_and_grads(lambda v: einsum_formula(layer, v), layer, x, grad_y)
    assert_all_close(got, expected)


@pytest.mark.parametrize("kind", ["product", "continuous_prod"])
def test_gradcheck_and_gradgradcheck_in_x_and_weights(kind):
    layer = layer_for(kind, inputs=3, outputs=2, alpha=0.6)
    x = (torch.rand(4, 3, dtype=f64) * 1.8 - 0.9).requires_grad_()

    def function(x, weight):
        return torch.func.functional_call(layer, {"weight": weight, "bias": layer.bias}, (x,))

    weight = layer.weight.detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(function, (x, weight))
    assert torch.autograd.gradgradcheck(function, (x, weight))


def test_third_derivative_in_x_matches_einsum_formula():
    layer = layer_for("polynomial_prod", inputs=2, outputs=2)
    x = torch.rand(3, 2, dtype=f64) * 1.8 - 0.9

    def third(function):
        v = x.clone().requires_grad_()
        d1 = torch.autograd.grad(function(v).sum(), v, create_graph=True)[0]
        d2 = torch.autograd.grad(d1.sum(), v, create_graph=True)[0]
        return torch.autograd.grad(d2.sum(), v)[0]

    expected = third(lambda v: einsum_formula(layer, v))
    assert expected.abs().max() > 1e-3  # a non-trivial third derivative
    assert_all_close([third(layer)], [expected])


# --- 1 + f = 0 ----------------------------------------------------------------------------------------------

def test_zero_factors_are_exact_in_values_gradients_and_state():
    phi, base, weight = exact_zero_operands()
    y, prod, zero_at = torch.ops.hol.product_units(phi, base, weight, 0.5)
    assert zero_at[1, 2] == 3 and zero_at[2, 0] == -2 and (zero_at == -1).sum() == zero_at.numel() - 2
    expansion = torch.zeros(4, 5, 7, dtype=f64)
    for b in range(4):
        for i in range(5):
            expansion[b, i, base[b, i]:base[b, i] + 3] = phi[b, i]
    f = torch.einsum("bik,oik->boi", expansion, weight)
    factors = torch.where(f == -1, 1.0, 1 + f)  # the product of the nonzero factors
    torch.testing.assert_close(prod, factors.prod(-1), rtol=0, atol=TOL)
    grad_y = torch.randn(y.shape, dtype=f64)
    phi_, weight_ = phi.clone().requires_grad_(), weight.clone().requires_grad_()
    got = (y, *torch.autograd.grad(product_units.product_unit_values(phi_, base, weight_, 0.5),
                                   [phi_, weight_], grad_y))
    reference = product_units.product_units_reference(phi_, base, weight_, 0.5)
    expected = (reference, *torch.autograd.grad(reference, [phi_, weight_], grad_y))
    assert_all_close(got, expected)
    # the single zero factor's link still gets the product of the other factors as its derivative
    assert got[1][1, 3].abs().max() > 1e-3


def test_zero_factor_gradcheck_and_gradgradcheck():
    phi, base, weight = exact_zero_operands()
    phi.requires_grad_()
    weight.requires_grad_()

    def function(p, w):
        return product_units.product_unit_values(p, base, w, 0.5)

    assert torch.autograd.gradcheck(function, (phi, weight))
    assert torch.autograd.gradgradcheck(function, (phi, weight), fast_mode=True)


def test_product_kind_with_a_zero_factor():
    layer = layer_for("product", inputs=3, outputs=2, bias=False)
    with torch.no_grad():
        layer.weight[1, 2, 0] = -2.0
    x = torch.tensor([[0.3, -0.7, 0.5], [0.1, 0.2, 0.4]], dtype=f64)  # f[0, 1, 2] = -2 * 0.5 = -1
    grad_y = torch.randn(2, 2, dtype=f64)
    got = values_and_grads(layer, layer, x, grad_y)
    expected = values_and_grads(lambda v: einsum_formula(layer, v), layer, x, grad_y)
    assert_all_close(got, expected)


# --- shapes, dtypes -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("leading, inputs, outputs", [((0,), 4, 3), ((1,), 4, 3), ((5,), 1, 3), ((5,), 4, 1),
                                                      ((2, 3), 1, 1)])
def test_degenerate_shapes(leading, inputs, outputs):
    layer = layer_for("continuous_prod", inputs, outputs, alpha=0.5)
    x = wide_input(*leading, inputs) if 0 not in leading else torch.empty(*leading, inputs, dtype=f64)
    grad_y = torch.randn(*leading, outputs, dtype=f64)
    got = values_and_grads(layer, layer, x, grad_y)
    expected = values_and_grads(lambda v: einsum_formula(layer, v), layer, x, grad_y)
    assert_all_close(got, expected)


def test_non_contiguous_operands():
    layer = layer_for("discontinuous_prod", alpha=0.5)
    x = wide_input(4, 7).t()  # [7, 4], a transposed view
    assert not x.is_contiguous()
    got = values_and_grads(layer, layer, x, torch.ones(7, 3, dtype=f64))
    expected = values_and_grads(lambda v: einsum_formula(layer, v), layer, x.contiguous(),
                                torch.ones(7, 3, dtype=f64))
    assert_all_close(got, expected)
    phi, base, weight = exact_zero_operands()
    strided = product_units.product_unit_values(phi.transpose(0, 1).contiguous().transpose(0, 1), base,
                                                weight.transpose(0, 2).contiguous().transpose(0, 2), 0.5)
    torch.testing.assert_close(strided, product_units.product_units_reference(phi, base, weight, 0.5), rtol=0,
                               atol=TOL)


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.float16, 1e-2), (torch.bfloat16, 5e-2)])
def test_low_precision_accumulates_in_float32(dtype, tol):
    layer = layer_for("continuous_prod", inputs=6, outputs=5, alpha=0.5)
    x = torch.rand(8, 6, dtype=f64) * 3.2 - 1.6  # no input on a break: rounded, it could change segment
    grad_y = torch.randn(8, 5, dtype=f64)
    expected = values_and_grads(lambda v: einsum_formula(layer, v), layer, x, grad_y)
    low = layer_for("continuous_prod", inputs=6, outputs=5, alpha=0.5, dtype=dtype)
    low.load_state_dict(layer.state_dict())
    got = values_and_grads(low, low, x.to(dtype), grad_y.to(dtype))
    assert all(t.dtype == dtype for t in got)
    for a, b in zip(got, expected, strict=True):
        assert (a.double() - b).abs().max() <= tol * max(1.0, b.abs().max().item())


def test_autocast_computes_in_the_autocast_dtype():
    layer = layer_for("continuous_prod", inputs=6, outputs=5, alpha=0.5, bias=False, dtype=torch.float32)
    x = torch.rand(8, 6) * 1.8 - 0.9
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = layer(x)
    assert y.dtype == torch.bfloat16
    expected = einsum_formula(copy.deepcopy(layer).double(), x.double())
    assert (y.double() - expected).abs().max() <= 5e-2 * max(1.0, expected.abs().max().item())


def test_torch_formula_serves_cpu_calls_without_the_kernels(monkeypatch):
    """Where the C++ kernels cannot be built, the operator computes with the torch formula: same numbers."""
    monkeypatch.setattr(product_units, "extension", lambda: None)
    layer = layer_for("discontinuous_prod", alpha=0.5)
    x = wide_input(2, 5, 4)
    grad_y = torch.randn(2, 5, 3, dtype=f64)
    got = values_and_grads(layer, layer, x, grad_y)
    expected = values_and_grads(lambda v: einsum_formula(layer, v), layer, x, grad_y)
    assert_all_close(got, expected)
    phi, base, weight = exact_zero_operands()
    assert torch.equal(torch.ops.hol.product_units(phi, base, weight, 0.5)[2],
                       product_units._reference_state(phi, base, weight, 0.5)[2])


def test_bad_operands_raise_value_error():
    phi, base, weight = exact_zero_operands()
    with pytest.raises(ValueError, match="weight must be"):
        product_units.product_unit_values(phi, base, weight[:, :4])
    with pytest.raises(ValueError, match="base must be"):
        product_units.product_unit_values(phi, base.int(), weight)
    with pytest.raises(ValueError, match="share a floating dtype"):
        product_units.product_unit_values(phi.float(), base, weight)


# --- memory -------------------------------------------------------------------------------------------------

def test_saved_activations_are_o_of_bo_plus_bin():
    """Nothing of size B x O x I is kept for the backward: only phi, base, the [B, O] state and the weight."""
    B, I, O, n = 64, 32, 24, 3
    layer = layer_for("continuous_prod", I, O, bias=False)
    x = wide_input(B, I).requires_grad_()
    saved = {}

    def pack(t):
        saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes() // t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        layer(x).sum().backward()
    activations = sum(saved.values()) - layer.weight.numel()
    assert max(saved.values()) < B * O * I
    assert activations <= 4 * (B * O + B * I * n)


# --- operator properties: opcheck, compile, export, meta, torch.func ----------------------------------------

def test_opcheck_forward_and_backward_operators():
    phi, base, weight = exact_zero_operands()
    for sample in ((phi.requires_grad_(), base, weight.requires_grad_(), 0.5),
                   (phi.detach(), base, weight, 1.0)):
        torch.library.opcheck(torch.ops.hol.product_units.default, sample)
    y, prod, zero_at = torch.ops.hol.product_units(phi.detach(), base, weight.detach(), 0.5)
    torch.library.opcheck(torch.ops.hol.product_units_backward.default,
                          (torch.randn_like(y), phi.detach(), base, weight.detach(), prod, zero_at, 0.5, True,
                           False))


def test_compile_fullgraph_export_and_meta():
    layer = layer_for("discontinuous_prod", alpha=0.5)
    x = wide_input(6, 4)
    grad_y = torch.randn(6, 3, dtype=f64)
    expected = values_and_grads(layer, layer, x, grad_y)
    compiled = torch.compile(layer, fullgraph=True, backend="aot_eager")
    assert_all_close(values_and_grads(compiled, layer, x, grad_y), expected)
    exported = torch.export.export(layer, (x,))
    assert "hol.product_units" in exported.graph_module.code
    torch.testing.assert_close(exported.module()(x), expected[0], rtol=0, atol=TOL)
    meta = layer_for("discontinuous_prod", alpha=0.5, device="meta")
    assert meta(torch.empty(2, 6, 4, dtype=f64, device="meta")).shape == (2, 6, 3)


def test_torch_func_transforms_match_einsum_formula():
    layer = layer_for("continuous_prod", alpha=0.5)
    x = wide_input(5, 4)
    torch.testing.assert_close(torch.vmap(layer)(x), layer(x), rtol=0, atol=TOL)
    for transform in (torch.func.jacrev, torch.func.jacfwd):
        got = transform(layer)(x[0])
        expected = transform(lambda v: einsum_formula(layer, v))(x[0])
        torch.testing.assert_close(got, expected, rtol=0, atol=TOL)


# --- Triton -------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_triton_kernels_under_the_interpreter():
    script = Path(__file__).parents[1] / "helpers" / "triton_product_units_check.py"
    root = str(Path(__file__).parents[2])
    env = {**os.environ, "TRITON_INTERPRET": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300,
                         check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count(": ok") == 4


@pytest.mark.cuda
@pytest.mark.parametrize("kind", PRODUCT_KINDS)
def test_cuda_matches_einsum_formula(kind):
    layer = layer_for(kind, alpha=0.5, device="cuda")
    x = wide_input(2, 40, 4).cuda()
    grad_y = torch.randn(2, 40, 3, dtype=f64, device="cuda")
    got = values_and_grads(layer, layer, x, grad_y)
    expected = values_and_grads(lambda v: einsum_formula(layer, v), layer, x, grad_y)
    assert_all_close(got, expected)
    phi, base, weight = (t.cuda() for t in exact_zero_operands())
    _, _, zero_at = torch.ops.hol.product_units(phi, base, weight, 0.5)
    assert zero_at[1, 2] == 3 and zero_at[2, 0] == -2
    half = layer_for(kind, alpha=0.5, dtype=torch.float16, device="cuda")
    half.load_state_dict(layer.state_dict())
    y = half(x.half())
    assert y.dtype == torch.float16
    assert (y.double() - expected[0]).abs().max() <= 1e-2 * max(1.0, expected[0].abs().max().item())


@pytest.mark.parametrize("kind", PRODUCT_KINDS)
def test_vectorized_jacobians_and_batched_gradients_with_create_graph_equal_the_loops(kind):
    """``jacobian(vectorize=True, create_graph=True)`` and ``grad(is_grads_batched=True, create_graph=True)``
    run the derivative formulas under vmap (they used ``einsum``, which has no batching rule there) and give
    the row-by-row results, which stay differentiable in the weights."""
    torch.manual_seed(0)
    options = {"segments": 2} if kind in ("continuous_prod", "discontinuous_prod") else {}
    layer = fc(kind, 3, 2, **options).double()
    x = torch.rand(4, 3, dtype=torch.float64, requires_grad=True)
    results = {}
    for vectorize in (True, False):
        jacobian = torch.autograd.functional.jacobian(layer, x, vectorize=vectorize, create_graph=True)
        (weight_grad,) = torch.autograd.grad(jacobian.square().sum(), layer.weight)
        results[vectorize] = jacobian, weight_grad
    torch.testing.assert_close(results[True], results[False])
    cotangents = torch.eye(2, dtype=torch.float64)[:, None, :].expand(2, 4, 2)
    (batched,) = torch.autograd.grad(layer(x), x, cotangents, is_grads_batched=True, create_graph=True)
    rows = [torch.autograd.grad(layer(x), x, cotangent, create_graph=True)[0] for cotangent in cotangents]
    torch.testing.assert_close(batched, torch.stack(rows))
    assert batched.requires_grad
