"""hol.vae: shapes of the mirror, the loss terms against their formulas, reparameterization, sampling,
rebuild and exact refinement of the convolutions and transposed convolutions."""
import io
import math

import pytest
import torch
from torch import nn
from torch.distributions import Normal, kl_divergence

import hol
from hol.networks import build
from hol.vae import VAE, VAEOutput, bernoulli_nll, gaussian_kl, gaussian_nll, transposed_geometry

DOUBLE = torch.float64


def images(*shape, seed=0, dtype=torch.float32):
    """Intensities in [0, 1]."""
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.mark.parametrize("kind", ["continuous", "fourier", "relu"])
@pytest.mark.parametrize(("image_size", "downsample", "kernel_size"), [
    (28, "stride", 3), ((13, 10), "max", 3), ((9, 16), "avg", 5), ((7, 7), "stride", 5)])
def test_the_decoder_mirrors_the_encoder_to_the_image_shape(kind, image_size, downsample, kernel_size):
    vae = VAE(kind, 2, image_size, [3, 4], latent_dim=5, kernel_size=kernel_size, downsample=downsample, n=3,
              segments=2)
    height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
    x = images(6, 2, height, width) * 2 - 1
    out = vae(x)
    assert out.decoded.shape == x.shape and out.mu.shape == out.logvar.shape == (6, 5)
    assert vae.reconstruct(x).shape == x.shape
    encoder_convs = [block[0] for block in vae.encoder]
    assert [conv.kind for conv in encoder_convs] == [kind, kind]


def test_relu_is_the_plain_conv_vae_with_the_same_shapes_and_a_linear_output():
    hol_vae = VAE("continuous", 1, 28, [8, 16], latent_dim=4, n=3, segments=2)
    plain = VAE("relu", 1, 28, [8, 16], latent_dim=4)
    x = images(3, 1, 28, 28) * 2 - 1
    assert hol_vae.encoder[1](hol_vae.encoder[0](x)).shape == plain.encoder[1](plain.encoder[0](x)).shape
    assert type(plain.decoder[-1]) is nn.ConvTranspose2d  # no ReLU clipping the logits
    assert plain.decoder[0][0].kind == "relu" and hol_vae.decoder[-1].kind == "continuous"
    assert hol_vae.decoder[-1].transpose and hol_vae.decoder[-1].stride == (2, 2)


