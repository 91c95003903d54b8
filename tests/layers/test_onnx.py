"""ONNX export of every layer kind, fully connected and convolutional (transposed too), and of the networks,
with both of torch's exporters (TorchScript-based ``dynamo=False`` and ``dynamo=True``): onnxruntime runs the
graph and gives the module's numbers. (Product units export their torch formula, the segment-sparse path the
dense one: ONNX has neither operator.)"""
from __future__ import annotations

import io
import warnings

import numpy as np
import onnxruntime
import pytest
import torch

import hol

PIECEWISE = ("continuous", "discontinuous", "continuous_prod", "discontinuous_prod")


def _conv(kind: str, transpose: bool) -> torch.nn.Module:
    return hol.layers.conv(kind, 2, 3, 3, dim=2, transpose=transpose)


def _mlp() -> torch.nn.Module:
    return hol.networks.MLP("discontinuous_prod", 2, 1, segments=2, input_domains=[[0, 4], [-1, 1]])


def _modules():
    for kind in hol.layers.kinds():
        options = {"dims": 2} if kind == "polynomial_nd" else {"segments": 3} if kind in PIECEWISE else {}
        shape = (4, 3, 2) if kind == "polynomial_nd" else (4, 3)
        yield f"fc-{kind}", lambda kind=kind, options=options: hol.layers.fc(kind, 3, 2, **options), shape
    for kind in hol.layers.conv_kinds():
        for transpose in (False, True):
            name = f"conv-{kind}{'-transposed' if transpose else ''}"
            yield name, lambda kind=kind, t=transpose: _conv(kind, t), (1, 2, 6, 6)
    yield "mlp", _mlp, (5, 2)
    yield "convnet", lambda: hol.networks.ConvNet("continuous", 1, [2, 3], 3, out_features=4), (2, 1, 8, 8)


MODULES = {name: (build, shape) for name, build, shape in _modules()}


def _export(module: torch.nn.Module, x: torch.Tensor, dynamo: bool) -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporters' advice on opsets and on the other exporter
        if dynamo:
            program = torch.onnx.export(module, (x,), dynamo=True, verbose=False)
            return program.model_proto.SerializeToString()
        buffer = io.BytesIO()
        torch.onnx.export(module, (x,), buffer, dynamo=False, input_names=["x"])
        return buffer.getvalue()


@pytest.mark.slow
@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
@pytest.mark.parametrize("name", MODULES)
def test_exported_graph_runs_in_onnxruntime_with_the_modules_numbers(name, dynamo):
    build, shape = MODULES[name]
    torch.manual_seed(0)
    module = build().eval()
    x = 2 * torch.rand(shape) - 1
    session = onnxruntime.InferenceSession(_export(module, x, dynamo))
    (output,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        expected = module(x).numpy()
    # float32 in another order: Fourier features' phases reach 2 pi * 15, where 1 ulp is 4e-6
    np.testing.assert_allclose(output, expected, rtol=1e-5, atol=1e-5)
