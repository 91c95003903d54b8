"""The runner's tasks: what a run minimizes, measures and logs, one small class per task.

:class:`~hol.runner.lightning_module.HolModule` delegates everything task-specific to its task (an
``nn.Module`` holding the metrics, so they follow the module's device):

* :meth:`Task.split`: a batch into ``(inputs, target)``;
* :meth:`Task.loss`: the training objective ``(output, target) -> scalar``; :meth:`Task.step` computes it for
  a batch (what the module trains on and the refinement stages compare);
* :meth:`Task.update` and :meth:`Task.compute`: the metrics of each stage, logged per epoch as
  ``<stage>/<name>`` (``loss`` always); :attr:`Task.best`: the metrics whose best validation value so far is
  logged as ``val/<name>_best``;
* :meth:`Task.log_images`: TensorBoard images after each validation epoch and the test.

The tasks (:data:`TASKS`):

* ``classification``: cross entropy; ``loss``, ``acc``.
* ``regression``: mean squared error; ``loss``, ``rmse``.
* ``image_regression`` (``data=image``, an implicit representation): regression of pixel values on pixel
  coordinates; also ``psnr`` (dB, peak = the width of the value range), at the test ``bpp`` (the model's
  size in bits per pixel: coefficients x bits per coefficient / pixels), and the image the network renders.
* ``generative`` (``model=vae``): the VAE objective ``reconstruction + beta * KL``, ``beta`` ramped up
  linearly from 0 over the first ``kl_warmup_epochs`` epochs; logged: ``loss`` (the negative ELBO per image in
  nats, i.e. with ``beta = 1``, whatever the objective's ``beta``), ``recon`` and ``kl``; images: test images
  over their reconstructions, and samples from the prior.
* ``pde`` (``data=pde``): physics-informed training on an equation of :mod:`hol.pde` (the batches are its
  collocation points, :class:`hol.runner.pde_data.PDEDataModule`); logged: ``loss`` and its terms
  ``residual``, ``boundary``, ``initial``, ``breaks``; against the reference on the validation and test grids
  ``mse`` and ``rel_l2`` (per field ``mse/<field>``, ``rel_l2/<field>`` where there are several), and for
  time-dependent equations ``l1/<field>`` at the final time; images of the solution, the reference and the
  error; ``solution.npz`` in the run folder (:func:`hol.runner.pde_outputs.write_solution`).

:func:`choose_task` picks the task: a generative network makes the generative task, else the data's own task.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, cast

import torch
from lightning.pytorch.loggers import TensorBoardLogger
from torch import Tensor, nn
from torchmetrics import MeanMetric, MeanSquaredError, Metric
from torchmetrics.classification import MulticlassAccuracy
from torchvision.utils import make_grid

from ..checks import check_choice, check_int, check_interval, check_number
from ..pde import Solution, make_equation
from ..vae import VAE
from .pde_outputs import solution_figures, write_solution

STAGES = ("train", "val", "test")
IMAGE_TAGS = {"reconstruction": "images/reconstruction", "reconstructions": "images/reconstructions",
              "samples": "images/samples"}
"""TensorBoard tags of the tasks' images: the implicit image's rendering, the VAE's reconstructions and
samples."""


class Task(nn.Module):
    """A task: its loss, its metrics per stage and what it logs (module docstring). Subclasses define
    :meth:`metrics`, :meth:`loss` and :meth:`update`, and may override the rest."""

    name: ClassVar[str]
    best: ClassVar[dict[str, str]] = {"loss": "min"}
    """Metric name -> ``"min"`` or ``"max"``: the validation values whose best so far is logged (where the
    epoch has the value)."""
    differentiates_inputs: ClassVar[bool] = False
    """The loss differentiates the network in its inputs, also in validation and test (then these run with
    autograd available, not in inference mode)."""

    def __init__(self):
        super().__init__()
        for stage in STAGES:  # train_metrics, val_metrics, test_metrics ("train" is nn.Module's method)
            setattr(self, f"{stage}_metrics", nn.ModuleDict(self.metrics()))

    def stage_metrics(self, stage: str) -> nn.ModuleDict:
        """The metrics of ``stage`` (one of :data:`STAGES`), by name."""
        return getattr(self, f"{stage}_metrics")

    def metric(self, stage: str, name: str) -> Metric:
        """``stage``'s metric ``name`` (typed: an ``nn.ModuleDict`` hands out plain modules)."""
        return cast(Metric, self.stage_metrics(stage)[name])

    def metrics(self) -> dict[str, Metric]:
        """Fresh metrics of one stage, by name (``loss`` first)."""
        raise NotImplementedError

    def split(self, batch) -> tuple[Tensor, Tensor]:
        """``(inputs, target)`` of a batch; by default the batch is that pair."""
        inputs, target = batch
        return inputs, target

    def step(self, module: Callable[[Tensor], Any], batch, stage: str | None = None) -> Tensor:
        """The loss of a batch (:meth:`loss` of ``module``'s output, ``module`` being the LightningModule or
        anything that calls the network as it does); with a ``stage``, the batch is also added to that
        stage's metrics (:meth:`update`)."""
        inputs, target = self.split(batch)
        output = module(inputs)
        loss = self.loss(output, target)
        if stage is not None:
            self.update(stage, output, target, loss.detach())
        return loss

    def size(self, batch) -> int:
        """The number of samples in a batch (the weight of its loss in an average over batches)."""
        return len(self.split(batch)[1])

    def network_inputs(self, batch) -> Tensor:
        """The inputs the network gets for a batch (before any flattening): what
        :func:`hol.adapt_domains` adapts the first layer's domains to."""
        return self.split(batch)[0]

    def loss(self, output, target: Tensor) -> Tensor:
        """The training objective, a batch mean."""
        raise NotImplementedError

    def update(self, stage: str, output, target: Tensor, loss: Tensor) -> None:
        """Add a batch (its ``output`` and the detached ``loss``) to ``stage``'s metrics."""
        raise NotImplementedError

    def compute(self, stage: str, net: nn.Module) -> dict[str, Tensor]:
        """The epoch's values of ``stage``'s metrics (which are then reset); ``net`` is the trained network,
        for values of the model itself (its size)."""
        values = {}
        for name in self.stage_metrics(stage):
            metric = self.metric(stage, name)
            values[name] = metric.compute()
            metric.reset()
        return values

    def set_progress(self, epochs: float) -> None:
        """Called before every training batch with the epochs done so far (fractional)."""

    def start_epoch(self, module, datamodule) -> None:
        """Called as every training epoch starts, before its batches are drawn (``datamodule``: the
        trainer's, or ``None``)."""

    def log_images(self, stage: str, module) -> None:
        """Log images to the module's TensorBoard loggers after a validation epoch or the test."""

    def write_outputs(self, module, datamodule, folder: Path) -> None:
        """Write the files a finished run leaves beside ``metrics.json`` in its run ``folder`` (none by
        default)."""


