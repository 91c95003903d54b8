"""Tiny data sets written in the real file formats (no network): MNIST IDX, CIFAR-100 python pickles, the
photographs of data=image as PNG."""
from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write ``array`` (uint8) in the IDX format of MNIST: magic ``0x0000 08 ndim``, big-endian dims, data."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def make_mnist(root: Path, train: int = 60, test: int = 20, seed: int = 0) -> Path:
    """Tiny MNIST under ``root/MNIST/raw``: each image is bright in the row block of its label (learnable)."""
    rng = np.random.default_rng(seed)
    for prefix, size in (("train", train), ("t10k", test)):
        labels = rng.integers(0, 10, size).astype(np.uint8)
        images = rng.integers(0, 40, (size, 28, 28)).astype(np.uint8)
        for image, label in zip(images, labels, strict=True):
            image[2 * label:2 * label + 3] = 255
        write_idx(root / "MNIST" / "raw" / f"{prefix}-images-idx3-ubyte", images)
        write_idx(root / "MNIST" / "raw" / f"{prefix}-labels-idx1-ubyte", labels)
    return root


def make_cifar100(root: Path, train: int = 50, test: int = 20, seed: int = 0) -> Path:
    """Tiny CIFAR-100 in the python pickle format under ``root/cifar-100-python`` (train, test, meta)."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    for name, size in (("train", train), ("test", test)):
        entry = {"filenames": [f"{name}_{i}.png" for i in range(size)], "batch_label": f"{name} batch",
                 "fine_labels": rng.integers(0, 100, size).tolist(),
                 "coarse_labels": rng.integers(0, 20, size).tolist(),
                 "data": rng.integers(0, 256, (size, 3072)).astype(np.uint8)}
        (folder / name).write_bytes(pickle.dumps(entry))
    meta = {"fine_label_names": [f"class{i}" for i in range(100)],
            "coarse_label_names": [f"super{i}" for i in range(20)]}
    (folder / "meta").write_bytes(pickle.dumps(meta))
    return root


def make_images(folder: Path, size: int = 16, seed: int = 0) -> Path:
    """Tiny stand-ins of ``../shared/data/images``: ``camera.png`` (grey) and ``astronaut.png`` (RGB)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8)).save(folder / "camera.png")
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / "astronaut.png")
    return folder
