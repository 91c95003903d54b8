"""Every experiment preset with ``trainer=gpu`` (one CUDA GPU, bfloat16 autocast) end to end on tiny data:
fit, plots, checkpoints, test; a GPU checkpoint evaluated on the CPU. Marked ``cuda``: skipped without a GPU
(their composition is tested everywhere, tests/runner/test_configs.py)."""
from __future__ import annotations

import math

import pytest
import torch

from hol.runner.lightning_module import HolModule
from hol.runner.train import evaluate, train
from tests.helpers.runs import TINY_DATA, compose_config
from tests.runner.test_configs import EXPERIMENTS

MNIST = ["data.download=false", "data.batch_size=16", "model.hidden_width=8"]
TINY = {"function": TINY_DATA, "xor": TINY_DATA, "invariant_mnist": MNIST, "invariant_mnist_prefine": MNIST,
        "function_2d": ["data.train_size=64", "data.val_size=32", "data.test_size=32"],  # full batch, float64
        "formula": ["data.train_size=64", "data.val_size=32", "data.test_size=32"],
        "mnist": ["data.download=false", "data.batch_size=16", "model.channels=[2,4]"],
        "cifar100": ["data.download=false", "data.batch_size=16", "model.channels=[2,3,4]"],
        "vae": ["data.download=false", "data.batch_size=32", "model.channels=[2,3]", "model.latent_dim=2"]}
IMAGE = ["data.batch_size=1024", "trainer.check_val_every_n_epoch=1"]  # the packaged 128 x 128 image
TINY |= {name: IMAGE for name in EXPERIMENTS if name.startswith("implicit_image")}
PDE = ["data.interior=64", "data.boundary=16", "data.initial=16", "optimizer.max_iter=3",
       "data.val_grid=[5,4]"]
TINY |= {"poisson": [*PDE, "data.test_grid=[11,11]"], "burgers": [*PDE, "data.test_grid=[1001,3]"],
         "sod": [*PDE, "data.test_grid=[1001,3]"]}


def test_every_experiment_has_tiny_settings():
    assert set(TINY) == set(EXPERIMENTS)


@pytest.mark.cuda
@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_trains_on_the_gpu(name, tmp_path, mnist_root, cifar100_root):
    root = {"mnist": mnist_root, "invariant_mnist": mnist_root, "invariant_mnist_prefine": mnist_root,
            "vae": mnist_root, "cifar100": cifar100_root}.get(name)
    data = [f"data.root={root}"] if root else []
    staged = ("invariant_mnist_prefine", "function_2d", "formula", "sod")
    epochs = [] if name in staged else ["trainer.max_epochs=1"]  # their stages set the epochs
    run = tmp_path / "run"
    cfg = compose_config([f"experiment={name}", "trainer=gpu", *TINY[name], *data, *epochs, "logger=csv"],
                         run_dir=run)
    metrics = train(cfg)
    assert metrics and all(math.isfinite(value) for value in metrics.values())
    last = run / "checkpoints" / "last.ckpt"
    module = HolModule.from_checkpoint(str(last))  # onto the CPU
    assert all(p.device.type == "cpu" for p in module.parameters())
    evaluated = evaluate(compose_config([f"ckpt_path={last}"], "eval", tmp_path / "eval"))  # on the CPU
    assert evaluated and all(math.isfinite(value) for value in evaluated.values())
    assert torch.cuda.max_memory_allocated() > 0  # the run used the GPU
