"""Data sets of the runner as LightningDataModules: ``function``, ``xor``, ``mnist``, ``cifar100`` (and
``image``, :mod:`hol.runner.implicit_image`).

Every module states what the model needs: ``task`` (``"regression"`` or ``"classification"``; the task's
options are ``task_options``, see :mod:`hol.runner.tasks`), ``in_features`` (inputs per sample, flattened),
``input_shape`` (one sample's shape), ``out_features`` (outputs of the net: 1 for regression, the number of
classes for classification).

Inputs are scaled into the layers' domain ``[-L/2, L/2]`` (``[-1, 1]`` for the default ``length = 2``):

* ``function`` and ``xor`` sample points uniformly in ``domain`` (default ``[-1, 1]`` per variable;
  ``function``: or each variable of ``variables`` in its interval) and feed them unchanged; their
  ``input_domains`` (the intervals) let the runner's MLP map each input onto ``[-1, 1]`` first
  (:class:`hol.networks.InputScaling`, ``model.input_domains: null``); they hold points and targets in
  ``dtype`` (``float32``, or ``float64`` for accuracies below float32's, the default under
  ``trainer.precision=64-true``: :func:`hol.runner.train.build_datamodule`), each target computed in float64
  at its point as stored;
* ``mnist`` and ``cifar100`` map pixel intensities ``p`` in ``[0, 1]`` linearly onto ``input_range``
  (default ``[-1, 1]``): ``low + (high - low) p``.

``batch_size: null`` puts each split in one batch (full-batch training such as L-BFGS, whatever the size).

Shuffling is reproducible and resumable: the training order of epoch ``k`` depends only on ``(seed, k)``
(:class:`EpochShuffleSampler`), so a run resumed from a checkpoint sees the same batches as an uninterrupted
one.
"""
from __future__ import annotations

import io
import pickle
from collections.abc import Iterator, Mapping, Sequence, Sized
from pathlib import Path
from typing import cast

import lightning.pytorch as pl
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler, Subset, TensorDataset

from ..checks import check_choice, check_int, check_interval, check_number
from ..expr import VARIABLES, Expression, check_variable_names, parse

DEFAULT_EXPR = "0.5*cos(1.5*pi/(abs(x)+0.25))"
DTYPES = {"float32": torch.float32, "float64": torch.float64}


class DataError(Exception):
    """Data files missing, unreadable or impossible to download (the message says which and how to fix it)."""


class EpochShuffleSampler(Sampler[int]):
    """A random permutation of ``range(size)`` per epoch, drawn from a generator seeded with ``seed + epoch``.

    Lightning calls :meth:`set_epoch` before every training epoch, so the order depends only on
    ``(seed, epoch)`` and not on how many random numbers were drawn before (resume-safe).
    """

    def __init__(self, size: int, seed: int = 0):
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(self.size, generator=generator).tolist())

    def __len__(self) -> int:
        return self.size


def trainer_datamodule(trainer: pl.Trainer) -> pl.LightningDataModule | None:
    """The datamodule ``trainer`` runs on (``None``: plain dataloaders or none)."""
    return trainer.datamodule  # type: ignore[attr-defined]  # Lightning sets it at run time, undeclared


class _DataModule(pl.LightningDataModule):
    """Shared loaders: ``self.train_set``, ``self.val_set``, ``self.test_set`` are filled by ``setup``."""

    task: str
    in_features: int
    input_shape: tuple[int, ...]

    @property
    def out_features(self) -> int:
        """Outputs of the net (module docstring); subclasses set it, as a class attribute or a property."""
        raise NotImplementedError

    def __init__(self, batch_size: int | None, num_workers: int, seed: int | None):
        super().__init__()
        # None: every split in one batch (full-batch training, e.g. L-BFGS, whatever the split's size)
        self.batch_size = None if batch_size is None else check_int("data.batch_size", batch_size, 1)
        self.num_workers = check_int("data.num_workers", num_workers, 0)
        self.seed = 0 if seed is None else int(seed)
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self.test_set: Dataset | None = None

    @property
    def task_options(self) -> dict:
        """Options of the data's task (:mod:`hol.runner.tasks`): the number of classes of a classification."""
        return {"num_classes": self.out_features} if self.task == "classification" else {}

    def _loader(self, dataset: Dataset | None, shuffle: bool) -> DataLoader:
        if dataset is None:
            raise RuntimeError(f"{type(self).__name__} has no data yet: call setup() before a dataloader")
        size = len(cast(Sized, dataset))  # the splits are map-style datasets, which have a length
        sampler = EpochShuffleSampler(size, self.seed) if shuffle else None
        # Its own generator: creating an iterator draws the workers' base seed from it, not from torch's
        # global generator, whose draws (dropout) must not depend on when Lightning creates iterators.
        batch_size = self.batch_size or max(size, 1)
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0,
                          generator=torch.Generator().manual_seed(self.seed))

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, shuffle=False)


