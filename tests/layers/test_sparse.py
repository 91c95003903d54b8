"""Segment-sparse compute path (hol.functional) against the dense path and against mathematics.

The torch implementation (``HOL_SPARSE_CPP=0``) is always tested; the C++ kernels wherever they build here (a
test that needs them says so when it skips).
"""
import functools
import math

import pytest
import torch

import hol.layers
from hol import functional
from hol.layers import fc
from hol.ops import cost as cost_model
from hol.ops import segment_sparse
from hol.ops.lagrange import piecewise_width

f64 = torch.float64
TOL = 1e-12
EXTRAPOLATIONS = ["polynomial", "clamp", "linear", "mirror"]
KINDS = ["continuous", "discontinuous"]


def _cpp_or_skip():
    if not segment_sparse.extension_available():
        pytest.skip("segment-sparse C++ kernels unavailable (no build, or HOL_SPARSE_CPP=0); "
                    "the torch implementation is tested")


@pytest.fixture(params=["torch", "cpp"])
def impl(request, monkeypatch):
    """The implementation of the sparse operators that serves the test (read at every operator call)."""
    if request.param == "cpp":
        _cpp_or_skip()
    monkeypatch.setenv("HOL_SPARSE_CPP", "1" if request.param == "cpp" else "0")
    return request.param


def pair(kind, extrapolation="polynomial", *, n=4, segments=3, in_features=5, out_features=3, bias=True,
         dtype=f64):
    """A dense layer and a sparse layer with the same weights."""
    torch.manual_seed(0)
    dense = fc(kind, in_features, out_features, n=n, segments=segments, extrapolation=extrapolation,
               bias=bias, backend="dense", dtype=dtype, init="uniform")
    if bias:
        torch.nn.init.uniform_(dense.bias, -1, 1)
    sparse_layer = fc(kind, in_features, out_features, n=n, segments=segments, extrapolation=extrapolation,
                      bias=bias, backend="sparse", dtype=dtype)
    sparse_layer.load_state_dict(dense.state_dict())
    return dense, sparse_layer


def wide_input(*shape, dtype=f64):
    """Inputs covering the domain [-1, 1], its breakpoints and both sides outside it."""
    x = torch.rand(*shape, dtype=dtype) * 3.2 - 1.6
    x.view(-1)[:4] = torch.tensor([-1.0, 1.0, -1 / 3, 1 / 3], dtype=dtype)  # domain ends and breaks (S = 3)
    return x


def grads(layer, x, grad_y):
    x = x.detach().requires_grad_()
    y = layer(x)
    params = [layer.weight] + ([layer.bias] if layer.bias is not None else [])
    return (y, *torch.autograd.grad(y, [x, *params], grad_y))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("extrapolation", EXTRAPOLATIONS)
def test_sparse_equals_dense_forward_and_gradients(kind, extrapolation, impl):
    dense, _ = pair(kind, extrapolation)
    x = wide_input(2, 7, 5)  # leading dims
    grad_y = torch.randn(2, 7, 3, dtype=f64)
    expected = grads(dense, x, grad_y)

    def sparse_forward(x):
        return functional.segment_sparse_linear(x, dense.weight, dense.basis.transform, segments=3,
                                                length=2.0, continuous=kind == "continuous",
                                                extrapolation=extrapolation, bias=dense.bias)

    x_ = x.detach().requires_grad_()
    y = sparse_forward(x_)
    got = (y, *torch.autograd.grad(y, [x_, dense.weight, dense.bias], grad_y))
    for name, a, b in zip(["y", "dx", "dweight", "dbias"], got, expected, strict=True):
        assert a.shape == b.shape, name
        assert torch.allclose(a, b, atol=TOL, rtol=0), f"{name}: max diff {(a - b).abs().max().item():.3g}"


@pytest.mark.parametrize("kind", KINDS)
def test_layer_backend_sparse_matches_dense(kind):
    dense, sparse_layer = pair(kind, "linear", segments=4)
    assert sparse_layer.compute_backend(torch.zeros(1, 5)) == "sparse"
    assert dense.compute_backend(torch.zeros(1, 5)) == "dense"
    x = wide_input(6, 5)
    grad_y = torch.randn(6, 3, dtype=f64)
    for a, b in zip(grads(sparse_layer, x, grad_y), grads(dense, x, grad_y), strict=True):
        assert torch.allclose(a, b, atol=TOL, rtol=0)


