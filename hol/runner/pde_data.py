"""``data=pde``: the collocation points of an equation of :mod:`hol.pde` as a LightningDataModule.

Every batch is a mapping of tensors (:data:`hol.pde.equations.Batch`): interior collocation points, boundary
points with their values and, for time-dependent equations, initial points with the initial state. A training
epoch is ``steps_per_epoch`` batches of ``interior``, ``boundary`` and ``initial`` points drawn uniformly,
the same points every epoch or, with ``resample: true``, new ones every epoch (each draw seeded by
``(seed, epoch, step)``, so a resumed run sees the same points). With ``sampling: residual`` the interior
points of every epoch after the first are drawn where the network fits the equation worst, by RAD's density
(:func:`hol.pde.residual_sample`: ``candidates`` uniform points, ``density_exponent`` k,
``density_constant`` c), from the network as the epoch starts (the task hands it over,
:attr:`PDEDataModule.model`). Validation and test batches are drawn once from their own streams and also
hold a uniform grid of the domain with the reference solution there (``val_grid``, ``test_grid``: points per
coordinate, time last), where the equation has one.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import cast

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from ..checks import check_bool, check_choice, check_int, check_ints, check_number
from ..pde import Equation, residual_sample
from ..pde.equations import Model
from .data import DTYPES, _DataModule

SAMPLINGS = ("uniform", "residual")
"""How interior collocation points are drawn: uniformly, or by the residual (RAD, :mod:`hol.pde.sampling`)."""


class EpochSampler(Sampler[tuple[int, int]]):
    """Yields ``(epoch, step)`` for the steps of the epoch Lightning set (:meth:`set_epoch`), reading the
    epoch when the first step is asked for: Lightning creates the first epoch's iterator before it sets the
    epoch, and a run resumed at epoch 1 drew epoch 0's points (uniform ones, where ``sampling: residual``
    draws by the residual)."""

    def __init__(self, steps: int):
        self.steps, self.epoch = steps, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for step in range(self.steps):
            yield self.epoch, step

    def __len__(self) -> int:
        return self.steps


class CollocationDraws(Dataset):
    """The training batches: item ``(epoch, step)`` is the draw of that step (of epoch 0 unless
    ``resample``), computed once and kept while the epoch lasts."""

    def __init__(self, data: PDEDataModule):
        self.data = data
        self.cache: dict[tuple[int, int], dict[str, Tensor]] = {}

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Tensor]:
        epoch, step = key
        redrawn = self.data.resample or self.data.sampling == "residual"
        key = (epoch if redrawn else 0, step)
        if key not in self.cache:
            if redrawn:  # keep only the current epoch's draws
                self.cache = {old: batch for old, batch in self.cache.items() if old[0] == key[0]}
            self.cache[key] = self.data.training_draw(*key)
        return self.cache[key]

    def __len__(self) -> int:
        return self.data.steps_per_epoch


class PDEDataModule(_DataModule):
    """Collocation points of ``equation`` (module docstring).

    Args:
        equation: the equation (an :class:`hol.pde.Equation`; Hydra builds it from the ``pde`` config).
        interior, boundary, initial: points per training batch in the domain, on its boundary and at the
            initial time (``initial`` is ignored by equations without time).
        resample: draw new training points every epoch.
        sampling: ``uniform`` or ``residual`` (RAD: new interior points every epoch after the first, drawn
            by the residual of the network; boundary and initial points as ``resample`` says).
        candidates: uniform points among which a residual-based draw chooses (``>= interior``).
        density_exponent, density_constant: RAD's ``k`` and ``c`` (Wu et al. 2023 recommend 1 and 1).
        steps_per_epoch: training batches per epoch (an optimizer step each).
        val_grid, test_grid: grid points per coordinate (time last) for the error metrics and the figures.
        seed: seed of the draws; dtype: ``float32`` or ``float64`` (``None``: float32).

    Raises:
        ValueError: no equation (``pde`` unset), or a bad count, grid or sampling option, naming the option.
    """

    task = "pde"

    def __init__(self, equation: Equation | None = None, interior: int = 10000, boundary: int = 800,
                 initial: int = 800, resample: bool = False, sampling: str = "uniform",
                 candidates: int = 100_000, density_exponent: float = 1.0, density_constant: float = 1.0,
                 steps_per_epoch: int = 1,
                 val_grid: Sequence[int] | None = None, test_grid: Sequence[int] | None = None,
                 seed: int | None = 0, dtype: str | None = None):
        super().__init__(None, 0, seed)
        if not isinstance(equation, Equation):
            raise ValueError("data=pde needs an equation: choose pde=poisson, pde=burgers or pde=euler (or "
                             f"an experiment such as experiment=poisson), got {equation!r}")
        self.equation = equation
        self.dtype = DTYPES[check_choice("data.dtype", dtype or "float32", DTYPES)]
        counts = {"interior": interior, "boundary": boundary, "initial": initial}
        self.counts = {name: check_int(f"data.{name}", count, 1) for name, count in counts.items()}
        self.resample = check_bool("data.resample", resample)
        self.sampling = check_choice("data.sampling", sampling, SAMPLINGS)
        self.candidates = check_int("data.candidates", candidates, self.counts["interior"],
                                    why=" (data.interior or more)")
        self.density = {"exponent": check_number("data.density_exponent", density_exponent, 0),
                        "constant": check_number("data.density_constant", density_constant, 0)}
        self.model: Model | None = None
        """The network as a function of the equation's coordinates, for residual-based draws (set by the
        task when fitting starts; the draw evaluates it in the dtype and on the device of its parameters)."""
        self.steps_per_epoch = check_int("data.steps_per_epoch", steps_per_epoch, 1)
        dims = len(equation.coordinates)
        default_grid = (1001, 101) if equation.time_dependent else (101,) * dims
        self.grids = {"test": check_ints("data.test_grid", test_grid or default_grid, dims, 2)}
        quarter = [max(2, size // 4) for size in default_grid]
        self.grids["val"] = check_ints("data.val_grid", val_grid or quarter, dims, 2)
        self.in_features, self.input_shape = dims, (dims,)
        self.references: dict[str, tuple[Tensor, Tensor | None]] = {}

    @property
    def out_features(self) -> int:
        return len(self.equation.fields)

    @property
    def task_options(self) -> dict:
        return {"equation": self.equation.hparams()}

    def draw(self, stream: int) -> dict[str, Tensor]:
        """Collocation points and condition data from the generator seeded by ``(seed, stream)``."""
        generator = torch.Generator().manual_seed(self.seed * 1000 + stream)
        return self.equation.sample(self.counts["interior"], self.counts["boundary"], self.counts["initial"],
                                    generator, self.dtype)

    def training_draw(self, epoch: int, step: int) -> dict[str, Tensor]:
        """The training batch of ``(epoch, step)``: :meth:`draw` of its stream (of epoch 0 unless
        ``resample``), and with ``sampling: residual`` after the first epoch, interior points drawn by the
        residual of :attr:`model`.

        Raises:
            ValueError: residual-based sampling without a model (nothing handed one over).
        """
        streams = epoch * self.steps_per_epoch + step
        batch = self.draw(3 + (streams if self.resample else step))
        if self.sampling == "residual" and epoch > 0:
            if self.model is None:
                raise ValueError("data.sampling=residual needs the network (PDEDataModule.model), and none "
                                 "was handed over")
            generator = torch.Generator().manual_seed(self.seed * 1000 + 3 + streams)
            model = self.model
            reference = next(model.parameters(), None) if isinstance(model, torch.nn.Module) else None
            batch["interior"] = residual_sample(
                self.equation, model, self.counts["interior"], generator, self.candidates,
                dtype=self.dtype if reference is None else reference.dtype,
                device=None if reference is None else reference.device, **self.density).to(self.dtype)
        return batch

    def grid(self, split: str) -> tuple[Tensor, Tensor | None]:
        """The ``val`` or ``test`` grid ``[N, d]`` and the reference there ``[N, F]`` (``None`` without one),
        float64; computed once (a Cole–Hopf or Riemann reference on a large grid takes seconds)."""
        if split not in self.references:
            points = self.equation.grid(self.grids[split])
            self.references[split] = points, self.equation.exact(points)
        return self.references[split]

    def evaluation_batch(self, split: str, stream: int) -> dict[str, Tensor]:
        """A validation or test batch: collocation points and, where the equation has a reference, the grid
        with the reference values and which grid points lie at the final time."""
        batch = self.draw(stream)
        points, exact = self.grid(split)
        if exact is not None:
            batch.update(grid=points.to(self.dtype), grid_values=exact.to(self.dtype),
                         grid_final=points[:, -1] == points[:, -1].max())
        return batch

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None:
            self.train_set = CollocationDraws(self)
            self.val_set = cast(Dataset, [self.evaluation_batch("val", 1)])  # one batch, a mapping
            self.test_set = cast(Dataset, [self.evaluation_batch("test", 2)])

    def _uncollated_loader(self, split: str, sampler: Sampler | None = None) -> DataLoader:
        """The loader of ``split``'s batches as they are (mappings; no collation)."""
        self.setup()
        return DataLoader(cast(Dataset, getattr(self, f"{split}_set")), batch_size=None, sampler=sampler)

    def train_dataloader(self) -> DataLoader:
        return self._uncollated_loader("train", EpochSampler(self.steps_per_epoch))

    def val_dataloader(self) -> DataLoader:
        return self._uncollated_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._uncollated_loader("test")
