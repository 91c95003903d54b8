"""The README's VAE picture: MNIST test images, their reconstructions and samples from the prior, of trained
``experiment=vae`` checkpoints (e.g. hol's and ``layer=relu``'s), one row each:

    .venv/bin/python tools/vae_figure.py --checkpoint hol=outputs/vae/.../last.ckpt \
        --checkpoint relu=outputs/vae_relu/.../last.ckpt --out docs/vae_mnist.png

Reconstructions decode the posterior mean; samples decode ``z ~ N(0, I)`` drawn with a fixed seed; both show
the mean pixel intensities. Each model is rebuilt from its checkpoint alone (``HolModule.from_checkpoint``).
"""
from __future__ import annotations

import argparse

import hydra
import torch
from matplotlib.figure import Figure
from omegaconf import OmegaConf
from torchvision.utils import make_grid

from hol.runner.lightning_module import HolModule


@torch.no_grad()
def rows(checkpoints: dict[str, str], count: int) -> dict[str, torch.Tensor]:
    """Title -> images ``[count, 1, H, W]`` in ``[0, 1]``."""
    shown: dict[str, torch.Tensor] = {}
    for name, path in checkpoints.items():
        module = HolModule.from_checkpoint(path).eval()
        if not shown:
            data = hydra.utils.instantiate(OmegaConf.create(module.hparams.data_config))
            data.setup("test")
            inputs = torch.stack([data.test_set[i][0] for i in range(count)])
            inputs, targets = module.task.split([inputs])
            shown["test images"] = targets
        shown[f"{name}: reconstructions"] = module.net.reconstruct(inputs)
        shown[f"{name}: samples"] = module.net.sample(count, torch.Generator().manual_seed(0))
    return shown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", action="append", required=True, help="NAME=PATH, in row order")
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--out", default="docs/vae_mnist.png")
    args = parser.parse_args()
    checkpoints = dict(entry.split("=", 1) for entry in args.checkpoint)
    images = rows(checkpoints, args.count)
    figure = Figure(figsize=(args.count * 0.42 + 1.6, len(images) * 0.5), layout="constrained")
    for index, (title, batch) in enumerate(images.items()):
        axes = figure.add_subplot(len(images), 1, index + 1)
        grid = make_grid(batch.clamp(0, 1), nrow=args.count, padding=1, pad_value=1.0)[0]
        axes.imshow(grid, cmap="gray", vmin=0, vmax=1)
        axes.set_xticks([])
        axes.set_yticks([])
        axes.set_ylabel(title, rotation=0, ha="right", va="center", fontsize=7)
    figure.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