def image_destinations(module) -> tuple[list, Any]:
    """The TensorBoard writers of a LightningModule (:func:`tensorboard_writers`) and its trainer's
    datamodule, the two things an image of the data needs; no writers where the datamodule is missing."""
    data = module.trainer.datamodule
    return (tensorboard_writers(module) if data is not None else []), data


def model_inputs(module, data: Tensor) -> Tensor:
    """``data`` as the running network takes its batches: on the module's device and, under a true precision
    (``trainer.precision=64-true``, ``bf16-true``, ...), in its dtype, by the trainer's precision plugin (what
    Lightning does to every batch before the steps; images logged outside them need the same)."""
    return module.trainer.precision_plugin.convert_input(data.to(module.device))


def tensorboard_writers(module) -> list:
    """The ``SummaryWriter`` of every TensorBoard logger of a LightningModule (on the global-zero process)."""
    if not module.trainer.is_global_zero:
        return []
    return [logger.experiment for logger in module.loggers if isinstance(logger, TensorBoardLogger)]


class Classification(Task):
    """Cross entropy on logits ``[B, num_classes]``; ``loss`` and ``acc``, best ``loss`` and ``acc``."""

    name = "classification"
    best: ClassVar[dict[str, str]] = {"loss": "min", "acc": "max"}

    def __init__(self, num_classes: int):
        self.num_classes = check_int("num_classes", num_classes, 2)
        super().__init__()

    def metrics(self) -> dict[str, Metric]:
        return {"loss": MeanMetric(),
                "acc": MulticlassAccuracy(num_classes=self.num_classes, average="micro")}

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        return nn.functional.cross_entropy(output, target)

    def update(self, stage: str, output: Tensor, target: Tensor, loss: Tensor) -> None:
        self.metric(stage, "loss").update(loss, weight=len(target))
        self.metric(stage, "acc").update(output.argmax(dim=-1), target)


