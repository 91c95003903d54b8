"""``data=image``: one image file as a regression data set, pixel coordinates -> pixel values (an implicit
representation of the image).

Pixel ``(i, j)`` (row ``i`` of ``H`` from the top, column ``j`` of ``W`` from the left) is the sample
``(x_j, y_i) -> value[i, j, :]``: its centre in ``domain`` per axis,

    x_j = low + (high - low) (j + 1/2) / W,    y_i = low + (high - low) (i + 1/2) / H,

and its ``C`` intensities (1 grey, 3 colour) in ``[0, 1]`` mapped linearly onto ``value_range``. Samples are
in row-major order (index ``i W + j``). The test set is the whole image; the validation set is a seeded random
``holdout_fraction`` of the pixels, left out of training (generalization), or the whole image when it is 0.

Files: PNG or JPEG (anything Pillow reads), any size (``size`` resizes the longest side); grey modes (``1``,
``L``, ``LA``, 16-bit ``I;16``) give one channel, everything else RGB (alpha dropped). ``path = None`` is the
project's own test image :data:`DEFAULT_IMAGE` (128 x 128 RGB, drawn by ``tools/make_default_image.py``). A
missing or unreadable file raises :class:`~hol.runner.data.DataError` naming the path.
"""
from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from importlib.resources import files
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Subset, TensorDataset

from ..checks import check_int, check_interval, check_number
from .data import DataError, _DataModule

DEFAULT_IMAGE = "default_image.png"
"""The default image, package data of :mod:`hol.runner`."""
GREY_MODES = ("1", "L", "LA")


def default_image_path() -> Path:
    """Where the default image is installed."""
    return Path(str(files("hol.runner") / DEFAULT_IMAGE))


def read_image(path: Path, size: int | None = None) -> Tensor:
    """The intensities of an image file in ``[0, 1]``, ``float32 [H, W, C]`` (``C`` 1 or 3), the longest side
    resized to ``size`` (Lanczos) if given; :class:`DataError` naming the path if it cannot be read."""
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise DataError(f"image file not found: {path} (set data.path to a PNG or JPEG file)")
    try:
        with Image.open(path) as file:
            if file.mode == "I" or file.mode.startswith("I;16"):  # 16-bit grey: keep its precision
                image = Image.fromarray(np.asarray(file, dtype=np.float32) / 65535)  # mode F
            else:
                image = file.convert("L" if file.mode in GREY_MODES else "RGB")
            if size is not None and max(image.size) != size:
                scale = size / max(image.size)
                shape = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
                image = image.resize(shape, Image.Resampling.LANCZOS)
            array: np.ndarray = np.asarray(image, dtype=np.float32)
    except (UnidentifiedImageError, OSError, ValueError) as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        raise DataError(f"cannot read the image {path} ({reason}); data.path must name a PNG or JPEG "
                        "file") from error
    if image.mode != "F":
        array = array / 255
    return torch.from_numpy(np.clip(array, 0, 1).reshape(*array.shape[:2], -1).copy())


class ImplicitImageDataModule(_DataModule):
    """One image as regression data: pixel coordinates ``[N, 2]`` -> pixel values ``[N, C]`` (module
    docstring).

    Args:
        path: the image file (``None``: :data:`DEFAULT_IMAGE`).
        size: resize the longest side to this many pixels (``None``: as is).
        domain: range of the coordinates per axis (inside the layers' domain ``[-L/2, L/2]``).
        value_range: range the intensities ``[0, 1]`` are mapped onto (PSNR's peak is its width).
        holdout_fraction: fraction of the pixels left out of training as the validation set (0: none, the
            validation set is the whole image).
        batch_size, num_workers, seed: as the other data modules (``seed`` also draws the held-out pixels).
    """

    task = "image_regression"
    in_features = 2
    input_shape = (2,)

    def __init__(self, path: str | None = None, size: int | None = None,
                 domain: Sequence[float] = (-1.0, 1.0), value_range: Sequence[float] = (-1.0, 1.0),
                 holdout_fraction: float = 0.0, batch_size: int = 1024, num_workers: int = 0,
                 seed: int | None = 0):
        super().__init__(batch_size, num_workers, seed)
        self.path = default_image_path() if path is None else Path(path).expanduser()
        self.size = None if size is None else check_int("data.size", size, 1)
        self.domain = check_interval("data.domain", domain)
        self.value_range = check_interval("data.value_range", value_range)
        self.holdout_fraction = check_number("data.holdout_fraction", holdout_fraction, 0, 1, below=True)

    @cached_property
    def intensities(self) -> Tensor:
        """The image's intensities in ``[0, 1]``, ``[H, W, C]`` (read once)."""
        return read_image(self.path, self.size)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(H, W, C)``."""
        height, width, channels = self.intensities.shape
        return height, width, channels

    @property
    def out_features(self) -> int:
        """The image's channels (1 or 3)."""
        return self.image_shape[2]

    @property
    def task_options(self) -> dict:
        height, width, _ = self.image_shape
        return {"value_range": list(self.value_range), "pixels": height * width}

    def coordinates(self) -> Tensor:
        """Every pixel's centre ``(x, y)`` in ``domain``, row-major: ``[H W, 2]``."""
        height, width, _ = self.image_shape
        low, high = self.domain
        x = low + (high - low) * (torch.arange(width, dtype=torch.float64) + 0.5) / width
        y = low + (high - low) * (torch.arange(height, dtype=torch.float64) + 0.5) / height
        rows, columns = torch.meshgrid(y, x, indexing="ij")
        return torch.stack([columns.flatten(), rows.flatten()], dim=-1).float()

    def values(self) -> Tensor:
        """Every pixel's intensities mapped onto ``value_range``, row-major: ``[H W, C]``."""
        low, high = self.value_range
        return low + (high - low) * self.intensities.flatten(0, 1)

    def to_image(self, values: Tensor) -> Tensor:
        """Row-major values ``[H W, C]`` as an image ``[C, H, W]`` (TensorBoard's layout)."""
        height, width, channels = self.image_shape
        return values.T.reshape(channels, height, width)

    def prepare_data(self) -> None:
        self.intensities  # noqa: B018  # read the file now: a bad one stops the run before anything starts

    def setup(self, stage: str | None = None) -> None:
        if self.test_set is not None:
            return
        full = TensorDataset(self.coordinates(), self.values())
        self.test_set = full
        if self.holdout_fraction == 0:
            self.train_set = self.val_set = full
            return
        order = torch.randperm(len(full), generator=torch.Generator().manual_seed(self.seed)).tolist()
        held_out = round(self.holdout_fraction * len(full))
        if not 0 < held_out < len(full):
            raise DataError(f"data.holdout_fraction={self.holdout_fraction} holds out {held_out} of the "
                            f"{len(full)} pixels of {self.path}; choose a fraction that leaves some on each "
                            "side")
        self.val_set, self.train_set = Subset(full, order[:held_out]), Subset(full, order[held_out:])