def test_repeated_segments_accumulate_every_sample(impl):
    """Every sample in the same segment: dW[o, i, base + k] = phi_k(t_i) sum_b dy[b, o], nothing dropped."""
    n, segments, batch = 3, 4, 9
    weight = torch.randn(2, 3, (n - 1) * segments + 1, dtype=f64, requires_grad=True)
    transform = fc("continuous", 3, 2, n=n, segments=segments, dtype=f64).basis.transform
    x = torch.tensor([0.1, -0.7, 0.9], dtype=f64).expand(batch, 3)  # segments 2, 0, 3; t = -0.6, 0.2, 0.6
    y = functional.segment_sparse_linear(x, weight, transform, segments=segments, length=2.0, continuous=True)
    grad_y = torch.randn(batch, 2, dtype=f64)
    (grad_w,) = torch.autograd.grad(y, weight, grad_y)
    nodes = torch.tensor([-1.0, 0.0, 1.0], dtype=f64)
    expected = torch.zeros_like(weight)
    for i, (s, t) in enumerate([(2, -0.6), (0, 0.2), (3, 0.6)]):
        # quadratic Lagrange basis on {-1, 0, 1} by the product formula
        phi = torch.stack([torch.prod(torch.stack([(t - nodes[j]) / (nodes[k] - nodes[j])
                                                   for j in range(n) if j != k])) for k in range(n)])
        expected[:, i, 2 * s:2 * s + n] = grad_y.sum(0).unsqueeze(-1) * phi
    assert torch.allclose(grad_w, expected, atol=TOL, rtol=0)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("extrapolation", EXTRAPOLATIONS)
def test_gradcheck(kind, extrapolation, impl):
    torch.manual_seed(1)
    weight = torch.randn(2, 3, piecewise_width(3, 2, kind == "continuous"), dtype=f64,
                         requires_grad=True)
    bias = torch.randn(2, dtype=f64, requires_grad=True)
    transform = fc(kind, 3, 2, n=3, segments=2, dtype=f64).basis.transform
    # away from the kinks of clamp/mirror and from the breakpoints, where the functions are not differentiable
    x = torch.tensor([[-1.7, -0.6, 0.3], [0.45, 1.3, -0.2]], dtype=f64, requires_grad=True)

    def f(x, weight, bias):
        return functional.segment_sparse_linear(x, weight, transform, segments=2, length=2.0,
                                            continuous=kind == "continuous", extrapolation=extrapolation,
                                            bias=bias)

    assert torch.autograd.gradcheck(f, (x, weight, bias))


@pytest.mark.parametrize("out_features", [70, 130])
def test_float32_cpp_matches_dense(out_features):
    """The C++ kernels' float32 paths: 70 outputs make a partial tile of 128, 130 a full one and a partial
    one; K = 33 mixes full 16 x 16 transpose blocks of the weight with a partial one."""
    _cpp_or_skip()
    dense, sparse_layer = pair("continuous", n=5, segments=8, in_features=40, out_features=out_features,
                               dtype=torch.float32)
    x = wide_input(33, 40, dtype=torch.float32)
    grad_y = torch.randn(33, out_features)
    for a, b in zip(grads(sparse_layer, x, grad_y), grads(dense, x, grad_y), strict=True):
        assert (a - b).abs().max() <= 1e-5 * b.abs().max()


@pytest.mark.parametrize("wanted", ["input", "weight"])
def test_partial_gradients_match_dense(impl, wanted):
    """An input layer (x without grad) skips d phi, a frozen layer skips d W: what is computed still
    matches."""
    dense, sparse_layer = pair("discontinuous", n=4, segments=5, in_features=6, out_features=3, bias=False)
    x = wide_input(17, 6)
    grad_y = torch.randn(17, 3, dtype=f64)
    results = []
    for layer in (sparse_layer, dense):
        layer.weight.requires_grad_(wanted == "weight")
        inputs = x.clone().requires_grad_(wanted == "input")
        target = inputs if wanted == "input" else layer.weight
        if layer is sparse_layer:
            y = functional.segment_sparse_linear(inputs, layer.weight, layer.basis.transform, segments=5,
                                                 length=2.0, continuous=False)
        else:
            y = layer(inputs)
        results.append(torch.autograd.grad(y, target, grad_y)[0])
    assert (results[0] - results[1]).abs().max() <= TOL


