"""TensorBoard figures: target vs learned function, and learned link functions (matplotlib, no display).

* :func:`function_figure`: for 1-D data a line plot of target and network; for more inputs the target, the
  network and their difference as images over the first two (the others at their midpoints).
* :func:`links_figure`: every link ``f_oi`` of one fully connected hol layer over the domain of its input
  (``[-L/2, L/2]`` unless adapted), one panel per output ``o`` with one curve per input ``i``.

:class:`PlotCallback` logs both to TensorBoard every few validation epochs and at the end of fitting.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import lightning.pytorch as pl
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from matplotlib.figure import Figure
from torch import nn

from ..checks import check_int
from ..layers import HighOrderLinear
from .data import trainer_datamodule


@torch.no_grad()
def function_figure(net: nn.Module, target, intervals: Sequence[tuple[float, float]],
                    names: Sequence[str] = ("x", "y"), points: int = 200) -> Figure:
    """Target ``target(points [N, d]) -> [N]`` against ``net`` on the box ``intervals`` (one ``(low, high)``
    per input, named ``names``): a line plot for one input; for more, images of target, network and their
    difference over the first two inputs, the others fixed at their intervals' midpoints (named in the
    title)."""
    dims = len(intervals)
    parameter = next(net.parameters())  # the network's device and dtype (bfloat16 under precision=bf16-true)
    if dims == 1:
        grid = torch.linspace(*intervals[0], points, dtype=torch.float64)
        inputs = grid.unsqueeze(-1)
        learned = net(inputs.to(parameter)).squeeze(-1).double().cpu()
        figure = Figure(figsize=(5, 3.5), layout="constrained")
        axes = figure.add_subplot()
        axes.plot(grid, target(inputs), "k-", label="target")
        axes.plot(grid, learned, "r--", label="learned")
        axes.set_xlabel(names[0])
        axes.legend()
        return figure
    side = min(points, 100)
    axes_values = [torch.linspace(*interval, side, dtype=torch.float64) for interval in intervals[:2]]
    x, y = torch.meshgrid(*axes_values, indexing="xy")
    fixed = [sum(interval) / 2 for interval in intervals[2:]]
    inputs = torch.stack((x.flatten(), y.flatten(), *(torch.full((x.numel(),), value) for value in fixed)),
                         dim=-1)
    images = {"target": target(inputs).reshape(x.shape)}
    images["learned"] = net(inputs.to(parameter)).squeeze(-1).double().cpu().reshape(x.shape)
    images["learned - target"] = images["learned"] - images["target"]
    figure = Figure(figsize=(11, 3.5), layout="constrained")
    if fixed:
        figure.suptitle(", ".join(f"{name} = {value:.4g}"
                                  for name, value in zip(names[2:], fixed, strict=True)))
    for index, (title, image) in enumerate(images.items()):
        axes = figure.add_subplot(1, 3, index + 1)
        shown = axes.imshow(image, origin="lower", extent=(*intervals[0], *intervals[1]), cmap="viridis",
                            aspect="auto")
        axes.set_title(title)
        axes.set_xlabel(names[0])
        axes.set_ylabel(names[1])
        figure.colorbar(shown, ax=axes)
    return figure


@torch.no_grad()
def links_figure(layer: HighOrderLinear, points: int = 200) -> Figure:
    """Every link ``f_oi(x)`` of ``layer`` for ``x`` in the domain of input ``i`` (``[-L/2, L/2]`` for layers
    without per-input domains): panel ``o``, curve ``i``."""
    t = torch.linspace(-0.5, 0.5, points, device=layer.weight.device, dtype=layer.weight.dtype)[:, None]
    centre, width = getattr(layer, "domain_centre", None), getattr(layer, "domain_width", None)
    x = t * layer.length if centre is None or width is None else centre + t * width  # [P, I] (or [P, 1])
    x = x.expand(-1, layer.in_features)
    values = layer.links(x).float().cpu()  # [P, O, I]
    columns = min(layer.out_features, 4)
    rows = -(-layer.out_features // columns)
    figure = Figure(figsize=(3 * columns, 2.4 * rows), layout="constrained")
    for o in range(layer.out_features):
        axes = figure.add_subplot(rows, columns, o + 1)
        axes.plot(x.float().cpu(), values[:, o, :])  # column i against column i; float32, not bfloat16
        axes.set_title(f"output {o}", fontsize=9)
    return figure


@torch.no_grad()
def symbolic_links_figure(layer: HighOrderLinear, fits: Mapping[tuple[int, int], Any], inputs: torch.Tensor,
                          points: int = 200) -> Figure:
    """Each fitted link ``f_oi`` of ``layer`` (solid) and its symbolic fit (dashed; a
    :class:`hol.symbolic.LinkFit`, its function and R² in the panel's title), over the range of input ``i`` in
    ``inputs`` ``[N, I]``: one panel per link of ``fits`` (keyed ``(output, input)``)."""
    low, high = inputs.double().amin(0).cpu(), inputs.double().amax(0).cpu()
    x = low + torch.linspace(0, 1, points, dtype=torch.float64)[:, None] * (high - low)  # [P, I]
    values = layer.links(x.to(layer.weight)).double().cpu()  # [P, O, I]
    columns = min(len(fits), 4)
    rows = -(-len(fits) // columns)
    figure = Figure(figsize=(3 * columns, 2.4 * rows), layout="constrained")
    for panel, ((o, i), fit) in enumerate(sorted(fits.items())):
        axes = figure.add_subplot(rows, columns, panel + 1)
        axes.plot(x[:, i], values[:, o, i], "k-")
        axes.plot(x[:, i], fit(x[:, i]), "r--")
        axes.set_title(f"({o}, {i}): {fit.name}, R² = {fit.r2:.6g}", fontsize=8)
    return figure


def plottable_layers(net: nn.Module, max_links: int) -> list[tuple[str, HighOrderLinear]]:
    """Fully connected hol layers with scalar links and at most ``max_links`` links."""
    return [(name, module) for name, module in net.named_modules()
            if isinstance(module, HighOrderLinear) and getattr(module.basis, "dims", None) is None
            and module.in_features * module.out_features <= max_links]


class PlotCallback(pl.Callback):
    """Log :func:`function_figure` (data with a ``target`` and ``intervals``) and :func:`links_figure`
    (small layers) to TensorBoard every ``every_n_epochs`` validation epochs and when fitting ends."""

    def __init__(self, every_n_epochs: int = 5, max_links: int = 64, points: int = 200):
        self.every_n_epochs = check_int("every_n_epochs", every_n_epochs, 1)
        self.every_n_epochs, self.max_links, self.points = every_n_epochs, max_links, points

    def on_validation_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if not trainer.sanity_checking and (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self.log_figures(trainer, module)

    def on_fit_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.log_figures(trainer, module)

    def log_figures(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        writers = [logger.experiment for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)]
        if not writers or not trainer.is_global_zero:
            return
        figures = {}
        data: Any = trainer_datamodule(trainer)  # any datamodule: what it offers is checked below
        net = cast(nn.Module, module.net)  # the runner's HolModule's network
        was_training = net.training
        net.eval()
        if hasattr(data, "target") and getattr(data, "intervals", None):
            figures["plots/function"] = function_figure(net, data.target, data.intervals, data.names,
                                                        self.points)
        for name, layer in plottable_layers(net, self.max_links):
            figures[f"plots/links/{name}"] = links_figure(layer, self.points)
        net.train(was_training)
        for tag, figure in figures.items():
            for writer in writers:
                writer.add_figure(tag, figure, global_step=trainer.global_step, close=False)