class Regression(Task):
    """Mean squared error; ``loss`` and ``rmse``, best ``loss`` and ``rmse``."""

    name = "regression"
    best: ClassVar[dict[str, str]] = {"loss": "min", "rmse": "min"}

    def metrics(self) -> dict[str, Metric]:
        return {"loss": MeanMetric(), "rmse": MeanSquaredError(squared=False)}

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        return nn.functional.mse_loss(output, target)

    def update(self, stage: str, output: Tensor, target: Tensor, loss: Tensor) -> None:
        self.metric(stage, "loss").update(loss, weight=len(target))
        self.metric(stage, "rmse").update(output.detach(), target)


def psnr(rmse: Tensor | float, peak: float) -> Tensor:
    """Peak signal-to-noise ratio ``20 log10(peak / rmse)`` in dB."""
    return 20 * torch.log10(peak / torch.as_tensor(rmse, dtype=torch.float64))


def bits(net: nn.Module) -> int:
    """The size of ``net``'s parameters in bits (each coefficient at its dtype's width)."""
    return sum(parameter.numel() * parameter.element_size() * 8 for parameter in net.parameters())


class ImageRegression(Regression):
    """Regression of pixel values on pixel coordinates (an implicit image): also ``psnr`` in dB (peak: the
    width of ``value_range``), at the test ``bpp`` (:func:`bits` / ``pixels``), and the rendered image.

    Args:
        value_range: the range the pixel intensities ``[0, 1]`` were mapped onto.
        pixels: pixels of the image (``H W``).
    """

    name = "image_regression"
    best: ClassVar[dict[str, str]] = {"loss": "min", "psnr": "max"}

    def __init__(self, value_range: tuple[float, float] = (-1.0, 1.0), pixels: int = 1):
        super().__init__()
        self.value_range = check_interval("value_range", value_range)
        self.pixels = check_int("pixels", pixels, 1)

    def compute(self, stage: str, net: nn.Module) -> dict[str, Tensor]:
        values = super().compute(stage, net)
        low, high = self.value_range
        values["psnr"] = psnr(values["rmse"], high - low).float()
        if stage == "test":
            values["bpp"] = torch.tensor(bits(net) / self.pixels)
        return values

    @torch.no_grad()
    def log_images(self, stage: str, module) -> None:
        writers, data = image_destinations(module)
        if not writers:
            return
        low, high = self.value_range
        coordinates = data.coordinates()
        values = torch.cat([module(model_inputs(module, chunk)).float().cpu()
                            for chunk in coordinates.split(data.batch_size or len(coordinates))])
        image = ((data.to_image(values) - low) / (high - low)).clamp(0, 1)
        for writer in writers:
            writer.add_image(IMAGE_TAGS["reconstruction"], image, global_step=module.global_step)


class Generative(Task):
    """The VAE objective on images (module docstring); the targets are the input images' intensities in
    ``[0, 1]``, computed from the inputs and the data's ``input_range``.

    Args:
        input_range: the range the data mapped the intensities ``[0, 1]`` onto.
        beta: weight of the KL term in the objective.
        kl_warmup_epochs: epochs over which the KL weight rises linearly from 0 to ``beta`` (0: none).
        images: how many test images and samples are shown.
    """

    name = "generative"

    def __init__(self, input_range: tuple[float, float] = (-1.0, 1.0), beta: float = 1.0,
                 kl_warmup_epochs: float = 0, images: int = 8):
        super().__init__()
        self.input_range = check_interval("input_range", input_range)
        self.beta = check_number("beta", beta, 0)
        self.kl_warmup_epochs = check_number("kl_warmup_epochs", kl_warmup_epochs, 0)
        self.images = check_int("images", images, 1)
        self.kl_weight = self.beta if self.kl_warmup_epochs == 0 else 0.0

    def metrics(self) -> dict[str, Metric]:
        return {"loss": MeanMetric(), "recon": MeanMetric(), "kl": MeanMetric()}

    def split(self, batch) -> tuple[Tensor, Tensor]:
        inputs = batch[0]
        low, high = self.input_range
        return inputs, ((inputs - low) / (high - low)).clamp(0, 1)

    def set_progress(self, epochs: float) -> None:
        warmup = self.kl_warmup_epochs
        self.kl_weight = self.beta * (min(1.0, epochs / warmup) if warmup else 1.0)

    def loss(self, output, target: Tensor) -> Tensor:
        return (output.reconstruction(target) + self.kl_weight * output.kl()).mean()

    def update(self, stage: str, output, target: Tensor, loss: Tensor) -> None:
        reconstruction, kl = output.reconstruction(target).detach(), output.kl().detach()
        self.metric(stage, "loss").update(reconstruction + kl)
        self.metric(stage, "recon").update(reconstruction)
        self.metric(stage, "kl").update(kl)

    @torch.no_grad()
    def log_images(self, stage: str, module) -> None:
        writers = tensorboard_writers(module)
        test_set = getattr(module.trainer.datamodule, "test_set", None)
        if not writers or not test_set:
            return
        count = min(self.images, len(test_set))
        images = torch.stack([test_set[i][0] for i in range(count)])
        inputs, targets = self.split([model_inputs(module, images)])
        reconstructions = module.net.reconstruct(inputs)
        samples = module.net.sample(self.images, torch.Generator(module.device).manual_seed(0))
        images = torch.cat([targets, reconstructions]).float()
        grids = {"reconstructions": make_grid(images.clamp(0, 1), nrow=count),
                 "samples": make_grid(samples.float().clamp(0, 1), nrow=self.images)}
        for name, grid in grids.items():
            for writer in writers:
                writer.add_image(IMAGE_TAGS[name], grid.cpu(), global_step=module.global_step)