def test_large_weight_gradients_reuse_freed_memory_and_stay_exact():
    """Weight gradients of 8 MiB and more come from the kernels' cache of freed buffers: a reused buffer still
    holds the previous step's values, so every entry must be overwritten, and a gradient still held must never
    be handed out again. K = 513 also puts the kernels on input-major rows (one input per panel)."""
    _cpp_or_skip()
    dense, sparse_layer = pair("continuous", n=5, segments=128, in_features=64, out_features=64, bias=False,
                               dtype=torch.float32)  # weight 64 x 64 x 513 floats: 8.4 MB
    x = wide_input(50, 64, dtype=torch.float32)
    _, expected_x, expected_w = grads(dense, x, torch.ones(50, 64))

    def step():
        sparse_layer.weight.grad = None
        inputs = x.clone().requires_grad_()
        sparse_layer(inputs).sum().backward()
        return sparse_layer.weight.grad, inputs.grad

    held, input_grad = step()
    second, _ = step()
    assert second.data_ptr() != held.data_ptr()
    address = second.data_ptr()
    del second
    third, _ = step()  # the freed buffer comes back, full of the previous step's values
    assert third.data_ptr() == address
    for gradient in (held, third):
        assert (gradient - expected_w).abs().max() <= 1e-5 * expected_w.abs().max()
    assert (input_grad - expected_x).abs().max() <= 1e-5 * expected_x.abs().max()


def test_nan_input_propagates_without_crashing(impl):
    dense, _ = pair("continuous")
    x = torch.zeros(2, 5, dtype=f64)
    x[0, 1] = float("nan")
    y = functional.segment_sparse_linear(x, dense.weight, dense.basis.transform, segments=3, length=2.0,
                                     continuous=True)
    assert torch.isnan(y[0]).all() and not torch.isnan(y[1]).any()


def test_backend_is_a_hyperparameter():
    layer = fc("discontinuous", 4, 2, n=3, segments=5, backend="sparse")
    assert layer.hparams()["backend"] == "sparse"
    assert "backend='sparse'" in repr(layer)
    rebuilt = fc(**layer.hparams())
    assert rebuilt.compute_backend(torch.zeros(3, 4)) == "sparse"
    assert "backend" not in repr(fc("continuous", 4, 2, n=3, segments=5))  # the default, auto, is not shown
    with pytest.raises(ValueError, match="backend 'sparse' needs kind continuous or discontinuous"):
        fc("continuous_prod", 4, 2, n=3, segments=5, backend="sparse")  # product units: dense only
    with pytest.raises(ValueError, match="unknown backend 'fast'; allowed: auto, dense, fused, sparse"):
        layer.backend = "fast"  # set after construction: refused when set, the layer keeps its backend
    assert layer.backend == "sparse" and layer.compute_backend(torch.zeros(3, 4)) == "sparse"
    product_unit = fc("continuous_prod", 4, 2, n=3, segments=5)
    with pytest.raises(ValueError, match="backend 'sparse' needs kind continuous or discontinuous"):
        product_unit.backend = "sparse"
    convolution = hol.layers.conv("continuous", 2, 2, 3, n=3, segments=2)
    with pytest.raises(ValueError, match="unknown backend 'sparse'; allowed: auto, dense"):
        convolution.backend = "sparse"
    assert convolution.backend == "auto"


@pytest.mark.parametrize("kind, options", [("continuous", {"backend": "fast"}),
                                           ("polynomial", {"backend": "sparse"}),
                                           ("continuous_prod", {"segments": 2, "backend": "sparse"}),
                                           ("fourier", {"backend": "sparse"})])
def test_bad_backend(kind, options):
    with pytest.raises(ValueError, match="backend"):
        fc(kind, 3, 2, **options)


@pytest.mark.parametrize("segments, batch, device, expected", [
    (1, 1024, "cpu", "dense"),     # K = n: the GEMM does the same work, faster
    (2, 1024, "cpu", "sparse"),    # K = 9 > a + b n + c K / B = 3.6 + 4.5 + 0.04
    (16, 1024, "cpu", "sparse"),
    (64, 1024, "cpu", "sparse"),
    (64, 1, "cpu", "dense"),       # one sample: c K = 4 K weight passes exceed the dense path's K
])
def test_cost_model_decisions(segments, batch, device, expected, monkeypatch):
    monkeypatch.setenv("HOL_SPARSE_COST", "3.6,0.9,4.0")
    choice = cost_model.choose_backend(n=5, segments=segments, batch=batch, in_features=256, out_features=256,
                                   device=device)
    assert choice == expected


