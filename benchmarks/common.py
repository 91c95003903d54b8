"""Shared timing helpers for the benchmarks: interleaved rounds, medians, plain-text tables.

Interleaving (every case once per round, in a rotating order) spreads slow drifts of the machine (other
processes, clock changes, thermal limits) over all cases alike, and the median ignores the odd outlier, so
ratios between cases measured in one process are meaningful even on a busy machine.
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn


def synchronize(device: torch.device | str | None) -> None:
    """Wait for queued kernels on ``device`` (a no-op on the CPU)."""
    device = torch.device(device or "cpu")
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved_medians(cases: Mapping[str, Callable[[], object]], rounds: int = 7, warmup: int = 1,
                        device: torch.device | str | None = None) -> dict[str, float]:
    """Median wall time in seconds of each case's call.

    Runs ``warmup`` untimed rounds, then ``rounds`` timed rounds; in round ``r`` the cases run once each,
    starting at case ``r mod len(cases)`` so that no case is always first or always after the same one.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    names = list(cases)
    for _ in range(warmup):
        for name in names:
            cases[name]()
    synchronize(device)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            cases[name]()
            synchronize(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def forward_backward(module: nn.Module, *inputs: torch.Tensor) -> Callable[[], None]:
    """A closure running one forward and backward pass of ``module`` (gradients of the parameters and of the
    inputs that require them), clearing the parameter gradients first so nothing accumulates."""

    def step() -> None:
        module.zero_grad(set_to_none=True)
        module(*inputs).sum().backward()

    return step


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A right-aligned plain-text table (floats with 3 decimals)."""
    cells = [[f"{c:.3f}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(row[j]) for row in cells)) for j, h in enumerate(headers)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def report(name: str | None, title: str, columns: Sequence[str], rows: Sequence[Sequence[object]],
           description: str, device: torch.device | str = "cpu") -> None:
    """Print ``description`` and the table; with a result ``name`` (``--record NAME``) also write it as
    ``benchmarks/results/NAME.json`` (:func:`results.record`), ``"-"`` cells as empty."""
    from results import record

    print(description)
    print(format_table(columns, rows))
    if name:
        record(name, title, columns, [[None if cell == "-" else cell for cell in row] for row in rows],
               description + ".", device=str(device))


def layer_arguments(description: str, *, segments: Sequence[int] | None,
                    rounds: int) -> argparse.ArgumentParser:
    """A parser with the options every fully connected benchmark takes: the layer's shape (``--batch``,
    ``--features`` I = O, ``--n``, ``--segments`` S as a comma-separated list), ``--rounds``, ``--threads``,
    ``--device`` and ``--record NAME``; ``segments`` and ``rounds`` are the script's defaults
    (``segments=None``: no ``--segments`` option, for a script whose cases name their own S)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--rounds", type=int, default=rounds,
                        help="timed interleaved rounds (median is reported)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--features", type=int, default=256, help="I = O")
    parser.add_argument("--n", type=int, default=5)
    if segments is not None:
        parser.add_argument("--segments", type=lambda text: [int(value) for value in text.split(",")],
                            default=list(segments))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--record", metavar="NAME", help="write the table to benchmarks/results/NAME.json")
    return parser
