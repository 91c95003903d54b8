"""Draw hol's default test image for ``data=image`` (``hol/runner/default_image.png``), deterministically.

A 128 x 128 RGB picture with what implicit representations find easy and hard: smooth colour gradients, a
shaded disc, a sharp-edged rotated square, a triangle, a checkerboard and a chirp (stripes of rising
frequency). Drawn at 4 x 4 samples per pixel and averaged (anti-aliased edges), numpy only, so the file is
reproducible:

    .venv/bin/python tools/make_default_image.py
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

SIZE, SUPERSAMPLING = 128, 4
OUTPUT = Path(__file__).resolve().parents[1] / "hol" / "runner" / "default_image.png"


def draw(size: int = SIZE, supersampling: int = SUPERSAMPLING) -> np.ndarray:
    """The picture as ``uint8 [size, size, 3]``."""
    samples = size * supersampling
    t = (np.arange(samples) + 0.5) / samples
    y, x = np.meshgrid(t, t, indexing="ij")  # both in (0, 1), y downwards
    image = np.stack([0.25 + 0.5 * x, 0.3 + 0.4 * y, 0.8 - 0.5 * (x + y) / 2], axis=-1)  # gradient background

    def paint(mask: np.ndarray, colour) -> None:
        image[mask] = colour if np.ndim(colour) == 1 else colour[mask]

    # shaded disc (a lit sphere)
    r2 = ((x - 0.3) ** 2 + (y - 0.32) ** 2) / 0.2**2
    light = np.clip(1 - ((x - 0.25) ** 2 + (y - 0.26) ** 2) / 0.3**2, 0, 1)[..., None]
    paint(r2 < 1, np.array([0.95, 0.55, 0.1]) * (0.45 + 0.55 * light))
    # rotated square, sharp edges
    dx, dy = x - 0.72, y - 0.3
    u, v = dx * np.cos(0.5) + dy * np.sin(0.5), -dx * np.sin(0.5) + dy * np.cos(0.5)
    paint((np.abs(u) < 0.13) & (np.abs(v) < 0.13), np.array([0.1, 0.15, 0.45]))
    # triangle
    paint((y > 0.52) & (y < 0.74) & (np.abs(x - 0.2) < (y - 0.52) * 0.6), np.array([0.2, 0.6, 0.25]))
    # checkerboard, 8 px cells
    board = (x > 0.45) & (x < 0.95) & (y > 0.55) & (y < 0.72)
    cells = (np.floor(x * size / 8) + np.floor(y * size / 8)) % 2
    paint(board, np.stack([cells, cells, cells], axis=-1) * 0.9 + 0.05)
    # chirp: stripes from 2 to ~40 cycles across the width
    stripes = 0.5 + 0.45 * np.sin(2 * np.pi * (2 * x + 19 * x**2))
    paint(y > 0.78, np.stack([stripes, stripes * 0.9, stripes * 0.8], axis=-1))

    averaged = image.reshape(size, supersampling, size, supersampling, 3).mean(axis=(1, 3))
    return np.round(np.clip(averaged, 0, 1) * 255).astype(np.uint8)


if __name__ == "__main__":
    Image.fromarray(draw(), mode="RGB").save(OUTPUT, optimize=True)
    print(f"wrote {OUTPUT}")
