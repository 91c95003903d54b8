"""Convolutional high-order layers against an independent loop reference and against torch's convolutions.

The reference evaluates every link from the definitions alone (Lagrange products on Chebyshev-Lobatto nodes,
Fourier sums) and loops over channels and taps, so it shares no code with the layer.
"""
import io
import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import hol.layers
from hol.layers import HighOrderConv, conv, conv_kinds

DOUBLE = torch.float64
HIGH_ORDER = ("polynomial", "continuous", "discontinuous", "fourier")
# kind -> options giving a non-trivial basis of that kind
KIND_OPTIONS = {
    "continuous": {"n": 3, "segments": 2},
    "discontinuous": {"n": 3, "segments": 2},
    "polynomial": {"n": 4},
    "fourier": {"n": 2},
}


# ------------------------------------------------------------------------------------------------------------
# Independent reference


def link_values(kind: str, weight: torch.Tensor, v: torch.Tensor, n: int, segments: int, length: float):
    """``f(v)`` of the links ``weight[O, K]`` at points ``v[...]``, by definition. Shape ``[O, ...]``."""
    if kind == "fourier":
        omega = 2 * math.pi / length
        out = weight[:, 0].reshape(-1, *[1] * v.dim()) * torch.ones_like(v)
        for h in range(1, n + 1):
            out = out + weight[:, 2 * h - 1].reshape(-1, *[1] * v.dim()) * torch.cos(h * omega * v)
            out = out + weight[:, 2 * h].reshape(-1, *[1] * v.dim()) * torch.sin(h * omega * v)
        return out
    nodes = [-math.cos(math.pi * k / (n - 1)) for k in range(n)]
    u = (v + length / 2) / length * segments
    s = u.floor().clamp(0, segments - 1)
    t = 2 * (u - s) - 1
    start = s.long() * (n if kind == "discontinuous" else n - 1)
    out = 0
    for k in range(n):
        phi = torch.ones_like(t)
        for j in range(n):
            if j != k:
                phi = phi * (t - nodes[j]) / (nodes[k] - nodes[j])
        out = out + weight[:, start + k] * phi  # [O, ...]
    return out


def reference_index(index: torch.Tensor, size: int, mode: str):
    """Source index of tap positions ``index`` in an axis of ``size`` and whether the tap is a real pixel."""
    inside = (index >= 0) & (index < size)
    if mode == "reflect":
        index = torch.where(index < 0, -index, torch.where(index >= size, 2 * (size - 1) - index, index))
    elif mode == "replicate":
        index = index.clamp(0, size - 1)
    elif mode == "circular":
        index = index % size
    else:
        index = index.clamp(0, size - 1)
    return index, inside


def reference_conv(layer: HighOrderConv, x: torch.Tensor) -> torch.Tensor:
    """``y[b,o,p] = sum_{c,delta} f_{o,c,delta}(x[b,c,p*stride + delta*dilation - padding])`` by loops."""
    h = layer.hparams()
    dim, stride, dilation, groups = h["dim"], h["stride"], h["dilation"], h["groups"]
    padding, mode = h["padding"], h["padding_mode"]
    batch, channels, *size = x.shape
    out_size = [(size[d] + 2 * padding[d] - dilation[d] * (h["kernel_size"][d] - 1) - 1) // stride[d] + 1
                for d in range(dim)]
    c_group, o_group = channels // groups, h["out_channels"] // groups
    y = torch.zeros(batch, h["out_channels"], *out_size, dtype=x.dtype)
    for c, delta in itertools.product(range(channels), itertools.product(*map(range, h["kernel_size"]))):
        axes = [reference_index(torch.arange(out_size[d]) * stride[d] + delta[d] * dilation[d] - padding[d],
                                size[d], mode) for d in range(dim)]
        grids = torch.meshgrid(*[a[0] for a in axes], indexing="ij")
        inside = math.prod(torch.meshgrid(*[a[1] for a in axes], indexing="ij")).bool()
        v = x[(slice(None), c, *grids)]  # [B, *out]
        if mode == "input_zeros":
            v = torch.where(inside, v, torch.zeros_like(v))
        g = c // c_group
        outs = slice(g * o_group, (g + 1) * o_group)
        f = link_values(layer.kind, layer.weight[(outs, c % c_group, *delta)], v, h["n"], h["segments"],
                        h["length"]).movedim(0, 1)  # [B, O_g, *out]
        if mode == "zeros":
            f = torch.where(inside, f, torch.zeros_like(f))
        y[:, outs] += f
    if h["rescale_output"]:
        y = y / (c_group * math.prod(h["kernel_size"]))
    if layer.bias is not None:
        y = y + layer.bias.reshape(-1, *[1] * dim)
    return y