class SyntheticDataModule(_DataModule):
    """Regression on ``target(points)`` with points uniform in a box (a seeded, fixed sample), held in
    ``dtype`` (``"float32"`` or ``"float64"``; ``None``: float32); each target is computed in float64 at its
    point as stored (rounded to ``dtype``), so data and targets agree to the rounding of the targets.

    The box is ``domain^dims`` unless a subclass sets :attr:`intervals` (one ``(low, high)`` per input) before
    calling ``__init__``; :attr:`names` names the inputs (``x``, ``y``, ... by default). Subclasses set
    ``dims`` and implement :meth:`target` (``[N, dims] -> [N]``); plots use the same method.
    """

    task = "regression"
    out_features = 1
    dims: int
    names: tuple[str, ...] = ("x", "y")
    intervals: tuple[tuple[float, float], ...] = ()
    what = "data target"
    """How errors name the target (``data.expr '...'`` for formulas)."""

    def __init__(self, domain: Sequence[float] = (-1.0, 1.0), train_size: int = 1000, val_size: int = 200,
                 test_size: int = 1000, batch_size: int | None = 32, num_workers: int = 0,
                 seed: int | None = 0, dtype: str | None = None):
        super().__init__(batch_size, num_workers, seed)
        self.dtype = DTYPES[check_choice("data.dtype", dtype or "float32", DTYPES)]
        self.domain = check_interval("data.domain", domain)
        self.intervals = self.intervals or (self.domain,) * self.dims
        self.sizes = {split: check_int(f"data.{split}_size", size, 1)
                      for split, size in (("train", train_size), ("val", val_size), ("test", test_size))}
        self.in_features, self.input_shape = self.dims, (self.dims,)

    @property
    def input_domains(self) -> list[list[float]]:
        """The interval of every input, for the network's :class:`hol.networks.InputScaling`."""
        return [list(interval) for interval in self.intervals]

    def target(self, points: Tensor) -> Tensor:
        raise NotImplementedError

    def sample(self, size: int, stream: int) -> TensorDataset:
        """``size`` points and their targets ``[size, 1]``, from a generator seeded with
        ``(seed, stream)``; ``ValueError`` naming the target and a point where it is not finite."""
        generator = torch.Generator().manual_seed(self.seed * 1000 + stream)
        low, high = torch.tensor(self.intervals, dtype=torch.float64).T
        points = low + (high - low) * torch.rand(size, self.dims, generator=generator, dtype=torch.float64)
        points = points.to(self.dtype).double()  # the points as stored: the targets are computed there
        values = self.target(points)
        bad = ~torch.isfinite(values)
        if bad.any():
            point = points[bad.nonzero()[0, 0]].tolist()
            where = ", ".join(f"{name}={value:.6g}" for name, value in zip(self.names, point, strict=False))
            box = ", ".join(f"{name} in {list(interval)}"
                            for name, interval in zip(self.names, self.intervals, strict=False))
            raise ValueError(f"{self.what} is not finite at {where} (sampled from {box}); change the formula "
                             "or the intervals")
        return TensorDataset(points.to(self.dtype), values.to(self.dtype).unsqueeze(-1))

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None:
            self.train_set, self.val_set, self.test_set = (
                self.sample(self.sizes[split], stream)
                for stream, split in enumerate(("train", "val", "test")))


def _parse_expr(text: str, names: Sequence[str]) -> Expression:
    try:
        return parse(text, names)
    except ValueError as error:
        raise ValueError(f"data.expr: {error}") from None