class FieldErrors(Metric):
    """Errors of fields ``[N, F]`` against a reference: per field the sums of squared errors and of squared
    reference values, and of absolute errors where ``final`` (the final time)."""

    squared_error: Tensor
    squared_reference: Tensor
    final_error: Tensor
    count: Tensor
    final_count: Tensor

    def __init__(self, fields: int):
        super().__init__()
        for name in ("squared_error", "squared_reference", "final_error"):
            self.add_state(name, torch.zeros(fields, dtype=torch.float64), dist_reduce_fx="sum")
        for name in ("count", "final_count"):
            self.add_state(name, torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, fields: Tensor, reference: Tensor, final: Tensor) -> None:
        error = fields.double() - reference.double()
        self.squared_error += error.square().sum(0)
        self.squared_reference += reference.double().square().sum(0)
        self.final_error += error[final].abs().sum(0)
        self.count += len(error)
        self.final_count += final.sum()

    def compute(self) -> dict[str, Tensor]:
        """Per field ``mse``, ``rel_l2`` (``sqrt(sum error^2 / sum reference^2)``) and ``l1`` (the mean
        absolute error at the final time); ``rel_l2_all``, the relative L2 error of all fields together."""
        return {"mse": self.squared_error / self.count,
                "rel_l2": (self.squared_error / self.squared_reference).sqrt(),
                "l1": self.final_error / self.final_count,
                "rel_l2_all": (self.squared_error.sum() / self.squared_reference.sum()).sqrt()}