def reference_conv_transpose(layer: HighOrderConv, x: torch.Tensor) -> torch.Tensor:
    """Each ``x[b,c,q]`` adds ``f_{c,o,delta}(x[b,c,q])`` to ``y[b,o,q*stride + delta*dilation - padding]``.
    """
    h = layer.hparams()
    dim, stride, dilation, groups, padding = h["dim"], h["stride"], h["dilation"], h["groups"], h["padding"]
    batch, channels, *size = x.shape
    out_size = [(size[d] - 1) * stride[d] - 2 * padding[d] + dilation[d] * (h["kernel_size"][d] - 1)
                + h["output_padding"][d] + 1 for d in range(dim)]
    c_group, o_group = channels // groups, h["out_channels"] // groups
    y = torch.zeros(batch, h["out_channels"], *out_size, dtype=x.dtype)
    for c, delta in itertools.product(range(channels), itertools.product(*map(range, h["kernel_size"]))):
        g = c // c_group
        outs = slice(g * o_group, (g + 1) * o_group)
        f = link_values(layer.kind, layer.weight[(c, slice(None), *delta)], x[:, c], h["n"], h["segments"],
                        h["length"]).movedim(0, 1)  # [B, O_g, *in]
        for q in itertools.product(*map(range, size)):
            target = [q[d] * stride[d] + delta[d] * dilation[d] - padding[d] for d in range(dim)]
            if all(0 <= target[d] < out_size[d] for d in range(dim)):
                y[(slice(None), outs, *target)] += f[(slice(None), slice(None), *q)]
    if h["rescale_output"]:
        y = y / (c_group * math.prod(h["kernel_size"]))
    if layer.bias is not None:
        y = y + layer.bias.reshape(-1, *[1] * dim)
    return y


def random_layer(kind, *args, seed=0, **options):
    """A float64 layer with random (not default-initialized) weights and bias."""
    torch.manual_seed(seed)
    layer = conv(kind, *args, dtype=DOUBLE, **{**KIND_OPTIONS[kind], **options})
    with torch.no_grad():
        layer.weight.uniform_(-1, 1)
        if layer.bias is not None:
            layer.bias.uniform_(-1, 1)
    return layer


def random_input(*shape, seed=1):
    torch.manual_seed(seed)
    return torch.rand(*shape, dtype=DOUBLE) * 2.2 - 1.1  # a little outside [-1, 1]: extrapolation too


# ------------------------------------------------------------------------------------------------------------
# Values against the reference

def geometry_id(geometry: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in geometry.items()) or "default"


CONV2D_GEOMETRIES = [
    {},
    {"padding": 1},
    {"stride": 2, "padding": 1, "bias": True},
    {"dilation": 2, "padding": (2, 1)},
    {"groups": 2, "stride": (1, 2), "padding": 1},
    {"padding": 1, "rescale_output": True, "bias": True},
]


