"""The README's implicit-representation picture: an image and what trained ``experiment=implicit_image*``
checkpoints render of it, side by side, each titled with its PSNR and bits per pixel:

    .venv/bin/python tools/implicit_figure.py --checkpoint hol=outputs/.../last.ckpt \
        --checkpoint siren=outputs/.../last.ckpt --out docs/implicit_default.png

Each model is rebuilt from its checkpoint alone (``HolModule.from_checkpoint``), the image from the data
config the checkpoint stores.
"""
from __future__ import annotations

import argparse
import math

import hydra
import torch
from matplotlib.figure import Figure
from omegaconf import OmegaConf

from hol.runner.lightning_module import HolModule
from hol.runner.tasks import bits


@torch.no_grad()
def render(path: str) -> tuple[torch.Tensor, torch.Tensor, float, float]:
    """``(image, rendering, psnr, bpp)`` of a checkpoint: images ``[H, W, C]`` in ``[0, 1]``."""
    module = HolModule.from_checkpoint(path).eval()
    data = hydra.utils.instantiate(OmegaConf.create(module.hparams.data_config))
    low, high = data.value_range
    values = torch.cat([module(chunk) for chunk in data.coordinates().split(4096)])
    rendering = ((values - low) / (high - low)).reshape(data.image_shape)
    mse = (data.values() - values).square().mean().item()
    height, width, _ = data.image_shape
    return data.intensities, rendering.clamp(0, 1), 20 * math.log10((high - low) / math.sqrt(mse)), \
        bits(module.net) / (height * width)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", action="append", required=True, help="NAME=PATH, in column order")
    parser.add_argument("--out", default="docs/implicit_default.png")
    args = parser.parse_args()
    panels = []
    for entry in args.checkpoint:
        name, path = entry.split("=", 1)
        image, rendering, psnr, bpp = render(path)
        if not panels:
            panels.append(("image", image))
        panels.append((f"{name}\n{psnr:.1f} dB, {bpp:.1f} bpp", rendering))
    figure = Figure(figsize=(1.45 * len(panels), 1.8), layout="constrained")
    for index, (title, picture) in enumerate(panels):
        axes = figure.add_subplot(1, len(panels), index + 1)
        grey = picture.shape[-1] == 1
        axes.imshow(picture[..., 0] if grey else picture, cmap="gray" if grey else None, vmin=0, vmax=1)
        axes.set_title(title, fontsize=7)
        axes.axis("off")
    figure.savefig(args.out, dpi=90)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