def test_transposed_geometry_undoes_a_stride_two_convolution_or_pooling():
    for kernel_size in (3, 4, 5):
        for size in range(1, 40):
            for halved in ((size + 2 * (kernel_size // 2) - kernel_size) // 2 + 1, size // 2 or 1):
                padding, output_padding = transposed_geometry(halved, size, kernel_size, 2)
                assert (halved - 1) * 2 - 2 * padding + kernel_size + output_padding == size
                assert padding >= 0 and 0 <= output_padding < 2


def test_transposed_geometry_refuses_what_no_padding_reaches():
    with pytest.raises(ValueError, match="cannot map 3 positions to 9; choose another kernel_size"):
        transposed_geometry(3, 9, 1, 2)


def test_gaussian_kl_is_the_closed_form_and_torchs():
    mu = torch.tensor([[1.0, 0.0], [0.5, -2.0]], dtype=DOUBLE)
    logvar = torch.tensor([[0.0, math.log(4.0)], [-1.0, 0.3]], dtype=DOUBLE)
    # first row by hand: (1 + 1 - 1 - 0)/2 + (0 + 4 - 1 - log 4)/2
    assert gaussian_kl(mu, logvar)[0].item() == pytest.approx(0.5 + (3 - math.log(4)) / 2, rel=1e-12)
    expected = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(gaussian_kl(mu, logvar), expected)
    assert gaussian_kl(torch.zeros(3, 4), torch.zeros(3, 4)).abs().max() == 0  # the prior itself


def test_bernoulli_nll_is_the_cross_entropy_summed_per_image():
    logits = torch.tensor([[[[2.0, -1.0]]], [[[0.0, 3.0]]]], dtype=DOUBLE)  # [2, 1, 1, 2]
    target = torch.tensor([[[[1.0, 0.25]]], [[[0.0, 1.0]]]], dtype=DOUBLE)
    p = torch.sigmoid(logits)
    expected = -(target * p.log() + (1 - target) * (1 - p).log()).flatten(1).sum(1)
    torch.testing.assert_close(bernoulli_nll(logits, target), expected)
    assert bernoulli_nll(logits, target)[1].item() == pytest.approx(math.log(2) + math.log(1 + math.exp(-3)))


def test_gaussian_nll_is_the_negative_log_density():
    mean, target = images(3, 1, 4, 5, dtype=DOUBLE), images(3, 1, 4, 5, seed=1, dtype=DOUBLE)
    expected = -Normal(mean, 0.2).log_prob(target).flatten(1).sum(1)
    torch.testing.assert_close(gaussian_nll(mean, target, 0.2), expected)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_output_terms_use_the_models_likelihood(likelihood):
    vae = VAE("continuous", 1, 8, [2], latent_dim=3, likelihood=likelihood, sigma=0.3, n=2).eval()
    x = images(4, 1, 8, 8)
    out = vae(x * 2 - 1)
    expected = (bernoulli_nll(out.decoded, x) if likelihood == "bernoulli" else
                gaussian_nll(out.decoded, x, 0.3))
    torch.testing.assert_close(out.reconstruction(x), expected)
    torch.testing.assert_close(out.kl(), gaussian_kl(out.mu, out.logvar))


def test_reparameterization_decodes_mu_plus_sigma_eps():
    torch.manual_seed(0)
    vae = VAE("continuous", 1, 8, [2, 3], latent_dim=3, n=3, segments=2, normalization="max_abs").double()
    x = images(5, 1, 8, 8, dtype=DOUBLE) * 2 - 1
    torch.manual_seed(7)
    out = vae(x)
    torch.manual_seed(7)
    mu, logvar = vae.encode(x)
    eps = torch.randn_like(mu)
    torch.testing.assert_close(out.decoded, vae.decode(mu + (0.5 * logvar).exp() * eps))
    (out.decoded.sum() + out.logvar.sum()).backward()
    assert all(p.grad is not None for p in vae.parameters())


def test_eval_mode_noise_is_repeatable_training_noise_is_not():
    vae = VAE("continuous", 1, 8, [2], latent_dim=3, n=2)
    x = images(4, 1, 8, 8) * 2 - 1
    vae.train()
    assert not torch.equal(vae(x).decoded, vae(x).decoded)
    vae.eval()
    first, second = vae(x), vae(x)
    assert torch.equal(first.decoded, second.decoded)
    assert not torch.equal(first.decoded, vae.decode(first.mu))  # still a sample, not the posterior mean


def test_samples_from_the_prior_are_mean_images():
    vae = VAE("continuous", 1, (8, 6), [2], latent_dim=3, n=2).eval()
    samples = vae.sample(5, torch.Generator().manual_seed(3))
    assert samples.shape == (5, 1, 8, 6) and samples.min() >= 0 and samples.max() <= 1
    torch.testing.assert_close(samples, vae.sample(5, torch.Generator().manual_seed(3)))
    z = torch.randn(5, 3, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(samples, torch.sigmoid(vae.decode(z)))
    gaussian = VAE("continuous", 1, 8, [2], latent_dim=3, likelihood="gaussian", n=2).eval()
    torch.testing.assert_close(gaussian.sample(2, torch.Generator().manual_seed(1)),
                               gaussian.decode(torch.randn(2, 3, generator=torch.Generator().manual_seed(1))))


def test_hparams_rebuild_and_exact_refinement():
    torch.manual_seed(0)
    vae = VAE("discontinuous", 1, 12, [3, 4], latent_dim=2, n=2, segments=2, init="uniform").double().eval()
    x = images(3, 1, 12, 12, dtype=DOUBLE) * 2 - 1
    twin = build(vae.hparams()).double().eval()
    twin.load_state_dict(vae.state_dict())
    torch.testing.assert_close(twin(x).decoded, vae(x).decoded, rtol=0, atol=0)

    finer = hol.refine(vae, n=4, segments=4)
    assert finer.hparams()["layer"] == {"kind": "discontinuous", "n": 4, "segments": 4, "init": "uniform"}
    assert finer.decoder[-1].n == 4 and finer.encoder[0][0].segments == 4
    torch.testing.assert_close(finer(x).decoded, vae(x).decoded, rtol=0, atol=1e-10)
    rebuilt = build(finer.hparams()).double().eval()
    rebuilt.load_state_dict(finer.state_dict())
    torch.testing.assert_close(rebuilt(x).decoded, finer(x).decoded, rtol=0, atol=0)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"latent_dim": 0}, "latent_dim must be an integer >= 1, got 0"),
    ({"downsample": "skip"}, "unknown downsample 'skip'; allowed: avg, max, stride"),
    ({"likelihood": "poisson"}, "unknown likelihood 'poisson'; allowed: bernoulli, gaussian"),
    ({"sigma": 0}, "sigma must be a number > 0, got 0"),
    ({"channels": []}, "channels must list at least one block width"),
    ({"image_size": 3, "channels": [2, 2], "downsample": "max"},
     "image_size [3, 3] is too small for 2 blocks"),
    ({"layer": "continuous_prod"}, "unknown layer 'continuous_prod'"),
    ({"output_layer": "sine"}, "unknown output_layer 'sine'"),
])
def test_bad_arguments(kwargs, message):
    arguments = {"layer": "continuous", "in_channels": 1, "image_size": 8, "channels": [2], "latent_dim": 2,
                 **kwargs}
    with pytest.raises(ValueError) as info:
        VAE(**arguments)
    assert message in str(info.value)


@pytest.mark.slow
def test_an_eval_mode_vae_compiles_fullgraph_and_exports_with_its_repeatable_numbers():
    torch.manual_seed(0)
    vae = VAE("continuous", 1, 8, [2, 3], latent_dim=2, segments=2).eval()
    x = torch.rand(3, 1, 8, 8)
    expected = vae(x)
    assert torch.equal(vae(x).decoded, expected.decoded)  # eval mode: the same noise at every call
    compiled = torch.compile(vae, fullgraph=True)(x)
    program = torch.export.export(vae, (x,))
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    buffer.seek(0)
    loaded = torch.export.load(buffer).module()(x)
    for output in (compiled, loaded):
        assert isinstance(output, VAEOutput) and output.likelihood == "bernoulli"
        torch.testing.assert_close(output.decoded, expected.decoded)
        torch.testing.assert_close(output.kl(), expected.kl())