class FunctionDataModule(SyntheticDataModule):
    """Regression on the formula ``expr`` (see :mod:`hol.expr`) of named variables.

    Args:
        expr: the formula.
        variables: a mapping of variable names to intervals ``[low, high]`` (in the order the network takes
            them as inputs), every one used by ``expr``; ``None``: ``x`` (and ``y`` when ``expr`` uses it) on
            ``domain``.
        **kwargs: :class:`SyntheticDataModule`'s.

    Raises:
        ValueError: a formula outside :mod:`hol.expr`'s language or in other names, a bad variable name or
            interval, a variable the formula does not use, or a target that is not finite (naming the point).
    """

    def __init__(self, expr: str = DEFAULT_EXPR, variables: Mapping[str, Sequence[float]] | None = None,
                 **kwargs):
        if variables is None:
            self.expression = _parse_expr(expr, VARIABLES)
            self.dims = self.expression.dims
        else:
            if not isinstance(variables, Mapping):
                raise ValueError(f"data.variables must be a mapping of names to intervals [low, high], e.g. "
                                 f"{{x: [0, 1], y: [0.1, 1]}}, got {variables!r}")
            names = check_variable_names(list(variables), "data.variables")
            self.intervals = tuple(check_interval(f"data.variables.{name}", variables[name])
                                   for name in names)
            self.expression = _parse_expr(expr, names)
            unused = [name for name in names if name not in self.expression.variables]
            if unused:
                raise ValueError(f"data.variables: {', '.join(unused)} not used by data.expr {expr!r}; use "
                                 f"every variable in the formula (an input on purpose: + 0*{unused[0]}) or "
                                 "remove the unused ones")
            self.dims = len(names)
        self.names = self.expression.names[:self.dims]
        self.what = f"data.expr {expr!r}"
        super().__init__(**kwargs)

    def target(self, points: Tensor) -> Tensor:
        return self.expression(*points.unbind(-1))


class XorDataModule(SyntheticDataModule):
    """The XOR problem on ``domain^2``: target ``0.5`` where ``x y > 0``, else ``-0.5``."""

    dims = 2

    def target(self, points: Tensor) -> Tensor:
        x, y = points.unbind(-1)
        return torch.where(x * y > 0, 0.5, -0.5).to(points.dtype)


class ImageDataset(Dataset):
    """``uint8`` images ``[N, C, H, W]`` and labels; item ``i`` is
    ``(low + (high - low) * image / 255, label)``."""

    def __init__(self, images: Tensor, labels: Tensor, input_range: tuple[float, float]):
        self.images, self.labels = images, labels.long()
        self.low, self.scale = input_range[0], (input_range[1] - input_range[0]) / 255.0

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.low + self.scale * self.images[index].float(), self.labels[index]


class ImageDataModule(_DataModule):
    """Image classification: the official training split minus a seeded validation split, and the test split.

    ``val_fraction`` of the training split is held out for validation; ``train_fraction`` of the rest is used
    for training (for quick runs). Subclasses name their files (:attr:`folder`, :attr:`files`,
    :attr:`source`) and implement :meth:`download_files` and :meth:`read`
    (``train: bool -> (uint8 images [N, C, H, W], labels)``); missing, undownloadable or unreadable files
    raise :class:`DataError` with one message naming the files.
    """

    task = "classification"
    name: str
    files: tuple[str, ...]
    source: str  # where the files come from, for the error messages

    def __init__(self, root: str = "data/", download: bool = True, val_fraction: float = 0.1,
                 train_fraction: float = 1.0, input_range: Sequence[float] = (-1.0, 1.0),
                 batch_size: int = 64, num_workers: int = 0, seed: int | None = 0):
        super().__init__(batch_size, num_workers, seed)
        self.root, self.download = Path(root).expanduser(), bool(download)
        self.val_fraction = check_number("data.val_fraction", val_fraction, 0, 1, above=True, below=True)
        self.train_fraction = check_number("data.train_fraction", train_fraction, 0, 1, above=True)
        self.input_range = check_interval("data.input_range", input_range)
        self.in_features = int(np.prod(self.input_shape))

    @property
    def folder(self) -> Path:
        """The folder holding :attr:`files`."""
        raise NotImplementedError

    def download_files(self) -> None:
        """Download the files into :attr:`folder` (checking them), or raise."""
        raise NotImplementedError

    def read(self, train: bool) -> tuple[Tensor, Tensor]:
        """``uint8`` images ``[N, C, H, W]`` and labels of the training or test split, or raise."""
        raise NotImplementedError

    def _help(self) -> str:
        return (f"expected the files {', '.join(self.files)} in {self.folder} ({self.source}); "
                f"set data.root to the folder that holds {self.folder.relative_to(self.root)}")

    def fetch(self) -> None:
        """Make sure the files are under ``root`` (download them if allowed), else raise
        :class:`DataError`."""
        if all((self.folder / name).is_file() for name in self.files):
            return
        if not self.download:
            raise DataError(f"{self.name} files not found (data.download=false): {self._help()}, or "
                            "data.download=true")
        try:
            self.download_files()
        except Exception as error:  # torchvision raises RuntimeError/URLError/OSError, with newlines
            reason = " ".join(str(error).split())
            raise DataError(f"{self.name} download failed ({reason}): {self._help()}") from error

    def load(self, train: bool) -> tuple[Tensor, Tensor]:
        """:meth:`read` after :meth:`fetch`; any failure to read is a :class:`DataError` naming the files."""
        self.fetch()
        try:
            return self.read(train)
        except Exception as error:
            reason = " ".join(str(error).split()) or type(error).__name__
            raise DataError(f"cannot read {self.name} ({reason}): {self._help()}") from error

    def prepare_data(self) -> None:
        self.fetch()

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        images, labels = self.load(train=True)
        full = ImageDataset(images, labels, self.input_range)
        order = torch.randperm(len(full), generator=torch.Generator().manual_seed(self.seed)).tolist()
        val_size = max(1, round(self.val_fraction * len(full)))
        rest = order[val_size:]
        train_size = max(1, round(self.train_fraction * len(rest)))
        if not rest:
            raise DataError(f"{self.name}: {len(full)} training images leave none for training after the "
                            f"validation split (data.val_fraction={self.val_fraction})")
        self.train_set, self.val_set = Subset(full, rest[:train_size]), Subset(full, order[:val_size])
        self.test_set = ImageDataset(*self.load(train=False), self.input_range)