def test_devices_that_cannot_be_measured_take_the_dense_path(monkeypatch):
    """No measurement, no sparse path: devices without a sparse kernel (meta), CUDA without a GPU, whatever
    the CPU's cost says."""
    monkeypatch.setenv("HOL_SPARSE_COST", "0,0,0")  # the CPU: sparse wherever K > n
    options = {"n": 5, "segments": 64, "batch": 1024, "in_features": 256, "out_features": 256}
    assert cost_model.choose_backend(device="cpu", **options) == "sparse"
    assert cost_model.choose_backend(device="meta", **options) == "dense"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert cost_model.choose_backend(device="cuda", **options) == "dense"


def test_cuda_cost_has_its_own_override(monkeypatch):
    """HOL_SPARSE_COST_CUDA decides on CUDA (where the Triton kernels can be measured), not the CPU's."""

    monkeypatch.setattr(cost_model, "measurable", lambda device: True)
    monkeypatch.setenv("HOL_SPARSE_COST", "0,0,0")
    options = {"n": 5, "batch": 1024, "in_features": 256, "out_features": 256, "device": "cuda:0"}
    monkeypatch.setenv("HOL_SPARSE_COST_CUDA", "3.6,0.9,4.0")
    assert cost_model.choose_backend(segments=2, **options) == "sparse"  # K = 9 > 3.6 + 4.5 + 4 K / B
    monkeypatch.setenv("HOL_SPARSE_COST_CUDA", "20,0,0")
    assert cost_model.choose_backend(segments=2, **options) == "dense"
    assert cost_model.choose_backend(segments=8, **options) == "sparse"  # K = 33 > 20
    monkeypatch.setenv("HOL_SPARSE_COST_CUDA", "1,2")
    with pytest.raises(ValueError, match="HOL_SPARSE_COST_CUDA"):
        cost_model.choose_backend(segments=2, **options)


@pytest.mark.parametrize("text", ["nan,nan,nan", "inf,0,0", "1,2,-3", "1;2;3", "1,2,3,nan", "1,2,3,4,5",
                                  "fast"])
def test_cost_override_must_be_three_or_four_finite_numbers(text):

    with pytest.raises(ValueError, match=r"HOL_SPARSE_COST must be three or four finite numbers >= 0 "
                                         r"'a,b,c\[,d\]'.*got "):
        cost_model.parse_cost(text, "HOL_SPARSE_COST")
    assert cost_model.parse_cost("1,2,3") == cost_model.SparseCost(1, 2, 3, 0)
    assert cost_model.parse_cost("1,2,3,4e6") == cost_model.SparseCost(1, 2, 3, 4e6)


def test_calibration_fit_recovers_the_model_it_inverts():
    """Times generated by the cost model itself (in units of the dense reference's) give its terms back: the
    sparse path's ``a, b, d`` and its weight passes ``c`` beyond the dense path's ``c'``."""
    from hol.ops.cost import CALIBRATION_NODES, TINY, fit

    a, b, c, dense_passes, d = 3.6, 0.9, 4.0, 6.0, 3e6
    batch, small_batch, features = 512, 16, 256
    reference = batch * features**2 * 9  # the dense reference's multiply-adds

    def sparse(rows, size, n, width):
        return rows * size**2 * (a + b * n) + (c + dense_passes) * size**2 * width + d

    def dense(rows, size, width):
        return (rows + dense_passes) * size**2 * width

    ratio = {n: sparse(batch, features, n, 9) / reference for n in CALIBRATION_NODES}
    ratio["small"] = sparse(small_batch, features, 5, 65) / reference
    ratio["small dense"] = dense(small_batch, features, 65) / reference
    ratio["tiny sparse"] = sparse(TINY, TINY, 5, 9) / reference
    ratio["tiny dense"] = dense(TINY, TINY, 9) / reference
    assert fit(ratio, batch, small_batch, features) == pytest.approx((a, b, c, d), rel=2e-3)


@pytest.mark.parametrize("overhead, size, batch, expected", [
    (0, 32, 64, "sparse"),      # no per-call term: K = 33 > a + b n + c K / B = 8.1 + 2.1
    (4e6, 32, 64, "dense"),     # the sparse path's fixed cost: 4e6 / (I O) = 3906 > B K - 64 x 10.2
    (4e6, 256, 1024, "sparse"),  # a large layer: the same fixed cost is 61 per (I O), beside B K = 33792
])
def test_the_per_call_term_decides_small_layers(overhead, size, batch, expected, monkeypatch):
    monkeypatch.setenv("HOL_SPARSE_COST", f"3.6,0.9,4.0,{overhead}")
    choice = cost_model.choose_backend(n=5, segments=8, batch=batch, in_features=size, out_features=size)
    assert choice == expected