@pytest.mark.parametrize("kind", HIGH_ORDER)
@pytest.mark.parametrize("geometry", CONV2D_GEOMETRIES, ids=geometry_id)
def test_conv2d_matches_reference(kind, geometry):
    layer = random_layer(kind, 2, 4, (3, 2), **geometry)
    x = random_input(2, 2, 6, 5)
    torch.testing.assert_close(layer(x), reference_conv(layer, x), rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", HIGH_ORDER)
def test_conv1d_and_conv3d_match_reference(kind):
    layer = random_layer(kind, 3, 2, 3, dim=1, stride=2, padding=2, dilation=2, bias=True, length=3.0)
    x = random_input(2, 3, 9)
    torch.testing.assert_close(layer(x), reference_conv(layer, x), rtol=0, atol=1e-12)
    layer = random_layer(kind, 2, 2, 2, dim=3, padding=(1, 0, 1), stride=(2, 1, 1))
    x = random_input(1, 2, 3, 3, 4)
    torch.testing.assert_close(layer(x), reference_conv(layer, x), rtol=0, atol=1e-12)


@pytest.mark.parametrize("padding_mode", ["zeros", "input_zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("dim", [1, 2])
def test_padding_modes_match_reference(padding_mode, dim):
    layer = random_layer("continuous", 2, 3, 3, dim=dim, padding=2, padding_mode=padding_mode)
    x = random_input(2, 2, *[5] * dim)
    torch.testing.assert_close(layer(x), reference_conv(layer, x), rtol=0, atol=1e-12)


def test_padded_tap_contributes_zero_or_f_of_zero():
    """Constant links ``f = 1``: with ``zeros`` an output counts its real taps, with ``input_zeros`` all."""
    layer = conv("continuous", 1, 1, 3, dim=1, padding=1, dtype=DOUBLE)
    with torch.no_grad():
        layer.weight.fill_(1.0)
    x = random_input(1, 1, 4)
    torch.testing.assert_close(layer(x), torch.tensor([[[2.0, 3.0, 3.0, 2.0]]], dtype=DOUBLE))
    layer.padding_mode = "input_zeros"
    torch.testing.assert_close(layer(x), torch.full((1, 1, 4), 3.0, dtype=DOUBLE))


def test_string_padding_same_and_valid():
    layer = random_layer("continuous", 2, 3, (3, 4), dilation=(1, 2), padding="same")
    x = random_input(2, 2, 5, 7)
    assert layer(x).shape == (2, 3, 5, 7)
    reference = nn.Conv2d(2, 3, (3, 4), dilation=(1, 2), padding="same")(x.float())
    assert layer(x).shape == reference.shape
    # 'same' = explicit zero padding (1, 3) on the left / (1, 3) on the right for these kernels
    explicit = random_layer("continuous", 2, 3, (3, 4), dilation=(1, 2), padding=(1, 3))
    torch.testing.assert_close(layer(x), explicit(x), rtol=0, atol=1e-12)
    for mode in ("input_zeros", "reflect"):
        layer.padding_mode = explicit.padding_mode = mode
        torch.testing.assert_close(layer(x), explicit(x), rtol=0, atol=1e-12)
    valid = random_layer("continuous", 2, 3, (3, 4), padding="valid")
    unpadded = random_layer("continuous", 2, 3, (3, 4))
    torch.testing.assert_close(valid(x), unpadded(x), rtol=0, atol=1e-12)



@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")  # torch: a padded copy
@pytest.mark.parametrize("padding_mode", ["zeros", "input_zeros"])
def test_same_padding_with_odd_total_matches_torch(padding_mode):
    """Kernel 4 pads 3 in total: one on the left, two on the right, as torch's ``padding="same"``."""
    layer = conv("polynomial", 2, 3, (4, 3), n=2, padding="same", padding_mode=padding_mode, dtype=DOUBLE)
    torch.manual_seed(0)
    slopes = torch.randn(layer.weight.shape[:-1], dtype=DOUBLE)
    with torch.no_grad():
        layer.weight.copy_(slopes.unsqueeze(-1) * layer.basis.node_positions())  # f(x) = a x
    x = random_input(2, 2, 6, 5)
    torch.testing.assert_close(layer(x), F.conv2d(x, slopes, padding="same"), rtol=0, atol=1e-12)

TRANSPOSE_GEOMETRIES = [
    {},
    {"stride": 2, "padding": 1, "output_padding": 1, "bias": True},
    {"dilation": 2, "stride": 3, "output_padding": 2},
    {"groups": 2, "stride": 2, "rescale_output": True},
]


@pytest.mark.parametrize("kind", HIGH_ORDER)
@pytest.mark.parametrize("geometry", TRANSPOSE_GEOMETRIES, ids=geometry_id)
def test_transposed_2d_matches_reference(kind, geometry):
    layer = random_layer(kind, 2, 4, (3, 2), transpose=True, **geometry)
    x = random_input(2, 2, 3, 4)
    torch.testing.assert_close(layer(x), reference_conv_transpose(layer, x), rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", HIGH_ORDER)
def test_transposed_1d_and_3d_match_reference(kind):
    layer = random_layer(kind, 3, 2, 3, dim=1, transpose=True, stride=2, padding=1, dilation=2,
                         output_padding=1)
    x = random_input(2, 3, 5)
    torch.testing.assert_close(layer(x), reference_conv_transpose(layer, x), rtol=0, atol=1e-12)
    layer = random_layer(kind, 2, 2, 2, dim=3, transpose=True, stride=(2, 1, 1), bias=True)
    x = random_input(1, 2, 2, 3, 2)
    torch.testing.assert_close(layer(x), reference_conv_transpose(layer, x), rtol=0, atol=1e-12)


@pytest.mark.parametrize(("transpose", "padding_mode"),
                         [(False, "zeros"), (False, "input_zeros"), (True, "zeros")])
def test_linear_links_reproduce_torch_convolution(transpose, padding_mode):
    """Nodal values ``w = a * position`` make each link ``f(x) = a x``: exactly torch's (transposed) conv."""
    geometry = {"stride": 2, "padding": 1, "dilation": 2, "groups": 2}
    if transpose:
        geometry["output_padding"] = 1
    layer = conv("continuous", 4, 6, 3, n=4, segments=3, transpose=transpose, padding_mode=padding_mode,
                 dtype=DOUBLE, **geometry)
    torch.manual_seed(0)
    slopes = torch.randn(layer.weight.shape[:-1], dtype=DOUBLE)
    with torch.no_grad():
        layer.weight.copy_(slopes.unsqueeze(-1) * layer.basis.node_positions())
    x = random_input(2, 4, 7, 6)
    torch_conv = F.conv_transpose2d if transpose else F.conv2d
    torch.testing.assert_close(layer(x), torch_conv(x, slopes, **geometry), rtol=0, atol=1e-12)


# ------------------------------------------------------------------------------------------------------------
# Shapes, layout, API


@pytest.mark.parametrize("dim", [1, 2, 3])
@pytest.mark.parametrize("transpose", [False, True])
def test_output_shapes_and_weight_layout_match_torch(dim, transpose):
    geometries = [{}, {"stride": 2, "padding": 1}, {"dilation": 2, "padding": 2}, {"stride": 3, "groups": 2}]
    if transpose:
        geometries.append({"stride": 3, "output_padding": 2, "padding": 1})
    size = (9, 8, 7)[:dim]
    for geometry in geometries:
        layer = conv("discontinuous", 4, 6, 3, dim=dim, transpose=transpose, n=2, segments=2, **geometry)
        torch_layer = conv("linear", 4, 6, 3, dim=dim, transpose=transpose, **geometry)
        x = torch.rand(2, 4, *size)
        assert layer(x).shape == torch_layer(x).shape
        assert layer.weight.shape == (*torch_layer.weight.shape, 4)  # torch's layout, K = nS = 4 last


def test_unbatched_input():
    layer = random_layer("continuous", 2, 3, 3, padding=1)
    x = random_input(2, 5, 5)
    torch.testing.assert_close(layer(x), layer(x.unsqueeze(0)).squeeze(0))


def test_channels_last_input_gives_the_same_output():
    layer = random_layer("fourier", 3, 2, 3, padding=1)
    x = random_input(2, 3, 6, 6)
    torch.testing.assert_close(layer(x.to(memory_format=torch.channels_last)), layer(x), rtol=0, atol=1e-12)


def test_rescale_output_divides_the_link_sum():
    plain = random_layer("continuous", 4, 2, 3, groups=2, bias=True)
    rescaled = random_layer("continuous", 4, 2, 3, groups=2, bias=True, rescale_output=True)
    x = random_input(2, 4, 5, 5)
    bias = plain.bias.reshape(-1, 1, 1)
    torch.testing.assert_close(rescaled(x) - bias, (plain(x) - bias) / (2 * 9), rtol=0, atol=1e-12)


@pytest.mark.parametrize(("kind", "options"), [
    ("continuous", {"padding": 1, "stride": 2, "bias": True}),
    ("discontinuous", {"transpose": True, "stride": 2, "output_padding": 1}),
    ("fourier", {"dim": 1, "padding": 1, "padding_mode": "input_zeros", "groups": 2}),
    ("polynomial", {"dim": 1, "transpose": True, "dilation": 2, "bias": True}),
])
def test_gradcheck_inputs_and_weights(kind, options):
    layer = random_layer(kind, 2, 2, 2, **options)
    dim = options.get("dim", 2)
    x = random_input(1, 2, *[3] * dim).requires_grad_()
    params = [p for p in (layer.weight, layer.bias) if p is not None]

    def fn(x, *values):  # values: the weight, then the bias if the layer has one
        return torch.func.functional_call(layer, dict(zip(["weight", "bias"], values, strict=False)), (x,))

    assert torch.autograd.gradcheck(fn, (x, *params), eps=1e-6, atol=1e-8)


@pytest.mark.parametrize("kind", HIGH_ORDER)
def test_hparams_rebuild_and_state_dict_round_trip(kind):
    layer = random_layer(kind, 4, 2, (2, 3), padding=(1, 0), stride=2, groups=2, bias=True, length=3.0,
                         extrapolation="linear", init="uniform", rescale_output=True, padding_mode="reflect")
    hparams = layer.hparams()
    assert set(hparams) == {"kind", "in_channels", "out_channels", "kernel_size", "dim", "transpose", "n",
                            "segments", "length", "stride", "padding", "dilation", "groups", "bias",
                            "extrapolation", "init", "backend", "rescale_output", "output_padding",
                            "padding_mode"}
    buffer = io.BytesIO()
    torch.save(layer.state_dict(), buffer)
    buffer.seek(0)
    rebuilt = conv(**hparams, dtype=DOUBLE)
    assert rebuilt.hparams() == hparams
    # basis constants are not checkpointed, the per-input-channel domains are
    assert set(rebuilt.state_dict()) == {"weight", "bias", "domain_centre", "domain_width"}
    rebuilt.load_state_dict(torch.load(buffer))
    x = random_input(2, 4, 5, 6)
    torch.testing.assert_close(rebuilt(x), layer(x), rtol=0, atol=0)
    transposed = random_layer(kind, 2, 4, 3, dim=1, transpose=True, stride=2, output_padding=1)
    rebuilt = conv(**transposed.hparams(), dtype=DOUBLE)
    rebuilt.load_state_dict(transposed.state_dict())
    x = random_input(2, 2, 5)
    torch.testing.assert_close(rebuilt(x), transposed(x), rtol=0, atol=0)


def test_double_moves_constants_and_is_exact():
    layer = conv("continuous", 2, 3, 3, n=6, segments=3, padding=1)
    layer.double()
    assert layer.basis.transform.dtype == DOUBLE
    x = random_input(2, 2, 5, 5)
    torch.testing.assert_close(layer(x), reference_conv(layer, x), rtol=0, atol=1e-12)
    layer.float()
    assert layer.basis.transform.dtype == torch.float32 and layer(x.float()).dtype == torch.float32


def test_reset_parameters_uses_the_fan_in_of_a_tap_sum():
    layer = conv("continuous", 4, 6, 3, groups=2, init="constant", segments=2)
    values = layer.weight.detach()
    assert torch.equal(values, values[..., :1].expand_as(values))  # every link constant
    assert values.abs().max() <= 1 / (2 * 9)
    assert values.std() > 0


def test_extra_repr_lists_non_defaults():
    text = repr(conv("continuous", 2, 3, 3, segments=4, stride=2, bias=True))
    assert "segments=4" in text and "stride=(2, 2)" in text and "bias=True" in text
    assert "padding=" not in text and "dilation" not in text and "transpose" not in text


def test_registered_kinds_and_factory():
    assert set(conv_kinds()) >= {*HIGH_ORDER, "linear", "relu"}
    assert callable(hol.layers.conv) and isinstance(conv("polynomial", 1, 1, 1), HighOrderConv)


# ------------------------------------------------------------------------------------------------------------
# Baselines


@pytest.mark.parametrize("dim", [1, 2, 3])
@pytest.mark.parametrize("transpose", [False, True])
def test_baselines_are_torch_convolutions(dim, transpose):
    linear = conv("linear", 2, 3, 3, dim=dim, transpose=transpose, stride=2)
    relu = conv("relu", 2, 3, 3, dim=dim, transpose=transpose, stride=2)
    expected = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d) if transpose else \
        (nn.Conv1d, nn.Conv2d, nn.Conv3d)
    assert isinstance(linear, expected[dim - 1]) and isinstance(relu, expected[dim - 1])
    assert linear.kind == "linear" and relu.kind == "relu" and linear.bias is not None
    relu.load_state_dict(linear.state_dict())
    x = torch.randn(2, 2, *[5] * dim)
    torch.testing.assert_close(relu(x), torch.relu(linear(x)))
    assert (relu(x) == 0).any() and (linear(x) < 0).any()


def test_baseline_padding_modes():
    layer = conv("linear", 1, 1, 3, dim=1, padding=1, padding_mode="input_zeros")
    assert layer.padding_mode == "zeros"
    assert conv("relu", 1, 1, 3, dim=1, padding=1, padding_mode="circular").padding_mode == "circular"


# ------------------------------------------------------------------------------------------------------------
# Bad arguments


@pytest.mark.parametrize(("kind", "options", "message"), [
    ("spline", {}, "unknown conv layer kind 'spline'; allowed: continuous, discontinuous, fourier, "),
    ("continuous", {"dim": 4}, "unknown dim 4; allowed: 1, 2, 3"),
    ("linear", {"dim": 0}, "unknown dim 0; allowed: 1, 2, 3"),
    ("continuous", {"dim": True}, "unknown dim True; allowed: 1, 2, 3"),
    ("continuous", {"transpose": "yes"}, "transpose must be True or False, got 'yes'"),
    ("continuous", {"n": 1}, "n must be an integer >= 2 for piecewise kinds, got 1"),
    ("polynomial", {"n": 0}, "n must be an integer >= 1, got 0"),
    ("continuous", {"segments": 0}, "segments must be an integer >= 1, got 0"),
    ("fourier", {"segments": 2}, "segments must be 1 for fourier links, got 2"),
    ("continuous", {"length": 0}, "length must be a number > 0, got 0"),
    ("continuous", {"extrapolation": "wrap"}, "unknown extrapolation 'wrap'"),
    ("continuous", {"init": "xavier"}, "unknown init 'xavier'"),
    ("continuous", {"kernel_size": 0}, "kernel_size must be an integer >= 1 or a sequence of 2"),
    ("continuous", {"kernel_size": (3, 3, 3)}, "kernel_size must be an integer >= 1 or a sequence of 2"),
    ("continuous", {"stride": 0}, "stride must be an integer >= 1"),
    ("continuous", {"padding": -1}, "padding must be an integer >= 0"),
    ("continuous", {"padding": "full"}, "padding must be an integer >= 0"),
    ("continuous", {"padding": "same", "stride": 2}, "padding='same' needs stride 1"),
    ("continuous", {"padding": "same", "transpose": True}, "padding must be an integer >= 0"),
    ("continuous", {"dilation": 0}, "dilation must be an integer >= 1"),
    ("continuous", {"groups": 3}, "groups must divide in_channels and out_channels, got groups=3"),
    ("continuous", {"groups": 0}, "groups must be an integer >= 1, got 0"),
    ("continuous", {"in_channels": 0}, "in_channels must be an integer >= 1, got 0"),
    ("continuous", {"output_padding": 1}, "output_padding is only used by transposed convolutions"),
    ("continuous", {"output_padding": 2, "transpose": True, "stride": 2},
     "output_padding must be smaller than stride or dilation"),
    ("continuous", {"padding_mode": "mirror"}, "unknown padding_mode 'mirror'; allowed: circular, input_"),
    ("continuous", {"padding_mode": "reflect", "transpose": True}, "padding_mode must be 'zeros' for transp"),
    ("continuous", {"bias": "yes"}, "bias must be True or False, got 'yes'"),
    ("continuous", {"rescale_output": 2}, "rescale_output must be True or False, got 2"),
])
def test_bad_arguments(kind, options, message):
    arguments = {"in_channels": 4, "out_channels": 4, "kernel_size": 3, **options}
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        conv(kind, **arguments)


def test_bad_input_shape():
    layer = conv("continuous", 3, 2, 3)
    with pytest.raises(ValueError, match=r"expected input \[B, 3, H, W\].* shape \(2, 4, 5, 5\)"):
        layer(torch.rand(2, 4, 5, 5))
    with pytest.raises(ValueError, match="got shape"):
        layer(torch.rand(2, 3, 5))