class MNISTDataModule(ImageDataModule):
    """MNIST through torchvision (``<root>/MNIST/raw/`` holding the four IDX files), images
    ``[1, 28, 28]``."""

    name = "MNIST"
    input_shape = (1, 28, 28)
    out_features = 10
    files = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
             "t10k-labels-idx1-ubyte")
    source = "from https://ossci-datasets.s3.amazonaws.com/mnist/, unpacked"

    @property
    def folder(self) -> Path:
        return self.root / "MNIST" / "raw"

    def download_files(self) -> None:
        from torchvision.datasets import MNIST

        MNIST(str(self.root), train=True, download=True)

    def read(self, train: bool) -> tuple[Tensor, Tensor]:
        from torchvision.datasets import MNIST

        dataset = MNIST(str(self.root), train=train, download=False)
        images, labels = dataset.data, dataset.targets
        if images.dim() != 3 or images.shape[1:] != (28, 28) or len(images) != len(labels):
            raise ValueError(f"images of shape {tuple(images.shape)} and {len(labels)} labels")
        return images.unsqueeze(1), labels


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler for the CIFAR python format that loads dicts, lists, strings and numpy arrays, nothing
    else."""

    ALLOWED = frozenset({("numpy.core.multiarray", "_reconstruct"),
                         ("numpy._core.multiarray", "_reconstruct"), ("numpy", "ndarray"), ("numpy", "dtype"),
                         ("copyreg", "_reconstructor")})

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"unexpected object {module}.{name}")
        return super().find_class(module, name)


def read_cifar100(path: Path) -> tuple[Tensor, Tensor]:
    """Read one CIFAR-100 python pickle (``data``: ``[N, 3072]`` uint8, ``fine_labels``: N ints).

    Returns ``uint8`` images ``[N, 3, 32, 32]`` and ``long`` labels ``[N]``. Raises ``ValueError`` for
    anything else.
    """
    with open(path, "rb") as file:
        entry = _ArrayUnpickler(io.BytesIO(file.read()), encoding="latin1").load()
    if not isinstance(entry, dict) or "data" not in entry or "fine_labels" not in entry:
        raise ValueError(f"{path.name} has no 'data' and 'fine_labels' entries")
    data = np.asarray(entry["data"], dtype=np.uint8)
    labels = np.asarray(entry["fine_labels"], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise ValueError(f"{path.name} holds data of shape {data.shape} and {len(labels)} labels")
    if labels.size and (labels.min() < 0 or labels.max() >= 100):
        raise ValueError(f"{path.name} holds labels outside 0..99")
    return torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()), torch.from_numpy(labels)


class CIFAR100DataModule(ImageDataModule):
    """CIFAR-100 (fine labels) from the python pickles in ``<root>/cifar-100-python/``, images
    ``[3, 32, 32]``.

    Downloads go through torchvision's ``CIFAR100(download=True)``, which verifies the archive's and the
    files' checksums; the files are then read by :func:`read_cifar100` (a restricted unpickler, no arbitrary
    objects).
    """

    name = "CIFAR-100"
    input_shape = (3, 32, 32)
    out_features = 100

    files = ("train", "test", "meta")
    source = ("the python version of CIFAR-100, cifar-100-python.tar.gz from "
              "https://www.cs.toronto.edu/~kriz/cifar.html, extracted")

    @property
    def folder(self) -> Path:
        return self.root / "cifar-100-python"

    def download_files(self) -> None:
        from torchvision.datasets import CIFAR100

        CIFAR100(str(self.root), train=True, download=True)

    def read(self, train: bool) -> tuple[Tensor, Tensor]:
        return read_cifar100(self.folder / ("train" if train else "test"))
