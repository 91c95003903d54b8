"""A variational autoencoder of hol convolutions and transposed convolutions: :class:`VAE` and its loss terms.

The model (Kingma & Welling 2014, "Auto-Encoding Variational Bayes"): an encoder gives the Gaussian posterior
``q(z|x) = N(mu, diag(exp(logvar)))`` of a ``latent_dim``-dimensional code, a sample
``z = mu + exp(logvar / 2) * eps`` (``eps ~ N(0, I)``, the reparameterization) is decoded into the parameters
of ``p(x|z)``, and the prior is ``p(z) = N(0, I)``. Per image, in nats,

    negative ELBO = reconstruction + KL,   reconstruction = -log p(x|z),   KL = KL(q(z|x) || p(z))
                  = -log p(x|z) + 1/2 sum_j (mu_j^2 + exp(logvar_j) - 1 - logvar_j)      (their appendix B)

with the likelihood of the pixel intensities ``x`` in ``[0, 1]`` (:func:`bernoulli_nll`,
:func:`gaussian_nll`).

The network is a mirror: encoder blocks of hol convolutions (any conv kind of the registry) that halve the
image (stride 2, or a stride-1 convolution and 2x2 pooling), each followed by a normalization; the last map is
flattened into ``latent_layer`` (an fc kind, default ``linear``) giving ``mu`` and ``logvar``. The decoder
maps ``z`` with ``latent_layer`` to the last map's shape, normalizes, and climbs back with transposed hol
convolutions of stride 2 whose padding and output padding restore exactly the encoder's sizes, a normalization
between them; the last one gives ``in_channels`` maps of Bernoulli logits or Gaussian means. ``layer="relu"``
is the plain convolutional VAE with the same shapes (its output layer is then linear, since a ReLU would clip
the logits).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils import _pytree as pytree

from .checks import check_choice, check_int, check_ints, check_number
from .layers import registry
from .layers.normalization import NORMS, norm
from .networks import NETWORKS, _check_not_tensor, _pool, _refined_spec, layer_options, layer_spec

DOWNSAMPLINGS = ("stride", "avg", "max")
LIKELIHOODS = ("bernoulli", "gaussian")
EVAL_SEED = 0
"""Seed of the noise ``eps`` in eval mode (:meth:`VAE.forward`)."""
EVAL_NOISE_ROWS = 4096
"""Rows of the fixed eval-mode noise: sample ``b`` of a batch takes row ``b mod EVAL_NOISE_ROWS``."""


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """``KL(N(mu, diag(exp(logvar))) || N(0, I)) = 1/2 sum_j (mu_j^2 + exp(logvar_j) - 1 - logvar_j)`` in nats
    (Kingma & Welling 2014, appendix B). Shape: ``[B, D], [B, D] -> [B]``."""
    return 0.5 * (mu.square() + logvar.exp() - 1 - logvar).sum(dim=-1)


def bernoulli_nll(logits: Tensor, target: Tensor) -> Tensor:
    """``-sum_i [x_i log p_i + (1 - x_i) log(1 - p_i)]`` with ``p = sigmoid(logits)``, summed over each
    image's pixels, in nats: the Bernoulli negative log likelihood for binary ``x``, and for intensities in
    ``[0, 1]`` the binary cross entropy that Kingma & Welling use on MNIST. Shape: ``[B, *image] -> [B]``."""
    return F.binary_cross_entropy_with_logits(logits, target, reduction="none").flatten(1).sum(dim=1)


def gaussian_nll(mean: Tensor, target: Tensor, sigma: float) -> Tensor:
    """``sum_i [(x_i - m_i)^2 / (2 sigma^2) + log sigma + log(2 pi) / 2]`` over each image's pixels: the
    negative log density of ``N(mean, sigma^2 I)`` in nats (a squared error plus a constant).
    Shape: ``[B, *image] -> [B]``."""
    squared = (target - mean).square().flatten(1).sum(dim=1)
    pixels = math.prod(target.shape[1:])
    return squared / (2 * sigma**2) + pixels * (math.log(sigma) + 0.5 * math.log(2 * math.pi))


@dataclass(frozen=True)
class VAEOutput:
    """What :meth:`VAE.forward` returns: the decoded sample and the posterior, with the likelihood's family.

    Attributes:
        decoded: ``[B, C, H, W]``, Bernoulli logits or Gaussian means of the pixel intensities.
        mu, logvar: ``[B, latent_dim]``, mean and log variance of ``q(z|x)``.
        likelihood: ``"bernoulli"`` or ``"gaussian"``; sigma: the Gaussian's standard deviation.
    """

    decoded: Tensor
    mu: Tensor
    logvar: Tensor
    likelihood: str
    sigma: float

    def reconstruction(self, target: Tensor) -> Tensor:
        """``-log p(target | z)`` per image in nats, ``target`` the intensities in ``[0, 1]``: ``[B]``."""
        if self.likelihood == "bernoulli":
            return bernoulli_nll(self.decoded, target)
        return gaussian_nll(self.decoded, target, self.sigma)

    def kl(self) -> Tensor:
        """``KL(q(z|x) || p(z))`` per image in nats: ``[B]``."""
        return gaussian_kl(self.mu, self.logvar)


def _flatten_output(output: VAEOutput) -> tuple[list[Tensor], tuple[str, float]]:
    return [output.decoded, output.mu, output.logvar], (output.likelihood, output.sigma)


def _unflatten_output(tensors, context: tuple[str, float]) -> VAEOutput:
    decoded, mu, logvar = tensors
    likelihood, sigma = context
    return VAEOutput(decoded, mu, logvar, likelihood, sigma)


# a pytree node (its tensors the children, the likelihood the context), so torch.export, torch.compile and
# torch.func take a VAE's output as they take a tuple of tensors
pytree.register_pytree_node(VAEOutput, _flatten_output, _unflatten_output,
                            serialized_type_name="hol.vae.VAEOutput")


def transposed_geometry(size_in: int, size_out: int, kernel_size: int, stride: int) -> tuple[int, int]:
    """``(padding, output_padding)`` of a transposed convolution taking ``size_in`` to ``size_out`` positions:
    torch's ``(size_in - 1) stride - 2 padding + kernel_size + output_padding = size_out`` with
    ``0 <= output_padding < stride`` and the least padding. Raises ``ValueError`` if there is none."""
    excess = size_out - (size_in - 1) * stride - kernel_size  # = output_padding - 2 padding
    padding = max(0, -(excess // 2))
    output_padding = excess + 2 * padding
    if not 0 <= output_padding < stride:
        raise ValueError(f"a transposed convolution with kernel_size={kernel_size}, stride={stride} cannot "
                         f"map {size_in} positions to {size_out}; choose another kernel_size")
    return padding, output_padding


class VAE(nn.Module):
    """Variational autoencoder of hol convolutions (encoder) and transposed convolutions (decoder).

    Args:
        layer: conv kind of the encoder's and decoder's convolutions (``hol.layers.conv_kinds()``), or a
            mapping ``{"kind": ..., **options}``.
        in_channels: image channels ``C``.
        image_size: ``H`` (square images) or ``(H, W)``.
        channels: output channels of the encoder blocks; the decoder mirrors them.
        latent_dim: size of the code ``z``.
        kernel_size: (odd) kernel size of every convolution; padded by ``kernel_size // 2``.
        downsample: how each encoder block halves the image: ``"stride"`` (a convolution of stride 2) or
            ``"avg"``/``"max"`` (a stride-1 convolution, then 2x2 pooling).
        normalization: one of ``hol.layers.NORMS``, after every block (and after the decoder's first layer).
        latent_layer: fc kind of the layers into and out of the latent space (gets the options its kind
            takes).
        output_layer: conv kind of the decoder's last layer; ``None``: ``layer``'s kind for high-order
            kinds, ``"linear"`` for baselines (a ReLU would clip the logits).
        likelihood: ``"bernoulli"`` (the decoder gives logits; binary cross entropy) or ``"gaussian"`` (means;
            squared error over ``2 sigma^2``), of the pixel intensities in ``[0, 1]``.
        sigma: standard deviation of the Gaussian likelihood.
        **options: layer options (``n``, ``segments``, ...), as for :class:`hol.networks.MLP`.

    Shape:
        ``forward``: ``[B, C, H, W] -> VAEOutput`` (decoded ``[B, C, H, W]``, mu and logvar
        ``[B, latent_dim]``); inputs in the layers' domain (e.g. intensities mapped to ``[-1, 1]``).

    Raises:
        ValueError: naming the bad argument, its value and what is allowed (also an image too small for the
            blocks).

    Examples::

        >>> import torch, hol
        >>> vae = hol.vae.VAE("continuous", 1, 28, [8, 16], latent_dim=4, n=3, segments=2)
        >>> x = torch.rand(5, 1, 28, 28)
        >>> out = vae(2 * x - 1)
        >>> out.decoded.shape, out.mu.shape
        (torch.Size([5, 1, 28, 28]), torch.Size([5, 4]))
        >>> (out.reconstruction(x) + out.kl()).shape  # negative ELBO per image, nats
        torch.Size([5])
        >>> vae.sample(3).shape
        torch.Size([3, 1, 28, 28])
    """

    def __init__(self, layer: str | Mapping[str, Any], in_channels: int, image_size: int | Sequence[int],
                 channels: Sequence[int], latent_dim: int, *, kernel_size: int = 3,
                 downsample: str = "stride", normalization: str = "batch_norm", latent_layer: str = "linear",
                 output_layer: str | None = None, likelihood: str = "bernoulli", sigma: float = 0.1,
                 **options):
        super().__init__()
        spec = layer_spec(layer, options)
        kind = spec["kind"]
        check_choice("layer", kind, registry.conv_kinds())
        check_choice("latent_layer", latent_layer, registry.kinds())
        _check_not_tensor("latent_layer", latent_layer)
        if output_layer is not None:
            check_choice("output_layer", output_layer, registry.conv_kinds())
        check_int("in_channels", in_channels, 1)
        size = check_ints("image_size", image_size, 2, 1)
        channels = list(channels)
        if not channels:
            raise ValueError("channels must list at least one block width, got []")
        for width in channels:
            check_int("channels entry", width, 1)
        check_int("latent_dim", latent_dim, 1)
        check_int("kernel_size", kernel_size, 1)
        check_choice("downsample", downsample, DOWNSAMPLINGS)
        check_choice("normalization", normalization, NORMS)
        check_choice("likelihood", likelihood, LIKELIHOODS)
        self.likelihood, self.sigma = likelihood, check_number("sigma", sigma, 0, above=True)
        self.latent_dim = latent_dim
        generator = torch.Generator().manual_seed(EVAL_SEED)
        # a plain tensor, not a buffer: not in the state dict, and float64 whatever dtype the VAE is cast to
        self.eval_noise = torch.randn(EVAL_NOISE_ROWS, latent_dim, generator=generator, dtype=torch.float64,
                                      device="cpu")  # also when built under a torch.device context
        self._config: dict[str, Any] = {
            "layer": spec, "in_channels": in_channels, "image_size": list(size), "channels": channels,
            "latent_dim": latent_dim, "kernel_size": kernel_size, "downsample": downsample,
            "normalization": normalization, "latent_layer": latent_layer, "output_layer": output_layer,
            "likelihood": likelihood, "sigma": sigma}

        padding = kernel_size // 2
        stride = 2 if downsample == "stride" else 1
        sizes = [size]  # the feature maps' (H, W), image first
        for _ in channels:
            convolved = tuple((s + 2 * padding - kernel_size) // stride + 1 for s in sizes[-1])
            sizes.append(convolved if downsample == "stride" else tuple(s // 2 for s in convolved))
            if min(sizes[-1]) < 1:
                raise ValueError(f"image_size {list(size)} is too small for {len(channels)} blocks that "
                                 "halve it")
        widths = [in_channels, *channels]
        conv_options = layer_options(kind, spec)
        self.encoder = nn.Sequential(*(
            nn.Sequential(
                registry.conv(kind, width_in, width_out, kernel_size, padding=padding, stride=stride,
                              **conv_options),
                norm(normalization, width_out, spatial_dims=2),
                _pool(downsample, 2) if downsample != "stride" else nn.Identity())
            for width_in, width_out in pairwise(widths)))
        self.code_shape = (channels[-1], *sizes[-1])
        features = math.prod(self.code_shape)
        latent_options = layer_options(latent_layer, spec)
        self.to_latent = registry.fc(latent_layer, features, 2 * latent_dim, **latent_options)
        self.from_latent = registry.fc(latent_layer, latent_dim, features, **latent_options)
        self.latent_norm = norm(normalization, channels[-1], spatial_dims=2)

        last_kind = output_layer or ("linear" if registry.kind_info(kind).baseline else kind)
        blocks = []
        for index in reversed(range(len(channels))):
            geometry = [transposed_geometry(s_in, s_out, kernel_size, 2)
                        for s_in, s_out in zip(sizes[index + 1], sizes[index], strict=True)]
            kind_i = last_kind if index == 0 else kind
            transposed = registry.conv(
                kind_i, widths[index + 1], widths[index], kernel_size, transpose=True, stride=2,
                padding=tuple(p for p, _ in geometry), output_padding=tuple(o for _, o in geometry),
                **layer_options(kind_i, spec))
            blocks.append(transposed if index == 0 else
                          nn.Sequential(transposed, norm(normalization, widths[index], spatial_dims=2)))
        self.decoder = nn.Sequential(*blocks)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``mu`` and ``logvar`` of ``q(z|x)``: ``[B, C, H, W] -> ([B, latent_dim], [B, latent_dim])``."""
        mu, logvar = self.to_latent(self.encoder(x).flatten(1)).chunk(2, dim=-1)
        return mu, logvar

    def decode(self, z: Tensor) -> Tensor:
        """The parameters of ``p(x|z)`` (logits or means): ``[B, latent_dim] -> [B, C, H, W]``."""
        return self.decoder(self.latent_norm(self.from_latent(z).unflatten(1, self.code_shape)))

    def forward(self, x: Tensor) -> VAEOutput:
        """Encode, draw ``z`` by reparameterization, decode.

        In training mode ``eps`` comes from torch's generator; in eval mode it is fixed: sample ``b`` takes
        row ``b`` (mod :data:`EVAL_NOISE_ROWS`) of a float64 draw from a CPU generator seeded with
        :data:`EVAL_SEED`, so an evaluation is repeatable: the same numbers in ``hol eval`` as in the run's
        test, on every device, and before and after an exact refinement (still a one-sample estimate of the
        ELBO). No generator is made in ``forward``, so an eval-mode VAE compiles with ``fullgraph=True`` and
        exports (``torch.export``).
        """
        mu, logvar = self.encode(x)
        if self.training:
            eps = torch.randn_like(mu)
        else:
            rows = torch.arange(mu.shape[0]) % EVAL_NOISE_ROWS
            eps = self.eval_noise[rows].to(mu.device, mu.dtype)
        decoded = self.decode(mu + torch.exp(0.5 * logvar) * eps)
        return VAEOutput(decoded, mu, logvar, self.likelihood, self.sigma)

    def mean(self, decoded: Tensor) -> Tensor:
        """The mean pixel intensities of ``p(x|z)`` from the decoded parameters (sigmoid of the logits, or the
        Gaussian means): ``[B, C, H, W]``."""
        return torch.sigmoid(decoded) if self.likelihood == "bernoulli" else decoded

    def reconstruct(self, x: Tensor) -> Tensor:
        """The mean intensities decoded from the posterior mean: ``[B, C, H, W] -> [B, C, H, W]``."""
        return self.mean(self.decode(self.encode(x)[0]))

    def sample(self, count: int, generator: torch.Generator | None = None) -> Tensor:
        """The mean intensities of ``count`` codes drawn from the prior ``N(0, I)``: ``[count, C, H, W]``."""
        check_int("count", count, 1)
        weight = next(self.parameters())
        z = torch.randn(count, self.latent_dim, generator=generator, device=weight.device, dtype=weight.dtype)
        return self.mean(self.decode(z))

    def hparams(self) -> dict:
        """Constructor arguments plus ``name="vae"``, with ``n``/``segments`` as the layers now have them."""
        layers = [module for module in self.modules() if module is not self]
        return {"name": "vae", **self._config, "layer": _refined_spec(self._config["layer"], layers)}


NETWORKS["vae"] = VAE
