"""The segment-sparse operators (hol.ops.segment_sparse) against their definition as dense expansions.

F, A, B are checked against ``E = scatter(phi at base)`` (``[B, I, K]``) products in float64, in both
implementations (C++ kernels where they build, torch ops always), through every entry: the eager autograd
Functions and the dispatcher operators ``torch.ops.hol.*``.
"""
import pytest
import torch
from torch.func import jacfwd, jacrev, jvp, vmap

from hol.ops import cost as cost_model
from hol.ops import segment_sparse

f64 = torch.float64
OPS = torch.ops.hol


@pytest.fixture(params=["torch", "cpp"])
def impl(request, monkeypatch):
    if request.param == "cpp" and not segment_sparse.extension_available():
        pytest.skip("segment-sparse C++ kernels unavailable here; the torch implementation is tested")
    monkeypatch.setenv("HOL_SPARSE_CPP", "1" if request.param == "cpp" else "0")
    return request.param


def operands(batch=5, inputs=3, n=3, width=7, out=4, dtype=f64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    phi = torch.randn(batch, inputs, n, generator=generator, dtype=dtype)
    base = torch.randint(0, width - n + 1, (batch, inputs), generator=generator)
    weight = torch.randn(out, inputs, width, generator=generator, dtype=dtype)
    grad = torch.randn(batch, out, generator=generator, dtype=dtype)
    return phi, base, weight, grad


def expansion(phi, base, width):
    index = base.unsqueeze(-1) + torch.arange(phi.shape[-1])
    return phi.new_zeros(*phi.shape[:-1], width).scatter_add(-1, index, phi)


def dense_product(phi, base, weight):
    return torch.einsum("bik,oik->bo", expansion(phi, base, weight.shape[2]), weight)


def dense_weight_grad(phi, base, grad, width):
    return torch.einsum("bik,bo->oik", expansion(phi, base, width), grad)


def dense_phi_grad(grad, weight, base, n):
    full = torch.einsum("bo,oik->bik", grad, weight)
    return full.gather(-1, base.unsqueeze(-1) + torch.arange(n))


def close(a, b, tol=1e-12):
    assert a.shape == b.shape and a.dtype == b.dtype, (a.shape, b.shape, a.dtype, b.dtype)
    assert torch.allclose(a, b, rtol=0, atol=tol * max(1.0, b.abs().max().item() if b.numel() else 0.0))


@pytest.mark.parametrize("entry", ["eager", "operator"])
def test_products_equal_their_dense_definition(impl, entry):
    phi, base, weight, grad = operands()
    base[:, 0] = 2  # every sample in one segment of input 0: repeated indices must accumulate
    ops = segment_sparse if entry == "eager" else None
    product = ops.segment_sparse_product if ops else OPS.segment_sparse_product
    weight_grad = ops.segment_sparse_weight_grad if ops else OPS.segment_sparse_weight_grad
    phi_grad = ops.segment_sparse_phi_grad if ops else OPS.segment_sparse_phi_grad
    close(product(phi, base, weight), dense_product(phi, base, weight))
    close(weight_grad(phi, base, grad, 7), dense_weight_grad(phi, base, grad, 7))
    close(phi_grad(grad, weight, base, 3), dense_phi_grad(grad, weight, base, 3))


@pytest.mark.parametrize("entry", ["eager", "operator"])
def test_derivatives_of_every_order(impl, entry):
    """gradcheck and gradgradcheck of F, A and B in all their float operands: their derivatives are again F,
    A, B, so this covers every order."""
    phi, base, weight, grad = (t.requires_grad_(t.is_floating_point()) for t in operands(2, 2, 2, 3, 2))
    if entry == "eager":
        product = segment_sparse.segment_sparse_product
        weight_grad = segment_sparse.segment_sparse_weight_grad
        phi_grad = segment_sparse.segment_sparse_phi_grad
    else:
        product, weight_grad, phi_grad = (OPS.segment_sparse_product, OPS.segment_sparse_weight_grad,
                                          OPS.segment_sparse_phi_grad)
    cases = [(lambda p, w: product(p, base, w), (phi, weight)),
             (lambda p, g: weight_grad(p, base, g, 3), (phi, grad)),
             (lambda g, w: phi_grad(g, w, base, 2), (grad, weight))]
    for function, inputs in cases:
        assert torch.autograd.gradcheck(function, inputs)
        assert torch.autograd.gradgradcheck(function, inputs)


def test_forward_mode_and_reverse_mode_jacobians_equal_dense():
    phi, base, weight, grad = operands(3, 2, 2, 5, 2)
    pairs = [(lambda p, w: segment_sparse.segment_sparse_product(p, base, w),
              lambda p, w: dense_product(p, base, w), (phi, weight)),
             (lambda p, g: segment_sparse.segment_sparse_weight_grad(p, base, g, 5),
              lambda p, g: dense_weight_grad(p, base, g, 5), (phi, grad)),
             (lambda g, w: segment_sparse.segment_sparse_phi_grad(g, w, base, 2),
              lambda g, w: dense_phi_grad(g, w, base, 2), (grad, weight))]
    for function, reference, inputs in pairs:
        tangents = tuple(torch.randn_like(t) for t in inputs)
        close(jvp(function, inputs, tangents)[1], jvp(reference, inputs, tangents)[1])
        expected = jacrev(reference, argnums=(0, 1))(*inputs)
        for got, want in zip(jacfwd(function, argnums=(0, 1))(*inputs), expected, strict=True):
            close(got, want)
        for got, want in zip(jacrev(function, argnums=(0, 1))(*inputs), expected, strict=True):
            close(got, want)


@pytest.mark.parametrize("batched", ["phi", "base", "weight", "phi+weight", "grad", "phi+grad", "all"])
def test_vmap_rules_equal_one_call_per_entry(impl, batched):
    """Every branch of the three vmap rules: folding the vmapped dimension into a free index, or looping."""
    entries = 3
    stacks = [operands(seed=seed) for seed in range(entries)]
    phi, base, weight, grad = (torch.stack(parts) for parts in zip(*stacks, strict=True))
    chosen = {"phi": "phi" in batched or batched == "all", "base": batched in ("base", "all"),
              "weight": "weight" in batched or batched == "all",
              "grad": "grad" in batched or batched == "all"}
    args = {"phi": phi, "base": base, "weight": weight, "grad": grad}
    dims = {name: 0 if chosen[name] else None for name in args}
    args = {name: value if chosen[name] else value[0] for name, value in args.items()}

    def per_entry(function, names):
        return torch.stack([function(*[args[m][v] if chosen[m] else args[m] for m in names])
                            for v in range(entries)])

    cases = [(lambda p, b, w: segment_sparse.segment_sparse_product(p, b, w), dense_product,
              ("phi", "base", "weight")),
             (lambda p, b, g: segment_sparse.segment_sparse_weight_grad(p, b, g, 7),
              lambda p, b, g: dense_weight_grad(p, b, g, 7), ("phi", "base", "grad")),
             (lambda g, w, b: segment_sparse.segment_sparse_phi_grad(g, w, b, 3),
              lambda g, w, b: dense_phi_grad(g, w, b, 3), ("grad", "weight", "base"))]
    for function, reference, names in cases:
        if not any(chosen[m] for m in names):
            continue
        got = vmap(function, in_dims=tuple(dims[m] for m in names))(*[args[m] for m in names])
        close(got, per_entry(reference, names))


@pytest.mark.parametrize("shape", [(0, 3, 2, 5, 4), (1, 3, 2, 5, 4), (6, 1, 3, 7, 4), (6, 3, 3, 7, 1),
                                   (6, 3, 4, 4, 2), (7, 3, 8, 22, 130), (300, 4, 8, 22, 130)],
                         ids=["empty", "batch1", "in1", "out1", "one_segment", "many_nodes", "threads"])
def test_degenerate_shapes(impl, shape):
    """Odd shapes, and for the kernels: n = 8 nodes (two register passes), 130 outputs (a full and a partial
    tile), enough work to split over threads."""
    phi, base, weight, grad = operands(*shape)
    width, n = shape[3], shape[2]
    close(segment_sparse.segment_sparse_product(phi, base, weight), dense_product(phi, base, weight))
    close(segment_sparse.segment_sparse_weight_grad(phi, base, grad, width),
          dense_weight_grad(phi, base, grad, width))
    close(segment_sparse.segment_sparse_phi_grad(grad, weight, base, n),
          dense_phi_grad(grad, weight, base, n))


def test_non_contiguous_operands(impl):
    phi, base, weight, grad = operands(5, 3, 3, 7, 4)
    phi_t, base_t = phi.transpose(0, 1).contiguous().transpose(0, 1), base.T.contiguous().T
    weight_t, grad_t = weight.transpose(0, 2).contiguous().transpose(0, 2), grad.T.contiguous().T
    assert not any(t.is_contiguous() for t in (phi_t, base_t, weight_t, grad_t))
    close(segment_sparse.segment_sparse_product(phi_t, base_t, weight_t), dense_product(phi, base, weight))
    close(segment_sparse.segment_sparse_weight_grad(phi_t, base_t, grad_t, 7),
          dense_weight_grad(phi, base, grad, 7))
    close(segment_sparse.segment_sparse_phi_grad(grad_t, weight_t, base_t, 3),
          dense_phi_grad(grad, weight, base, 3))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_low_precision_accumulates_in_float32(impl, dtype):
    """The result is the float64 value of the rounded operands, rounded once: at most half an ulp of the
    output dtype plus float32 rounding, on sums of 3 x 40 terms where accumulating in the low precision would
    not be."""
    phi, base, weight, grad = operands(8, 40, 3, 9, 5, dtype=dtype)
    exact = dense_product(phi.double(), base, weight.double())
    got = segment_sparse.segment_sparse_product(phi, base, weight)
    assert got.dtype == dtype
    ulp = torch.finfo(dtype).eps * exact.abs()
    assert ((got.double() - exact).abs() <= 0.5 * ulp + 1e-5 * exact.abs().max()).all()
    for got, exact in ((segment_sparse.segment_sparse_weight_grad(phi, base, grad, 9),
                        dense_weight_grad(phi.double(), base, grad.double(), 9)),
                       (segment_sparse.segment_sparse_phi_grad(grad, weight, base, 3),
                        dense_phi_grad(grad.double(), weight.double(), base, 3))):
        assert got.dtype == dtype
        ulp = torch.finfo(dtype).eps * exact.abs()
        assert ((got.double() - exact).abs() <= 0.5 * ulp + 1e-5 * exact.abs().max()).all()


def test_fake_and_meta_tensors_give_shapes():
    phi, base, weight, grad = (t.to("meta") for t in operands(5, 3, 3, 7, 4))
    assert OPS.segment_sparse_product(phi, base, weight).shape == (5, 4)
    assert OPS.segment_sparse_weight_grad(phi, base, grad, 7).shape == (4, 3, 7)
    assert OPS.segment_sparse_phi_grad(grad, weight, base, 3).shape == (5, 3, 3)


def test_opcheck():
    """torch's own consistency checks of a custom operator: schema, fake implementation, autograd
    registration, AOT dispatch."""
    phi, base, weight, grad = operands(4, 2, 3, 7, 3)
    phi.requires_grad_()
    weight.requires_grad_()
    torch.library.opcheck(OPS.segment_sparse_product, (phi, base, weight))
    torch.library.opcheck(OPS.segment_sparse_weight_grad, (phi, base, grad.requires_grad_(), 7))
    torch.library.opcheck(OPS.segment_sparse_phi_grad, (grad, weight, base, 3))


@pytest.mark.parametrize("operands_, message", [
    ((torch.zeros(2, 3, 2), torch.zeros(2, 3, dtype=torch.long), torch.zeros(4, 3, 5, dtype=f64)), "dtype"),
    ((torch.zeros(2, 3, 2), torch.zeros(2, 3, dtype=torch.int32), torch.zeros(4, 3, 5)), "base"),
    ((torch.zeros(2, 3, 2), torch.zeros(2, 3, dtype=torch.long), torch.zeros(4, 2, 5)), "phi must be"),
    ((torch.zeros(2, 3, 6), torch.zeros(2, 3, dtype=torch.long), torch.zeros(4, 3, 5)), "n=6"),
])
def test_bad_operands_raise_value_error(operands_, message):
    with pytest.raises(ValueError, match=message):
        segment_sparse.segment_sparse_product(*operands_)
    with pytest.raises(ValueError, match=message):
        OPS.segment_sparse_product(*(t.to("meta") for t in operands_))


def test_offsets_out_of_range_are_refused(impl):
    phi, base, weight, _ = operands()
    base[0, 0] = 5  # n = 3, K = 7: the largest valid offset is 4
    with pytest.raises((ValueError, RuntimeError), match="out"):
        segment_sparse.segment_sparse_product(phi, base, weight)


def test_calibration_runs_caches_and_the_environment_overrides(tmp_path, monkeypatch):
    monkeypatch.delenv(cost_model.ENVIRONMENT, raising=False)
    monkeypatch.setenv("HOL_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(cost_model, "_measured", {})
    calls, calibrate = [], cost_model.calibrate

    def small_calibration(dtype, step, device):
        calls.append(dtype)
        return calibrate(dtype, step, device=device, batch=32, features=16, small_batch=4, rounds=1)

    monkeypatch.setattr(cost_model, "calibrate", small_calibration)
    with torch.inference_mode():  # a first use in inference still measures fwd+bwd
        cost = cost_model.sparse_cost(torch.float64)
    assert calls == [torch.float64] and all(value >= 0 for value in cost)
    assert cost_model.cache_path().parent == tmp_path and cost_model.cache_path().exists()
    monkeypatch.setattr(cost_model, "_measured", {})  # a new process: the disk cache serves
    assert cost_model.sparse_cost(torch.float64) == cost and calls == [torch.float64]
    monkeypatch.setenv(cost_model.ENVIRONMENT, "1,2,3")
    assert cost_model.sparse_cost(torch.float64) == cost_model.SparseCost(1.0, 2.0, 3.0)
    monkeypatch.setenv(cost_model.ENVIRONMENT, "1,2")
    with pytest.raises(ValueError, match="HOL_SPARSE_COST"):
        cost_model.sparse_cost(torch.float64)


def test_symbolic_batch_decides_by_the_large_batch_limit(monkeypatch):
    """With the batch unknown (a SymInt), a + b n < K decides: sparse at K = 9 > 3.6 + 4.5 even where one
    sample (batch 1) would take the dense path."""
    monkeypatch.setenv(cost_model.ENVIRONMENT, "3.6,0.9,4.0")
    from torch.fx.experimental.symbolic_shapes import ShapeEnv

    symbolic = ShapeEnv().create_unbacked_symint()
    options = {"n": 5, "segments": 2, "in_features": 8, "out_features": 8}
    assert cost_model.choose_backend(batch=symbolic, **options) == "sparse"
    assert cost_model.choose_backend(batch=1, **options) == "dense"
    assert cost_model.choose_backend(batch=symbolic, **{**options, "segments": 1}) == "dense"


def test_step_is_read_from_grad_mode_and_requires_grad():
    x, weight = torch.zeros(2, 3), torch.zeros(4, 3, 5, requires_grad=True)
    assert cost_model.step_of(x.requires_grad_(), weight) == "inputs"
    assert cost_model.step_of(x.detach(), weight) == "weights"
    assert cost_model.step_of(x.detach(), weight.detach()) == "none"
    with torch.no_grad():
        assert cost_model.step_of(x.requires_grad_(), weight) == "none"
    with pytest.raises(ValueError, match="step"):
        cost_model.choose_backend(n=3, segments=4, batch=8, in_features=2, out_features=2, step="backward")
