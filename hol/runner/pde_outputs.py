"""What a physics-informed run leaves for people and programs: ``solution.npz`` and the solution figures.

``solution.npz`` (numpy's archive, written atomically) holds ``points [N, d]`` (the test grid in the
equation's own coordinates, time last), ``fields [N, F]`` (the network's fields there, in the equation's
order, e.g. ``rho, u, p``), ``names [F]`` and, where the equation has a reference, ``exact [N, F]``.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from torch import Tensor

from ..pde import Equation

SOLUTION_FILE = "solution.npz"


def write_solution(folder: Path, equation: Equation, points: Tensor, fields: Tensor,
                   exact: Tensor | None) -> Path:
    """Write ``solution.npz`` (module docstring) into ``folder``; returns its path. ``points [N, d]``,
    ``fields [N, F]`` and the reference ``exact [N, F]`` (``None``: none) are float64 on the CPU."""
    arrays = {"points": points.numpy(), "fields": fields.numpy(), "names": np.array(equation.fields)}
    if exact is not None:
        arrays["exact"] = exact.numpy()
    path = Path(folder) / SOLUTION_FILE
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".solution-", suffix=".npz")
    try:
        with os.fdopen(handle, "wb") as file:
            np.savez(file, allow_pickle=False, **arrays)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def solution_figures(equation: Equation, points: Tensor, fields: Tensor, exact: Tensor | None
                     ) -> dict[str, Figure]:
    """TensorBoard figures of a solution on a grid (``points [N, 2]`` of :meth:`hol.pde.Equation.grid`,
    ``fields`` and ``exact`` ``[N, F]``, float64): per field an image of the network's field, the reference
    and their difference (``pde/<field>``), and for time-dependent equations the fields at the final time
    against the reference (``pde/final``)."""
    axes_values = [np.unique(points[:, j].numpy()) for j in range(points.shape[1])]
    shape = tuple(len(values) for values in reversed(axes_values))
    extent = (*axes_values[0][[0, -1]], *axes_values[1][[0, -1]])
    figures = {}
    for index, name in enumerate(equation.fields):
        images = {name: fields[:, index]}
        if exact is not None:
            images["reference"] = exact[:, index]
            images["error"] = fields[:, index] - exact[:, index]
        figure = Figure(figsize=(3.8 * len(images), 3.2), layout="constrained")
        for column, (title, values) in enumerate(images.items()):
            axes = figure.add_subplot(1, len(images), column + 1)
            shown = axes.imshow(values.numpy().reshape(shape), origin="lower", extent=extent, aspect="auto",
                                cmap="viridis")
            axes.set_title(title)
            axes.set_xlabel(equation.coordinates[0])
            axes.set_ylabel(equation.coordinates[1])
            figure.colorbar(shown, ax=axes)
        figures[f"pde/{name}"] = figure
    if equation.time_dependent:
        figures["pde/final"] = final_time_figure(equation, points, fields, exact)
    return figures


def final_time_figure(equation: Equation, points: Tensor, fields: Tensor, exact: Tensor | None) -> Figure:
    """The fields at the final time (the grid's last time) against the reference, one panel per field."""
    final = points[:, -1] == points[:, -1].max()
    x = points[final, 0].numpy()
    figure = Figure(figsize=(3.8 * len(equation.fields), 3.2), layout="constrained")
    for index, name in enumerate(equation.fields):
        axes = figure.add_subplot(1, len(equation.fields), index + 1)
        if exact is not None:
            axes.plot(x, exact[final, index].numpy(), "k-", label="exact")
        axes.plot(x, fields[final, index].numpy(), "r--", label="network")
        axes.set_title(f"{name} at t = {float(points[final, -1][0]):.3g}")
        axes.set_xlabel(equation.coordinates[0])
        axes.legend()
    return figure
