"""Graph capture and accounting of hol's operators as torch users do it: ``torch.jit.trace`` of the
segment-sparse path saves and loads (with its derivatives), ``torch.export(strict=True)`` takes a dynamic
batch with ``backend="auto"``, ``FlopCounterMode`` counts hol's operators (they counted 0 FLOPs), and
``torch.jit.script``, which hol does not support, says so in one line naming the captures that work."""
from __future__ import annotations

import io
import warnings

import pytest
import torch
from torch.export import Dim
from torch.utils.flop_counter import FlopCounterMode

import hol


@pytest.mark.parametrize("backend", ["sparse", "fused"])
@pytest.mark.parametrize("kind", ["continuous", "discontinuous"])
def test_a_traced_layer_of_an_operator_saves_loads_and_differentiates_as_the_layer(kind, backend):
    torch.manual_seed(0)
    layer = hol.layers.fc(kind, 3, 2, segments=4, backend=backend).double()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on Python values it records as constants
        traced = torch.jit.trace(layer, torch.rand(5, 3, dtype=torch.float64))
    buffer = io.BytesIO()
    torch.jit.save(traced, buffer)
    buffer.seek(0)
    loaded = torch.jit.load(buffer)
    x = torch.rand(9, 3, dtype=torch.float64, requires_grad=True)
    y, y_layer = loaded(x), layer(x)
    torch.testing.assert_close(y, y_layer)
    (slope,) = torch.autograd.grad(y.sum(), x, create_graph=True)
    (slope_layer,) = torch.autograd.grad(y_layer.sum(), x, create_graph=True)
    torch.testing.assert_close(slope, slope_layer)
    (curvature,), (curvature_layer,) = (torch.autograd.grad(s.sum(), x) for s in (slope, slope_layer))
    torch.testing.assert_close(curvature, curvature_layer)


@pytest.mark.parametrize("strict", [False, True], ids=["non_strict", "strict"])
@pytest.mark.parametrize("backend", ["auto", "sparse", "dense"])
def test_export_with_a_dynamic_batch_takes_every_backend(backend, strict):
    torch.manual_seed(0)
    layer = hol.layers.fc("continuous", 3, 2, segments=4, backend=backend)
    program = torch.export.export(layer, (torch.rand(5, 3),), dynamic_shapes={"x": {0: Dim("batch")}},
                                  strict=strict)
    for batch in (1, 11, 200):
        x = torch.rand(batch, 3)
        torch.testing.assert_close(program.module()(x), layer(x))


def _flops(layer: torch.nn.Module, x: torch.Tensor) -> dict[str, int]:
    with FlopCounterMode(display=False) as counter:
        layer(x).sum().backward()
    return {str(operator): count for operator, count in counter.get_flop_counts()["Global"].items()}


def test_flop_counter_counts_the_sparse_products_as_a_linear_layer_of_the_active_values():
    batch, inputs, outputs, n = 64, 8, 16, 5
    layer = hol.layers.fc("continuous", inputs, outputs, n=n, segments=4, backend="sparse")
    counts = _flops(layer, torch.rand(batch, inputs, requires_grad=True))
    linear = 2 * batch * inputs * n * outputs  # nn.Linear(I n, O) on the n values each input touches
    for operator in ("segment_sparse_product", "segment_sparse_phi_grad", "segment_sparse_weight_grad"):
        assert counts[f"hol.{operator}"] == linear


def test_flop_counter_counts_product_units_forward_and_backward():
    batch, inputs, outputs, n = 32, 6, 4, 3
    layer = hol.layers.fc("polynomial_prod", inputs, outputs, n=n)
    counts = _flops(layer, torch.rand(batch, inputs, requires_grad=True))
    links = batch * inputs * outputs
    assert counts["hol.product_units"] == 2 * links * n + 2 * links
    assert counts["hol.product_units_backward"] == 2 * links * n + 4 * links + 2 * (2 * links * n)


@pytest.mark.parametrize("module", [
    hol.layers.fc("continuous", 2, 3), hol.layers.fc("polynomial_prod", 2, 3),
    hol.layers.conv("fourier", 1, 2, 3), hol.networks.MLP("discontinuous", 2, 1),
], ids=["fc", "product", "conv", "mlp"])
def test_script_says_in_one_line_that_hol_layers_are_captured_by_compile_export_or_trace(module):
    with pytest.raises(TypeError, match=r"^torch.jit.script does not support hol layers \((HighOrderLinear|"
                                        r"HighOrderConv)\); capture them with torch.compile, torch.export or "
                                        r"torch.jit.trace$"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's deprecation of TorchScript
        torch.jit.script(module)
