"""model=vae: the generative task's objective, warm-up and logged terms; a run through the command line on
tiny MNIST files with its images, hol eval from the checkpoint alone, and exact refinement stages."""
from __future__ import annotations

import json

import pytest
import torch

from hol.runner.cli import main
from hol.runner.records import METRICS_FILE
from hol.runner.tasks import Generative, choose_task
from hol.runner.train import train
from hol.vae import VAE, gaussian_kl
from tests.helpers.runs import QUIET, compose_config, tensorboard_events

TINY_VAE = ["experiment=vae", "data.download=false", "data.batch_size=32", "model.channels=[2,3]",
            "model.latent_dim=2", "trainer.num_sanity_val_steps=0"]


def test_objective_is_reconstruction_plus_beta_kl_and_the_logged_loss_the_negative_elbo():
    vae = VAE("continuous", 1, 8, [2], latent_dim=3, n=2).eval()
    task = Generative(input_range=(-1.0, 1.0), beta=0.5)
    images = torch.rand(4, 1, 8, 8)
    inputs, target = task.split([images * 2 - 1, torch.zeros(4)])
    torch.testing.assert_close(target, images)  # the intensities back in [0, 1]
    out = vae(inputs)
    reconstruction, kl = out.reconstruction(target), gaussian_kl(out.mu, out.logvar)
    loss = task.loss(out, target)
    torch.testing.assert_close(loss, (reconstruction + 0.5 * kl).mean())
    task.update("val", out, target, loss)
    values = task.compute("val", vae)
    torch.testing.assert_close(values["loss"], (reconstruction + kl).mean())  # beta = 1: the negative ELBO
    torch.testing.assert_close(values["recon"], reconstruction.mean())
    torch.testing.assert_close(values["kl"], kl.mean())


def test_kl_warmup_rises_linearly_to_beta():
    task = Generative(beta=2.0, kl_warmup_epochs=4)
    weights = []
    for epochs in (0.0, 1.0, 3.0, 4.0, 9.5):
        task.set_progress(epochs)
        weights.append(task.kl_weight)
    assert weights == [0.0, 0.5, 1.5, 2.0, 2.0]
    no_warmup = Generative(beta=2.0)
    no_warmup.set_progress(0.0)
    assert no_warmup.kl_weight == 2.0


def test_a_vae_needs_image_data():
    vae = VAE("continuous", 1, 8, [2], latent_dim=3, n=2)
    with pytest.raises(ValueError, match="model=vae needs image data with an input_range"):
        choose_task(vae, object())


def test_run_logs_the_negative_elbo_and_images_and_eval_rebuilds_it(in_tmp, capsys, mnist_root):
    main(["train", *QUIET, *TINY_VAE, f"data.root={mnist_root}", "trainer.max_epochs=1", "hydra.run.dir=run"])
    record = json.loads((in_tmp / "run" / METRICS_FILE).read_text())
    metrics = {key: value for key, value in record.items() if key != "run/status"}
    assert record["run/status"] == "finished"
    assert set(metrics) == {"test/loss", "test/recon", "test/kl", "val/loss_best"}
    assert metrics["test/loss"] == pytest.approx(metrics["test/recon"] + metrics["test/kl"], rel=1e-5)
    assert metrics["test/kl"] > 0 and 0 < metrics["test/recon"] < 784 * 2  # nats per image, below p = 1/e
    events = tensorboard_events(in_tmp / "run")
    assert {"train/loss", "val/loss", "val/recon", "val/kl"} <= set(events.Tags()["scalars"])
    grid = events.Images("images/reconstructions")[-1]  # 8 test images over their reconstructions
    assert (grid.width, grid.height) == (8 * 30 + 2, 2 * 30 + 2)
    assert events.Images("images/samples")

    main(["eval", f"ckpt_path={in_tmp / 'run' / 'checkpoints' / 'last.ckpt'}", "hydra.run.dir=eval",
          "+trainer.enable_progress_bar=false"])
    evaluated = json.loads((in_tmp / "eval" / METRICS_FILE).read_text())
    del evaluated["run/status"]
    tested = {key: value for key, value in metrics.items() if key.startswith("test/")}
    assert evaluated == pytest.approx(tested, rel=1e-6)


def test_refinement_stages_on_a_vae_are_exact(tmp_path, mnist_root):
    stages = "refine=[{epochs: 1, n: 2}, {epochs: 1, n: 4, segments: 4}]"
    cfg = compose_config([*TINY_VAE, f"data.root={mnist_root}", "logger=[]", "test=false", stages],
                         run_dir=tmp_path / "run")
    metrics = train(cfg)
    assert metrics["refine/val_loss_change"] < 1e-3 * metrics["val/loss_best"]
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    layer = checkpoint["net_hparams"]["layer"]
    assert layer["n"] == 4 and layer["segments"] == 4
