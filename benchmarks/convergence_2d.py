"""``experiment=function_2d`` (pykan's first example, ``f(x, y) = exp(sin(pi x) + y^2)`` with a ``[2, 1, 1]``
network) over several seeds: test RMSE at the end of every stage of its refinement ladder against the number
of coefficients, median and worst over the seeds, next to pykan's published numbers.

Each seed is ``hol train experiment=function_2d seed=SEED`` in its own process with one thread
(``OMP_NUM_THREADS=1``), one after the other; the seed draws the network's initialization and the 1000
training and 1000 test points. The figures are ``stage<k>/test/rmse`` and ``stage<k>/parameters`` of each
run's ``metrics.json``. pykan's numbers are those its documentation publishes for the same example (grid
``G`` refined 3 -> 10 -> 20 -> 50 -> 100, cubic B-splines: ``G + 3`` coefficients per link, three links).

Usage::

    python benchmarks/convergence_2d.py [--seeds 0 1 2 3 4] [--record convergence_2d] [-- OVERRIDE ...]

Overrides after ``--`` are passed to every run (e.g. another ``data.expr``). With ``--record NAME`` the table
is written to ``benchmarks/results/NAME.json`` (see ``results.py``).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import results  # a sibling script, run as a file
import torch
from omegaconf import OmegaConf

from hol.runner.stages import parse_stages

ROOT = Path(__file__).resolve().parents[1]
PYKAN = [(3, 1.53e-2), (10, 3.29e-4), (20, 4.04e-5), (50, 1.24e-5), (100, 1.74e-3)]
"""pykan's published test RMSE of this example per grid size (its README / "Hello, KAN" example)."""


def run(seed: int, overrides: list[str], folder: Path) -> tuple[dict, float]:
    """One seed through the ``hol`` command: its ``metrics.json`` and wall time."""
    command = [str(Path(sys.executable).with_name("hol")), "train", "experiment=function_2d", f"seed={seed}",
               *overrides, f"hydra.run.dir={folder}", "callbacks.rich_progress_bar=null",
               "+trainer.enable_progress_bar=false"]
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, capture_output=True,
                   env={**os.environ, "OMP_NUM_THREADS": "1"})
    return json.loads((folder / "metrics.json").read_text()), time.perf_counter() - start


def ladder() -> list[str]:
    """``n=.. S=..`` of each stage of the preset's ladder."""
    preset = OmegaConf.load(ROOT / "conf" / "experiment" / "function_2d.yaml")
    described, n, segments = [], None, None
    for stage in parse_stages(preset.refine):
        n, segments = stage.n or n, stage.segments or segments
        described.append(f"n={n} S={segments}" + (", adapt" if stage.adapt else ""))
    return described


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--record", metavar="NAME", help="write benchmarks/results/NAME.json")
    parser.add_argument("overrides", nargs="*", help="overrides of every run (after --)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as in the runs (OMP_NUM_THREADS=1), which the recorded machine line states
    folder = Path(tempfile.mkdtemp(prefix="hol-convergence-2d-"))
    runs, seconds = [], []
    try:
        for seed in args.seeds:
            metrics, wall = run(seed, args.overrides, folder / str(seed))
            runs.append(metrics)
            seconds.append(wall)
            print(f"seed {seed}: " + ", ".join(f"{key} {value:.3g}" for key, value in sorted(metrics.items())
                                             if key.endswith("/test/rmse")) + f" ({wall:.0f} s)", flush=True)
    finally:
        shutil.rmtree(folder)
    rows = []
    for k, stage in enumerate(ladder()):
        errors = [metrics[f"stage{k}/test/rmse"] for metrics in runs]
        coefficients = {int(metrics[f"stage{k}/parameters"]) for metrics in runs}
        grid, published = PYKAN[k] if k < len(PYKAN) else (None, None)
        rows.append([k, stage, "/".join(map(str, sorted(coefficients))), statistics.median(errors),
                     max(errors), grid, None if grid is None else 3 * (grid + 3), published])
        print(" | ".join(map(str, rows[-1])), flush=True)
    columns = ["stage", "hol ladder", "hol coefficients", "hol test RMSE (median)", "hol test RMSE (worst)",
               "pykan grid", "pykan coefficients", "pykan test RMSE"]
    if args.record:
        notes = (f"hol: {len(args.seeds)} seeds ({', '.join(map(str, args.seeds))}), each run by the `hol` "
                 f"command with one thread, median wall time {statistics.median(seconds):.0f} s per run "
                 "(the whole ladder, start-up and tests included). pykan: its published numbers for the same "
                 "example (one run), coefficients = 3 links x (G + 3) B-spline coefficients.")
        results.record(args.record, "Two-variable function: test RMSE against coefficients", columns, rows,
                       notes)


if __name__ == "__main__":
    main()
