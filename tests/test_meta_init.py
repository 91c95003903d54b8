"""Meta-device initialization, the two recipes of large-model loading: a module built on the meta device and
materialized with ``to_empty()`` + ``reset_parameters()`` of every submodule (FSDP's) equals one built
normally from the same seed, buffers included; and one loaded with ``load_state_dict(..., assign=True)``
(fast loading) computes on the state dict's device with the same numbers. Every layer family and network."""
from __future__ import annotations

import pytest
import torch

import hol
from hol.vae import VAE


def _builders():
    for kind in hol.layers.kinds():
        options = {"dims": 2} if kind == "polynomial_nd" else {}
        shape = (5, 3, 2) if kind == "polynomial_nd" else (5, 3)
        yield f"fc-{kind}", lambda kind=kind, options=options: hol.layers.fc(kind, 3, 4, **options), shape
    for kind in hol.layers.conv_kinds():
        yield f"conv-{kind}", lambda kind=kind: hol.layers.conv(kind, 2, 3, 3, dim=2), (2, 2, 6, 6)
    yield ("transposed-continuous",
           lambda: hol.layers.conv("continuous", 2, 3, 3, dim=1, transpose=True, segments=2), (2, 2, 7))
    yield ("mlp", lambda: hol.networks.MLP("continuous", 2, 1, segments=2, input_domains=[[0, 4], [-2, 2]],
                                           input_layer="fourier_features"), (5, 2))
    yield "convnet", lambda: hol.networks.ConvNet("discontinuous", 1, [2, 3], 3, out_features=4), (2, 1, 8, 8)
    yield "vae", lambda: VAE("continuous", 1, 8, [2, 3], latent_dim=2, segments=2).eval(), (2, 1, 8, 8)


BUILDERS = {name: (build, shape) for name, build, shape in _builders()}


def _output(module, x):
    y = module(x)
    return y if isinstance(y, torch.Tensor) else torch.cat([y.decoded.flatten(1), y.mu, y.logvar], dim=1)


@pytest.mark.parametrize("name", BUILDERS)
def test_to_empty_and_reset_parameters_rebuild_the_module_of_the_same_seed(name):
    build, shape = BUILDERS[name]
    torch.manual_seed(0)
    reference = build()
    with torch.device("meta"):
        module = build()
    module.to_empty(device="cpu")
    torch.manual_seed(0)
    for submodule in module.modules():
        if hasattr(submodule, "reset_parameters"):
            submodule.reset_parameters()
    expected = reference.state_dict()
    assert all(torch.equal(value, expected[key]) for key, value in module.state_dict().items())
    x = torch.rand(shape)
    assert torch.equal(_output(module, x), _output(reference, x))


@pytest.mark.parametrize("name", BUILDERS)
def test_load_state_dict_with_assign_into_a_meta_module_computes_on_the_state_dicts_device(name):
    build, shape = BUILDERS[name]
    torch.manual_seed(0)
    reference = build().double()
    with torch.device("meta"):
        module = build()
    module.load_state_dict(reference.state_dict(), assign=True)
    x = torch.rand(shape, dtype=torch.float64)
    y = _output(module, x)
    assert y.device.type == "cpu" and y.dtype == torch.float64
    assert torch.equal(y, _output(reference, x))