class PhysicsInformed(Task):
    """Physics-informed training on an equation of :mod:`hol.pde` (module docstring).

    The network maps the domain, as ``[-1, 1]^d`` (:class:`hol.pde.Solution`), to the fields. Training
    batches hold collocation points and condition data (:meth:`hol.pde.Equation.sample`); validation and
    test batches also a grid of points and the reference there (``grid``, ``grid_values``, ``grid_final``:
    which points lie at the final time), when the equation has one.

    Args:
        equation: the equation's hparams (:meth:`hol.pde.Equation.hparams`), rebuilt by
            :func:`hol.pde.make_equation`.
        chunk: grid points evaluated at a time.
    """

    name = "pde"
    differentiates_inputs = True
    best: ClassVar[dict[str, str]] = {"loss": "min", "rel_l2": "min"}  # rel_l2 where a reference exists

    def __init__(self, equation: dict, chunk: int = 65536):
        self.equation = make_equation(equation)
        self.chunk = check_int("chunk", chunk, 1)
        super().__init__()

    def metrics(self) -> dict[str, Metric]:
        terms: dict[str, Metric] = {term: MeanMetric() for term in ("loss", *self.equation.terms)}
        return {**terms, "errors": FieldErrors(len(self.equation.fields))}

    def solution(self, module: nn.Module) -> Solution:
        """The module's network as a function of the equation's coordinates."""
        net = getattr(module, "net", module)
        return Solution(cast(nn.Module, net), self.equation)

    def step(self, module, batch, stage: str | None = None) -> Tensor:
        solution = self.solution(module)
        terms = self.equation.losses(solution, batch)
        if stage is not None:
            for name, value in terms.items():
                self.metric(stage, name).update(value.detach())
            if "grid_values" in batch:
                self.metric(stage, "errors").update(self.evaluate(solution, batch["grid"]),
                                                    batch["grid_values"], batch["grid_final"])
        return terms["loss"]

    def size(self, batch) -> int:
        return len(batch["interior"])

    def start_epoch(self, module, datamodule) -> None:
        # residual-based collocation (data.sampling=residual) draws the epoch's points from the network as it
        # is now; handed over every epoch, since a refinement stage or a resume may have rebuilt the network
        if hasattr(datamodule, "model"):
            datamodule.model = self.solution(module)

    def network_inputs(self, batch) -> Tensor:
        return self.equation.to_unit(batch["interior"])

    @torch.no_grad()
    def evaluate(self, solution: nn.Module, points: Tensor) -> Tensor:
        """The fields at ``points`` (evaluated :attr:`chunk` points at a time). Shape ``[N, F]``."""
        return torch.cat([solution(chunk) for chunk in points.split(self.chunk)])

    def compute(self, stage: str, net: nn.Module) -> dict[str, Tensor]:
        values: dict[str, Tensor] = {}
        for name in self.stage_metrics(stage):
            metric = self.metric(stage, name)
            if metric.update_called:  # training batches have no grid
                computed = metric.compute()
                named = self._named_errors(computed) if isinstance(computed, dict) else {name: computed}
                values.update(named)
            metric.reset()
        return values

    def _named_errors(self, errors: dict[str, Tensor]) -> dict[str, Tensor]:
        fields = self.equation.fields
        errors = {name: value.reshape(-1) for name, value in errors.items()}  # torchmetrics squeezes size 1
        values = {"mse": errors["mse"].mean(), "rel_l2": errors["rel_l2_all"][0]}
        if len(fields) > 1:
            values.update({f"{name}/{field}": errors[name][index] for name in ("mse", "rel_l2")
                           for index, field in enumerate(fields)})
        if self.equation.time_dependent:
            values.update({f"l1/{field}": errors["l1"][index] for index, field in enumerate(fields)})
        return values

    @torch.no_grad()
    def log_images(self, stage: str, module) -> None:
        writers, data = image_destinations(module)
        if not writers:
            return
        points, exact = data.grid("test" if stage == "test" else "val")
        figures = solution_figures(self.equation, points, self.grid_fields(module, points), exact)
        for tag, figure in figures.items():
            for writer in writers:
                writer.add_figure(tag, figure, global_step=module.global_step, close=True)

    def write_outputs(self, module, datamodule, folder: Path) -> None:
        points, exact = datamodule.grid("test")
        write_solution(folder, self.equation, points, self.grid_fields(module, points), exact)

    def grid_fields(self, module: nn.Module, points: Tensor) -> Tensor:
        """The module's fields at float64 grid ``points`` (computed in the module's device and dtype), as
        float64 on the CPU. Shape ``[N, F]``."""
        parameter = next(module.parameters())
        fields = self.evaluate(self.solution(module), points.to(parameter.device, parameter.dtype))
        return fields.double().cpu()


TASKS: dict[str, type[Task]] = {task.name: task for task in (Classification, Regression, ImageRegression,
                                                             Generative, PhysicsInformed)}


def make_task(name: str, **options) -> Task:
    """The task ``name`` (one of :data:`TASKS`) with its options."""
    return TASKS[check_choice("task", name, TASKS)](**options)


def choose_task(net: nn.Module, datamodule, beta: float = 1.0, kl_warmup_epochs: float = 0
                ) -> tuple[str, dict[str, Any]]:
    """``(task name, options)`` for ``net`` on ``datamodule``: ``generative`` for a :class:`hol.vae.VAE` (on
    image data with an ``input_range``; ``beta`` and ``kl_warmup_epochs`` are its options), else the data's
    ``task`` with its ``task_options``."""
    if isinstance(net, VAE):
        input_range = getattr(datamodule, "input_range", None)
        if input_range is None:
            raise ValueError(f"model=vae needs image data with an input_range (e.g. data=mnist), got "
                             f"{type(datamodule).__name__}")
        return "generative", {"input_range": list(input_range), "beta": beta,
                              "kl_warmup_epochs": kl_warmup_epochs}
    return datamodule.task, dict(datamodule.task_options)
