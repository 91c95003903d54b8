"""Every experiment preset made tiny: the overrides that run it end to end in seconds on tiny data."""
from __future__ import annotations

from pathlib import Path

from hol.runner.cli import config_dir
from tests.helpers.runs import TINY_DATA

EXPERIMENTS = sorted(path.stem for path in (Path(config_dir()) / "experiment").glob("*.yaml"))
"""The shipped experiment presets (``experiment=<name>``)."""

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
"""Per preset, the overrides that make its data and network tiny."""
STAGED = ("invariant_mnist_prefine", "function_2d", "formula", "sod")
"""Presets whose stages set the epochs."""


def tiny_preset(name: str, mnist_root: Path, cifar100_root: Path) -> list[str]:
    """The overrides of a one-epoch (or one-epoch-per-stage) run of preset ``name`` on tiny data, the image
    data sets read from the tiny files at ``mnist_root`` and ``cifar100_root``."""
    root = {"mnist": mnist_root, "invariant_mnist": mnist_root, "invariant_mnist_prefine": mnist_root,
            "vae": mnist_root, "cifar100": cifar100_root}.get(name)
    data = [f"data.root={root}"] if root else []
    epochs = [] if name in STAGED else ["trainer.max_epochs=1"]
    return [f"experiment={name}", *TINY[name], *data, *epochs]
