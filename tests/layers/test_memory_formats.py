"""Memory formats of the convolutions behave as for ``nn.ConvNd``: a contiguous input gives a contiguous
output and input gradient (``.view`` works), a channels-last input channels-last ones;
``model.to(memory_format=...)`` converts networks holding hol convolutions; ``torch.compile`` with dynamic
shapes compiles them (Inductor failed on the channels-last expansion of a contiguous input)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import hol
from hol.vae import VAE

HIGH_ORDER = [kind for kind in hol.layers.conv_kinds() if kind not in ("linear", "relu")]
TORCH_CONV = {(1, False): nn.Conv1d, (2, False): nn.Conv2d, (3, False): nn.Conv3d,
              (1, True): nn.ConvTranspose1d, (2, True): nn.ConvTranspose2d, (3, True): nn.ConvTranspose3d}
CHANNELS_LAST = {2: torch.channels_last, 3: torch.channels_last_3d}


def _layout(tensor: torch.Tensor, dim: int) -> tuple[bool, bool]:
    channels_last = CHANNELS_LAST.get(dim)
    in_channels_last = channels_last is not None and tensor.is_contiguous(memory_format=channels_last)
    return tensor.is_contiguous(), in_channels_last


@pytest.mark.parametrize("transpose", [False, True], ids=["conv", "transposed"])
@pytest.mark.parametrize("kind", HIGH_ORDER)
@pytest.mark.parametrize(("dim", "channels_last"), [(1, False), (2, False), (2, True), (3, False), (3, True)],
                         ids=["1d", "2d", "2d-channels_last", "3d", "3d-channels_last"])
def test_outputs_and_input_gradients_have_the_layout_torch_conv_gives(kind, dim, transpose, channels_last):
    options = {"segments": 2} if kind in ("continuous", "discontinuous") else {}
    layer = hol.layers.conv(kind, 3, 4, 3, dim=dim, transpose=transpose, **options)
    reference = TORCH_CONV[dim, transpose](3, 4, 3)
    x = torch.rand(2, 3, *[6] * dim)
    if channels_last:
        x = x.to(memory_format=CHANNELS_LAST[dim])
    layer_inputs, reference_inputs = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    y, y_reference = layer(layer_inputs), reference(reference_inputs)
    y.square().sum().backward()
    y_reference.square().sum().backward()
    assert _layout(y, dim) == _layout(y_reference, dim)
    assert _layout(layer_inputs.grad, dim) == _layout(reference_inputs.grad, dim)
    if not channels_last:
        assert y.view(-1).shape == (y.numel(),)


@pytest.mark.parametrize("name", ["convnet", "vae"])
def test_networks_convert_to_channels_last_with_the_same_numbers(name):
    torch.manual_seed(0)
    if name == "convnet":
        net = hol.networks.ConvNet("continuous", 3, [4, 5], 3, out_features=2, segments=2)
    else:
        net = VAE("continuous", 3, 8, [2, 3], latent_dim=2, segments=2)
    net = net.double().eval()
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64)

    def output(module, inputs):
        y = module(inputs)
        return y if isinstance(y, torch.Tensor) else y.decoded

    expected = output(net, x)
    net = net.to(memory_format=torch.channels_last)
    assert torch.allclose(output(net, x.to(memory_format=torch.channels_last)), expected, rtol=0, atol=1e-12)
    assert net.to(torch.float32, memory_format=torch.contiguous_format) is net
    assert all(parameter.dtype == torch.float32 for parameter in net.parameters())


@pytest.mark.slow
@pytest.mark.parametrize("transpose", [False, True], ids=["conv", "transposed"])
def test_compile_with_dynamic_shapes_matches_eager_at_every_image_size(transpose):
    torch.manual_seed(0)
    layer = hol.layers.conv("continuous", 2, 3, 3, dim=2, transpose=transpose, segments=2)
    compiled = torch.compile(layer, dynamic=True)
    for size in (8, 10, 13):
        x = torch.rand(2, 2, size, size)
        inputs, eager_inputs = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
        y, y_eager = compiled(inputs), layer(eager_inputs)
        y.square().sum().backward()
        y_eager.square().sum().backward()
        torch.testing.assert_close(y, y_eager)
        torch.testing.assert_close(inputs.grad, eager_inputs.grad)
