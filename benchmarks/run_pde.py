"""Run the PDE presets and their tanh-MLP baselines as a user would (``hol train experiment=...``) and
tabulate their errors beside the published and classical anchors.

Each case (``pde_cases.py``) runs in its own process, once per seed (``--seeds``, default the presets' 42);
the table gives its network and number of coefficients (read back from the run's checkpoint), the median and
worst over the seeds of the metric the issue judges it by, the anchor with its source, and the median wall
time of the whole command. A preset's error depends on rounding as much as on its seed (docs/runner.md), so
one run is no claim.

Usage::

    python benchmarks/run_pde.py [--cases poisson burgers ...] [--seeds 42 1 2] [--record NAME] \\
        [--figures docs] [-- OVERRIDE ...]

Overrides after ``--`` are added to every command (e.g. ``optimizer.max_iter=5`` for a quick check).
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from hol.pde import make_equation
from hol.runner.pde_outputs import final_time_figure

sys.path.insert(0, str(Path(__file__).resolve().parent))
import results  # a sibling script, run as a file
from pde_cases import BY_NAME, CASES, Case, describe

ROOT = Path(__file__).resolve().parents[1]
ANCHORS = {
    "poisson": ("MSE ≈ 1e-7 with ~10² parameters (KAN [2, 10, 1]); MLP 1e-5 with 10⁴; target ≤ 1e-10 "
                "with ≤ 100 coefficients", "Liu et al. 2024, arXiv:2404.19756, §3.4"),
    "poisson_nonseparable": ("target MSE ≤ 1e-6 with ≤ 200 coefficients", "issue 22"),
    "poisson_piecewise": ("a loss of 1.2e-6 at an MSE of 5.3e-2 (the same network, measured for the issue)",
                          "issue 22"),
    "poisson_piecewise_breaks": ("the strong form alone: the row above", "issue 22"),
    "burgers": ("relative L2 6.7e-4 (tanh MLP 9 x 20, L-BFGS); target with ≤ 3000 coefficients",
                "Raissi, Perdikaris & Karniadakis 2019, J. Comput. Phys. 378"),
    "sod": ("L1(ρ) 1.94e-2 HLL 100 cells; 7.82e-3 MUSCL–Hancock + HLL 100 cells",
            "measured for issue 22 (shared/notes/pde-references.md)"),
}


def save_final_time_figure(folder: Path, path: Path) -> None:
    """The run's fields at the final time against the exact solution (from its ``solution.npz``), as a PNG."""
    checkpoint = torch.load(folder / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    equation = make_equation(checkpoint["hyper_parameters"]["task_options"]["equation"])
    solution = np.load(folder / "solution.npz")
    figure = final_time_figure(equation, *(torch.from_numpy(solution[key]) for key in ("points", "fields")),
                               torch.from_numpy(solution["exact"]))
    figure.savefig(path, dpi=100)


def run(case: Case, folder: Path, extra: list[str], seed: int) -> tuple[dict[str, float], float]:
    """One case through the ``hol`` command with ``seed``: its test metrics and the command's wall time."""
    command = [str(Path(sys.executable).with_name("hol")), "train", *case.arguments(), *extra, f"seed={seed}",
               f"hydra.run.dir={folder}", "callbacks.rich_progress_bar=null",
               "+trainer.enable_progress_bar=false"]
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, capture_output=True)
    seconds = time.perf_counter() - start
    return json.loads((folder / "metrics.json").read_text()), seconds


def row(case: Case, folder: Path, seeds: list[int], metrics: list[dict[str, float]],
        seconds: list[float]) -> tuple[list, Path]:
    """The table row of a case run once per seed (in ``folder/seed<seed>``): the median seed's run (its metric
    and test errors), every seed's metric, the median wall time; and the median seed's run folder."""
    values = [run_metrics[case.metric] for run_metrics in metrics]
    median = sorted(range(len(seeds)), key=values.__getitem__)[(len(seeds) - 1) // 2]
    median_run = folder / f"seed{seeds[median]}"
    checkpoint = torch.load(median_run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    coefficients = sum(tensor.numel() for key, tensor in checkpoint["state_dict"].items()
                       if key.startswith("net.") and not key.endswith(("domain_centre", "domain_width")))
    anchor, source = ANCHORS.get(case.name, ("the preset with a tanh MLP (pde_cases.py)", "baseline"))
    shown = ", ".join(f"{key.removeprefix('test/')} {value:.3g}" for key, value in metrics[median].items()
                      if key in ("test/mse", "test/rel_l2") or key.startswith("test/l1/"))
    each = ", ".join(f"{seed}: {value:.3g}" for seed, value in zip(seeds, values, strict=True))
    return [case.what, describe(checkpoint["net_hparams"]), coefficients, case.metric.removeprefix("test/"),
            values[median], max(values), each, shown, anchor, source,
            f"{float(np.median(seconds)):.0f} s"], median_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=[case.name for case in CASES], choices=list(BY_NAME))
    parser.add_argument("--record", metavar="NAME", help="write benchmarks/results/NAME.json")
    parser.add_argument("--figures", metavar="DIR", help="save the burgers and sod presets' fields at the "
                        "final time against the exact solution as DIR/pde_<case>.png")
    parser.add_argument("--seeds", nargs="+", type=int, default=[42], help="run each case once per seed "
                        "(default: the presets' seed, 42); the table gives the median and the worst")
    parser.add_argument("overrides", nargs="*", help="added to every command (after --)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="hol-pde-"))
    rows = []
    try:
        for name in args.cases:
            runs = [run(BY_NAME[name], folder / name / f"seed{seed}", args.overrides, seed)
                    for seed in args.seeds]
            table_row, median_run = row(BY_NAME[name], folder / name, args.seeds,
                                        *map(list, zip(*runs, strict=True)))
            rows.append(table_row)
            print(" | ".join(map(str, table_row)), flush=True)
            if args.figures and name in ("burgers", "sod"):
                save_final_time_figure(median_run, Path(args.figures) / f"pde_{name}.png")
    finally:
        shutil.rmtree(folder)
    columns = ["case", "network", "coefficients", "metric", "value", "worst", "each seed", "test errors",
               "anchor", "source", "wall time"]
    if args.record:
        notes = (f"Each case run once per seed ({', '.join(map(str, args.seeds))}) by the `hol` command "
                 "(the preset plus the overrides of `benchmarks/pde_cases.py`), one process at a time; "
                 "value: the median over the seeds, worst: the largest, test errors: the median seed's run; "
                 "coefficients: the network's trainable parameters; errors on the test grid (Poisson "
                 "101 x 101; Burgers and Sod 1001 x 101 in (x, t); l1 at the final time); wall time: the "
                 "median of the whole command's; the figures: the median seed's run.")
        results.record(args.record, "PDE presets against their anchors", columns, rows, notes)


if __name__ == "__main__":
    main()