def test_tracing_before_a_calibration_uses_the_cpu_default(monkeypatch, tmp_path):
    """While a graph is traced nothing is measured: the CPU falls back on its measured default fit."""

    monkeypatch.delenv("HOL_SPARSE_COST", raising=False)
    monkeypatch.setenv("HOL_SPARSE_CPP", "0")  # the cache key then needs no kernel build
    monkeypatch.setenv("HOL_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(cost_model, "_measured", {})
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    assert cost_model.sparse_cost(torch.float32, "inputs", "cpu") == cost_model.DEFAULT_COST


def test_auto_layer_follows_cost_model():
    small, large = fc("continuous", 8, 4, n=5, segments=1), fc("continuous", 8, 4, n=5, segments=64)
    assert small.compute_backend(torch.zeros(512, 8)) == "dense"
    expected = cost_model.choose_backend(n=5, segments=64, batch=512, in_features=8, out_features=4)
    assert large.compute_backend(torch.zeros(512, 8)) == expected == "sparse"


@pytest.mark.parametrize("device", ["cpu", "cuda:0"])
def test_decisions_after_the_first_read_no_files(device, monkeypatch, tmp_path):
    """``backend="auto"`` asks the cost model at every forward: after the first decision on a device, deciding
    reads nothing from disk (no /proc/cpuinfo, kernel sources or cost cache: it used to cost more than the
    layer's own forward at small sizes)."""
    from pathlib import Path

    monkeypatch.delenv("HOL_SPARSE_COST", raising=False)
    monkeypatch.delenv("HOL_SPARSE_COST_CUDA", raising=False)
    monkeypatch.setenv("HOL_SPARSE_CPP", "0")  # the cache key then needs no kernel build
    monkeypatch.setenv("HOL_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(cost_model, "_measured", {})
    monkeypatch.setattr(cost_model, "measurable", lambda device: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "a GPU")
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    # a cache of its own, so the stand-in name never reaches the process's cache (later tests, a real GPU)
    monkeypatch.setattr(cost_model, "_gpu_name", functools.cache(cost_model._gpu_name.__wrapped__))
    monkeypatch.setattr(cost_model, "calibrate", lambda dtype, step, device: cost_model.SparseCost(0, 0, 0))
    options = {"n": 5, "segments": 8, "batch": 64, "in_features": 16, "out_features": 16, "device": device}
    assert cost_model.choose_backend(**options) == "sparse"  # calibrated (here: a stand-in) and cached

    def no_reading(*args, **kwargs):
        raise AssertionError("the cost model read a file after its first decision")

    monkeypatch.setattr(Path, "read_text", no_reading)
    monkeypatch.setattr(Path, "read_bytes", no_reading)
    monkeypatch.setattr("builtins.open", no_reading)
    assert cost_model.choose_backend(**options) == "sparse"
    assert cost_model.choose_backend(**{**options, "segments": 1}) == "dense"


@pytest.mark.parametrize("kind", KINDS)
def test_forward_mode_through_a_backward_without_create_graph(kind, impl):
    """Tangents of a forward-mode level flow through a plain ``autograd.grad`` (no ``create_graph``): the
    sparse path's backward keeps its differentiable products there, as the dense path's GEMMs are, instead of
    silently dropping the tangent of the gradient."""
    import torch.autograd.forward_ad as fwAD

    dense, sparse_layer = pair(kind, bias=False)
    x, tangent = wide_input(6, 5), torch.randn(6, 5, dtype=f64)
    results = []
    for layer in (dense, sparse_layer):
        with fwAD.dual_level():
            loss = layer(fwAD.make_dual(x, tangent)).pow(2).sum()
            (gradient,) = torch.autograd.grad(loss, layer.weight)
            results.append(fwAD.unpack_dual(gradient))
    (expected, expected_tangent), (got, got_tangent) = results
    assert expected_tangent is not None and got_tangent is not None
    assert torch.allclose(got, expected, atol=TOL, rtol=0)
    assert torch.allclose(got_tangent, expected_tangent, atol=1e-11, rtol=0)


@pytest.mark.parametrize("kind", KINDS)
def test_a_batched_backward_stays_differentiable(kind, impl):
    """``is_grads_batched`` runs a backward under vmap; with ``create_graph`` its result must still depend on
    the weights, as the dense path's does: a vectorized Hessian's weight gradient (the Functions' generated
    vmap rule used to lose that graph, giving a wrong third derivative)."""
    dense, sparse_layer = pair(kind, bias=False)
    x = wide_input(5)
    results = []
    for layer in (dense, sparse_layer):
        hessian = torch.autograd.functional.hessian(lambda z, layer=layer: layer(z).pow(3).sum(), x,
                                                    vectorize=True, create_graph=True)
        (weight_gradient,) = torch.autograd.grad(hessian.pow(2).sum(), layer.weight)
        results.append((hessian, weight_gradient))
    (expected, expected_gradient), (got, got_gradient) = results
    assert torch.allclose(got, expected, atol=1e-11, rtol=0)
    assert torch.allclose(got_gradient, expected_gradient, atol=1e-9, rtol=1e-12)


def test_auto_decides_once_per_batch_class_dtype_device_and_step(monkeypatch):
    """``backend="auto"`` asks the cost model once per (batch size class, dtype, device, step) and reuses the
    decision; a batch of another power of two, another dtype, device or step, or setting ``backend``, asks
    again."""
    from hol.layers import fully_connected

    asked = []

    def choose(**options):
        device = torch.device(options["device"]).type
        asked.append((options["batch"], options["dtype"], device, options["step"]))
        return "sparse"

    monkeypatch.setattr(fully_connected, "choose_backend", choose)
    layer = fc("continuous", 3, 2, n=3, segments=4)
    x = torch.rand(64, 3)
    for rows in (40, 33, 63, 40):  # one batch class, [32, 64): decided at 32
        layer(x[:rows])
    assert asked == [(32, torch.float32, "cpu", "weights")]
    layer(x[:64])  # the next class
    layer(x[:10].requires_grad_())  # another class and step
    layer.double()(x[:40].double())  # another dtype
    layer.to("meta")(x[:40].double().to("meta"))  # another device
    assert asked[1:] == [(64, torch.float32, "cpu", "weights"), (8, torch.float32, "cpu", "inputs"),
                         (32, torch.float64, "cpu", "weights"), (32, torch.float64, "meta", "weights")]
    layer.backend = "auto"  # setting the backend forgets the decisions
    layer(x[:40].double().to("meta"))
    assert len(asked) == 6 and asked[-1] == asked[-2]


def test_auto_takes_the_fused_path_where_its_cost_is_lowest(monkeypatch):
    """With a fused cost like this machine's calibration (the other paths' basis values cost ~4600
    multiply-adds per sample and input, the fused operator ~700 plus 1.3 per multiply-add), a narrow layer
    takes the fused path, for every Lagrange kind; a prohibitive cost, autocast or a product unit keep the
    other paths; a malformed override is refused naming the variable."""
    from hol.ops import lagrange_linear

    if lagrange_linear.extension() is None:
        pytest.skip("the fused C++ kernels cannot be built here")
    monkeypatch.setenv("HOL_FUSED_COST", "4566,682,1.3")
    x = torch.rand(4096, 16, requires_grad=True)
    for kind, options in (("continuous", {"segments": 8}), ("discontinuous", {"segments": 2}),
                          ("polynomial", {})):
        assert fc(kind, 16, 16, n=5, **options).compute_backend(x) == "fused"
    assert fc("continuous_prod", 16, 16, n=5, segments=8).compute_backend(x) == "dense"
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert fc("continuous", 16, 16, n=5, segments=8).compute_backend(x) != "fused"
    monkeypatch.setenv("HOL_FUSED_COST", "0,1e9,1e9")
    assert fc("continuous", 16, 16, n=5, segments=8).compute_backend(x) == "sparse"
    monkeypatch.setenv("HOL_FUSED_COST", "1,2")
    with pytest.raises(ValueError, match="HOL_FUSED_COST must be three finite numbers >= 0 'h,p,q'"):
        fc("continuous", 16, 16, n=5, segments=8).compute_backend(x)


def test_fused_calibration_gives_finite_costs():
    from hol.ops import cost as cost_model
    from hol.ops import lagrange_linear

    if lagrange_linear.extension() is None:
        pytest.skip("the fused C++ kernels cannot be built here")
    measured = cost_model.calibrate_fused(torch.float64, "inputs", batch=64, rounds=1)
    assert all(0 <= value < math.inf for value in measured)
    with pytest.raises(ValueError, match="unknown step 'backward'"):
        cost_model.calibrate_fused(torch.float32, "backward")
