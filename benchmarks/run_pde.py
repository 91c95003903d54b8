"""Run the PDE presets and their tanh-MLP baselines as a user would (``hol train experiment=...``) and
tabulate their errors beside the published and classical anchors.

Each case (``pde_cases.py``) runs in its own process with the default seed; the table gives its network and
number of coefficients (read back from the run's checkpoint), the metric the issue judges it by, the anchor
with its source, and the wall time of the whole command.

Usage::

    python benchmarks/run_pde.py [--cases poisson burgers ...] [--record NAME] [--figures docs] \\
        [-- OVERRIDE ...]

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


def run(case: Case, folder: Path, extra: list[str]) -> list:
    """One case through the ``hol`` command; its table row."""
    command = [str(Path(sys.executable).with_name("hol")), "train", *case.arguments(), *extra,
               f"hydra.run.dir={folder}", "callbacks.rich_progress_bar=null",
               "+trainer.enable_progress_bar=false"]
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, capture_output=True)
    seconds = time.perf_counter() - start
    metrics = json.loads((folder / "metrics.json").read_text())
    checkpoint = torch.load(folder / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    coefficients = sum(tensor.numel() for key, tensor in checkpoint["state_dict"].items()
                       if key.startswith("net.") and not key.endswith(("domain_centre", "domain_width")))
    anchor, source = ANCHORS.get(case.name, ("the preset with a tanh MLP (pde_cases.py)", "baseline"))
    shown = ", ".join(f"{key.removeprefix('test/')} {value:.3g}" for key, value in metrics.items()
                      if key in ("test/mse", "test/rel_l2") or key.startswith("test/l1/"))
    return [case.what, describe(checkpoint["net_hparams"]), coefficients, case.metric.removeprefix("test/"),
            metrics[case.metric], shown, anchor, source, f"{seconds:.0f} s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=[case.name for case in CASES], choices=list(BY_NAME))
    parser.add_argument("--record", metavar="NAME", help="write benchmarks/results/NAME.json")
    parser.add_argument("--figures", metavar="DIR", help="save the burgers and sod presets' fields at the "
                        "final time against the exact solution as DIR/pde_<case>.png")
    parser.add_argument("overrides", nargs="*", help="added to every command (after --)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="hol-pde-"))
    rows = []
    try:
        for name in args.cases:
            rows.append(run(BY_NAME[name], folder / name, args.overrides))
            print(" | ".join(map(str, rows[-1])), flush=True)
            if args.figures and name in ("burgers", "sod"):
                save_final_time_figure(folder / name, Path(args.figures) / f"pde_{name}.png")
    finally:
        shutil.rmtree(folder)
    columns = ["case", "network", "coefficients", "metric", "value", "test errors", "anchor", "source",
               "wall time"]
    if args.record:
        notes = ("Each case run once with the default seed (42) by the `hol` command (the preset plus the "
                 "overrides of `benchmarks/pde_cases.py`), one process at a time; coefficients: the "
                 "network's trainable parameters; errors on the test grid (Poisson 101 x 101; Burgers and "
                 "Sod 1001 x 101 in (x, t); l1 at the final time); wall time of the whole command.")
        results.record(args.record, "PDE presets against their anchors", columns, rows, notes)


if __name__ == "__main__":
    main()
