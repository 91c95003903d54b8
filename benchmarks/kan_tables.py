"""The KAN paper's two tables (Liu et al. 2024, arXiv:2404.19756: 15 special functions, 27 Feynman
equations; ``kan_rows.py``) through ``hol train experiment=formula``, side by side with the paper's best-KAN
and MLP test RMSE, pykan itself and a tanh MLP trained on the same data.

Methods, each on one thread, per row and seed (the seed draws the initialization and the 1000 training and
1000 test points, uniform on the row's intervals, the same for every method):

* ``hol``: ``hol train experiment=formula 'data.expr=...' 'data.variables=...' seed=SEED``, the preset as
  it is. It trains two candidates from the seed, ``[d, 2d + 1, 1]`` and ``[d, d, d, 1, 1]``
  (``model.widths=[d,d,1]``: the compositions the paper's shapes have, a product or a quotient inside a
  function, need a third layer), and keeps the one with the lower validation loss at a stage's end (200
  points; the test set plays no part in the choice). Both candidates' stages are stored, as ``hol`` and
  ``hol_deep`` (:data:`CANDIDATES`); the table's result is the kept candidate's best stage
  (``stage<k>/test/rmse``) within the row's coefficient budget (1000 special, 2000 Feynman, 3000 smooth);
* ``hol_shape``: the same command on pykan's network alone (``candidates=null``), the row's best-KAN shape
  (``model.widths``: its hidden widths), compared with pykan at equal or fewer coefficients: its best stage
  within pykan's best run's coefficients (the same seed, so the same points);
* ``mlp``: the same command alone (``candidates=null``) with a tanh MLP ``[d, W, W, 1]`` (``layer=tanh``),
  ``W`` the largest width within the budget, trained as long as the preset's ladder with the preset's
  optimizer (9 epochs of up to 3000 BFGS iterations, no refinement);
* ``pykan``: pykan (pinned, installed with ``pip install --no-deps --target`` into a folder of its own the
  first time) in this process on the same points, mapped onto [-1, 1] as hol's network maps them, with the
  paper's protocol: the paper's best-KAN shape of the row, cubic B-splines, grid 3 -> 5 -> 10 -> 20 -> 50 ->
  100 with 200 L-BFGS steps per grid, float64; its result is the best grid within the budget (coefficients:
  ``G + 3`` per link, as the paper counts them).

Every run is stored as it finishes in ``benchmarks/results/kan_runs.json`` (with its machine), so the tables
fill over several invocations; ``--record`` renders ``kan_special.json``, ``kan_feynman.json`` and
``kan_smooth.json`` from all stored runs (median and worst over the seeds each method has).

Usage::

    python benchmarks/kan_tables.py [--table special feynman] [--rows jv I.6.2 ...] [--seeds 0 1 2]
        [--methods hol hol_shape mlp pykan] [--again] [--record] [--tables-only] [-- OVERRIDE ...]

Overrides after ``--`` go to every ``hol`` run (e.g. ``optimizer.max_iter=5`` for a quick check).
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import io
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import results  # sibling scripts, run as files
from kan_rows import FEYNMAN, ROWS, SMOOTH, SPECIAL, Row

from hol.networks import build
from hol.runner.candidates import validation_score
from hol.runner.data import FunctionDataModule
from hol.runner.records import FINISHED

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("hol", "hol_shape", "mlp", "pykan")
CANDIDATES = ("hol", "hol_deep")
"""The names under which a ``hol`` run stores the preset's candidates (its ``candidates``, in their order):
``[d, 2d + 1, 1]`` and ``[d, d, d, 1, 1]``."""
PYKAN = "pykan==0.2.8"
PYKAN_GRIDS = (3, 5, 10, 20, 50, 100)
PYKAN_STEPS = 200
MLP_EPOCHS = 9
"""The tanh MLP's epochs: as many as the preset's ladder has."""


def runs_path() -> Path:
    return Path(os.environ.get("HOL_RESULTS_DIR") or results.RESULTS) / "kan_runs.json"


def load_runs() -> dict[str, dict]:
    path = runs_path()
    return json.loads(path.read_text())["runs"] if path.is_file() else {}


def store_run(key: str, run: dict) -> dict[str, dict]:
    """Add ``run`` to the stored runs under ``key`` and return them all: read, update and replace the file
    under a lock, so that several processes (one per table, say) may store runs side by side, and a process
    interrupted mid-write loses nothing stored before."""
    path = runs_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        runs = load_runs()
        runs[key] = run
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"title": "Runs of benchmarks/kan_tables.py", "runs": runs},
                                        indent=1, allow_nan=False) + "\n")
        temporary.replace(path)
    return runs


def run_key(row: Row, method: str, seed: int) -> str:
    return f"{row.table}/{row.name}/{method}/{seed}"


def variables_override(row: Row) -> str:
    pairs = ",".join(f"{name}:[{low!r},{high!r}]" for name, (low, high) in row.variables.items())
    return f"data.variables={{{pairs}}}"


def mlp_width(inputs: int, budget: int) -> int:
    """The largest ``W`` whose tanh MLP ``[inputs, W, W, 1]`` has at most ``budget`` parameters
    (``W² + (inputs + 3) W + 1``)."""
    return max(w for w in range(1, budget) if w * w + (inputs + 3) * w + 1 <= budget)


def hol_arguments(row: Row, seed: int, method: str) -> list[str]:
    arguments = ["experiment=formula", f'data.expr="{row.expr}"', variables_override(row), f"seed={seed}"]
    if method == "hol_shape":
        hidden = ",".join(str(width) for width in row.kan_shape[1:-1])
        arguments += ["candidates=null", f"model.widths=[{hidden}]"]
    if method == "mlp":
        arguments += ["candidates=null", "layer=tanh", "model.input_layer=null", "model.output_layer=linear",
                      "model.normalization=none", "model.hidden_layers=1",
                      f"model.hidden_width={mlp_width(len(row.variables), row.budget)}", "refine=[]",
                      f"trainer.max_epochs={MLP_EPOCHS}"]
    return arguments


def run_hol(row: Row, seed: int, method: str, overrides: list[str], folder: Path
            ) -> dict[str, dict[str, Any]]:
    """One ``hol train`` run, as ``{name: run}``: for a run with candidates (the preset), each candidate's
    (:data:`CANDIDATES`) with its own wall time, else ``method``'s (:func:`read_run`). ``RuntimeError`` when
    the run failed, or when the candidate it kept is not the one :func:`preset_choice` keeps."""
    command = [str(Path(sys.executable).with_name("hol")), "train", *hol_arguments(row, seed, method),
               *overrides, f"hydra.run.dir={folder}", "callbacks.rich_progress_bar=null",
               "+trainer.enable_progress_bar=false", "logger=csv"]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    seconds = time.perf_counter() - start
    metrics = read_metrics(folder)
    if done.returncode and metrics.get("run/status") != "diverged":
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    if not (folder / "candidate0").is_dir():
        return {method: read_run(folder, seconds)}
    found = {name: read_run(folder / f"candidate{index}", metrics[f"candidate{index}/seconds"])
             for index, name in enumerate(CANDIDATES)}
    kept = metrics.get("candidate/chosen")
    if (kept is None and preset_choice(found) is not None) or (
            kept is not None and CANDIDATES[kept] != preset_choice(found)):
        raise RuntimeError(f"{' '.join(command)} kept candidate {kept}, the tables' rule "
                           f"{preset_choice(found)}: preset_choice no longer follows hol.runner.candidates")
    return found


def read_metrics(folder: Path) -> dict[str, Any]:
    found = folder / "metrics.json"
    return json.loads(found.read_text()) if found.is_file() else {}


def read_run(folder: Path, seconds: float) -> dict[str, Any]:
    """The run in ``folder``: test RMSE and coefficients per stage (one stage without refinement), the
    validation RMSE per stage (``val``) and ``seconds``; a run that diverged (``run/status: diverged``) keeps
    the stages tested before, and says where it diverged (``diverged``)."""
    metrics = read_metrics(folder)
    tested = [k for k in range(len(metrics)) if f"stage{k}/test/rmse" in metrics]
    stages = [[metrics[f"stage{k}/test/rmse"], int(metrics[f"stage{k}/parameters"])] for k in tested]
    val = [metrics[f"stage{k}/val/rmse"] for k in tested]
    if metrics.get("run/status") == "diverged":  # the stages tested before it diverged count
        return {"stages": stages, "val": val, "seconds": seconds,
                "diverged": f"diverged at epoch {metrics['run/diverged_epoch']} "
                            f"({metrics['run/diverged_metric']} not finite)"}
    if not stages:
        checkpoint = torch.load(folder / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
        parameters = sum(p.numel() for p in build(checkpoint["net_hparams"]).parameters() if p.requires_grad)
        stages = [[metrics["test/rmse"], parameters]]
        val = [metrics["val/rmse_best"]]  # the best checkpoint's, as test/rmse
    return {"stages": stages, "val": val, "seconds": seconds}


def pykan_folder() -> Path:
    """pykan installed into a folder of its own (once), without its pinned dependencies."""
    folder = Path(os.environ.get("HOL_PYKAN_DIR", Path(tempfile.gettempdir()) / "hol-pykan-0.2.8"))
    if not (folder / "kan").is_dir():
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
                        str(folder), PYKAN], check=True)
    return folder


def run_pykan(row: Row, seed: int, folder: Path) -> dict[str, Any]:
    """pykan with the paper's protocol on the row's data (module docstring): test RMSE and coefficients per
    grid."""
    sys.path.append(str(pykan_folder()))  # after the environment's packages: they win over pykan's folder
    from kan import KAN

    data = FunctionDataModule(row.expr, {name: list(interval) for name, interval in row.variables.items()},
                              train_size=1000, val_size=200, test_size=1000, seed=seed, dtype="float64")
    data.setup()
    low, high = torch.tensor(data.input_domains, dtype=torch.float64).T
    scaled = {split: (2 * (dataset.tensors[0] - low) / (high - low) - 1, dataset.tensors[1])
              for split, dataset in (("train", data.train_set), ("test", data.test_set))}
    dataset = {"train_input": scaled["train"][0], "train_label": scaled["train"][1],
               "test_input": scaled["test"][0], "test_label": scaled["test"][1]}
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    links = sum(a * b for a, b in zip(row.kan_shape[:-1], row.kan_shape[1:], strict=True))
    stages, start = [], time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)  # pykan writes its history there
    try:
        model = KAN(width=list(row.kan_shape), grid=PYKAN_GRIDS[0], k=3, seed=seed, auto_save=False,
                    ckpt_path=str(folder))
        for index, grid in enumerate(PYKAN_GRIDS):
            # pykan's progress bar and its "saving model version" lines kept out of this script's output
            with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
                if index:
                    model = model.refine(grid)
                model.fit(dataset, opt="LBFGS", steps=PYKAN_STEPS, lamb=0.0, log=PYKAN_STEPS + 1)
            with torch.no_grad():
                error = model(dataset["test_input"]) - dataset["test_label"]
            stages.append([math.sqrt(float(error.square().mean())), links * (grid + 3)])
    finally:
        torch.set_default_dtype(default)
    return {"stages": stages, "seconds": time.perf_counter() - start}


def best(run: dict[str, Any], budget: int) -> tuple[float, int] | None:
    """The run's lowest test RMSE among its stages within ``budget`` coefficients, with their count (a stage
    whose RMSE was not finite is stored as ``None``, as the runner's ``metrics.json`` has it)."""
    within = [(rmse, coefficients) for rmse, coefficients in run["stages"]
              if coefficients <= budget and rmse is not None and math.isfinite(rmse)]
    return min(within) if within else None


def shape_method(row: Row) -> str:
    """The method whose runs are hol on pykan's shape: ``hol`` itself (the preset's first candidate) where
    that is ``[d, 2d + 1, 1]`` (the smooth formulas), else ``hol_shape``."""
    inputs = len(row.variables)
    return "hol" if row.kan_shape == (inputs, 2 * inputs + 1, 1) else "hol_shape"


def seed_runs(runs: dict[str, dict], row: Row, method: str) -> dict[str, dict]:
    """``{seed: run}`` of ``method`` on ``row`` (runs with overrides, e.g. quick checks, left out)."""
    prefix = f"{row.table}/{row.name}/{method}/"
    return {key.removeprefix(prefix): run for key, run in runs.items()
            if key.startswith(prefix) and not run["overrides"]}


def preset_choice(candidates: dict[str, dict]) -> str | None:
    """The candidate the preset keeps: the runner's rule (:func:`hol.runner.candidates.validation_score`) on
    each stored run's validation RMSE per stage, which orders the candidates as the runner's validation loss,
    the mean square, does (ties to the first). ``None`` when none measured one, or a candidate was stored
    without validation RMSE."""
    if any("val" not in run for run in candidates.values()):
        return None
    scores = [(score, index) for index, run in enumerate(candidates.values())
              if (score := validation_score({"run/status": "diverged" if "diverged" in run else FINISHED,
                                             **{f"stage{k}/val/loss": value
                                                for k, value in enumerate(run["val"])}})) is not None]
    return list(candidates)[min(scores)[1]] if scores else None


def preset_runs(runs: dict[str, dict], row: Row) -> dict[str, tuple[str, dict, float]]:
    """``{seed: (name, run, seconds)}``: per seed with both candidates stored (:data:`CANDIDATES`), the one
    the preset keeps (:func:`preset_choice`), and the preset's wall time, both candidates'."""
    stored = [seed_runs(runs, row, name) for name in CANDIDATES]
    kept = {}
    for seed in stored[0]:
        if not all(seed in found for found in stored):
            continue
        candidates = {name: found[seed] for name, found in zip(CANDIDATES, stored, strict=True)}
        if (name := preset_choice(candidates)) is not None:
            kept[seed] = (name, candidates[name], sum(run["seconds"] for run in candidates.values()))
    return kept


def at_pykan_coefficients(runs: dict[str, dict], row: Row, hol: dict[str, dict]) -> dict[str, Any] | None:
    """hol (``hol``: its run per seed) against pykan at equal or fewer coefficients: per seed run by both,
    hol's best stage within the coefficients of pykan's best run within the budget; the median over those
    seeds, with the coefficients (``None`` without such a seed)."""
    found = []
    for seed, kan in seed_runs(runs, row, "pykan").items():
        kan_best = best(kan, row.budget)
        if seed in hol and kan_best and (hol_best := best(hol[seed], kan_best[1])):
            found.append(hol_best)
    if not found:
        return None
    return {"median": statistics.median(rmse for rmse, _ in found),
            "coefficients": "/".join(str(c) for c in sorted({c for _, c in found}))}


def summary(found: Iterable[dict], budget: int, seconds: Iterable[float] | None = None
            ) -> dict[str, Any] | None:
    """Median and worst best-within-budget RMSE over the runs ``found`` (one per seed), their coefficients,
    and the median of ``seconds`` (default: the runs' own)."""
    found = list(found)
    bests = [result for run in found if (result := best(run, budget)) is not None]
    if not bests:
        return None
    errors = [rmse for rmse, _ in bests]
    times = list(seconds) if seconds is not None else [run["seconds"] for run in found]
    return {"median": statistics.median(errors), "worst": max(errors), "seeds": len(bests),
            "coefficients": "/".join(str(c) for c in sorted({c for _, c in bests})),
            "seconds": statistics.median(times)}


def preset(runs: dict[str, dict], row: Row) -> dict[str, Any] | None:
    """The preset on ``row``: :func:`summary` of the kept candidates (:func:`preset_runs`), their wall times
    both candidates', and how often each candidate was kept (``chosen``)."""
    kept = preset_runs(runs, row)
    found = summary((run for _, run, _ in kept.values()), row.budget, (time for *_, time in kept.values()))
    return found and {**found, "chosen": {name: sum(1 for kept_name, *_ in kept.values() if kept_name == name)
                                          for name in CANDIDATES}}


COLUMNS = ["hol test RMSE (median)", "hol (worst)", "hol coefficients", "paper: best KAN", "paper: MLP",
           "hol / anchor", "[d, 2d+1, 1] / [d, d, d, 1, 1] kept", "[d, 2d+1, 1] alone (median)",
           "pykan, same data", "pykan coefficients", "hol, ≤ pykan's coefficients",
           "hol on pykan's shape, ≤ its coefficients", "coefficients (hol / on pykan's shape)",
           "tanh MLP, same data", "hol s (median)", "pykan s (median)", "seeds hol/pykan/MLP"]
LEADING = {"special": ["function"], "feynman": ["equation", "formula", "intervals"],
           "smooth": ["formula", "intervals"]}
PAPER = ("paper: best KAN", "paper: MLP")


def table_rows(runs: dict[str, dict], rows: tuple[Row, ...]) -> list[list]:
    """One table row per row of ``rows`` (columns: :data:`LEADING` of its table, then :data:`COLUMNS`, less
    the paper's for the smooth formulas)."""
    table = []
    for row in rows:
        hol = preset(runs, row)
        first, mlp, kan = (summary(seed_runs(runs, row, method).values(), row.budget)
                           for method in ("hol", "mlp", "pykan"))
        kept = {seed: run for seed, (_, run, _) in preset_runs(runs, row).items()}
        matched = [at_pykan_coefficients(runs, row, hol_runs)
                   for hol_runs in (kept, seed_runs(runs, row, shape_method(row)))]
        intervals = ", ".join(f"{name} ∈ [{low:.3g}, {high:.3g}]"
                              for name, (low, high) in row.variables.items())
        leading = {"special": [row.name], "feynman": [row.name, row.expr, f"{intervals} ({row.source})"],
                   "smooth": [row.expr, intervals]}[row.table]
        paper = [] if row.table == "smooth" else [row.kan_rmse, row.mlp_rmse]
        table.append([*leading, hol and hol["median"], hol and hol["worst"], hol and hol["coefficients"],
                      *paper, hol and hol["median"] / row.anchor,
                      hol and " / ".join(str(count) for count in hol["chosen"].values()),
                      first and first["median"], kan and kan["median"],
                      kan and kan["coefficients"], *(found and found["median"] for found in matched),
                      " / ".join(found["coefficients"] if found else "–" for found in matched),
                      mlp and mlp["median"], hol and hol["seconds"],
                      kan and kan["seconds"],
                      "/".join(str(found["seeds"]) if found else "0" for found in (hol, kan, mlp))])
    return table


def record_tables(runs: dict[str, dict]) -> None:
    machines = sorted({run["machine"] for run in runs.values()})
    common = ("Test RMSE on 1000 uniform test points after training on 1000 (a seed draws both and the "
              "initialization; median and worst over the seeds). hol: `experiment=formula` as it is: it "
              "trains two candidates from the seed, [d, 2d+1, 1] and [d, d, d, 1, 1], and keeps the one with "
              "the lower validation RMSE at a stage's end (200 points; not the test set); the best stage of "
              "the kept candidate's ladder within {budget} link coefficients; its time, both candidates'. "
              "[d, 2d+1, 1] alone: the first candidate's best stage. {paper}anchor: {anchor}. pykan 0.2.8 on "
              "the "
              "same points with the paper's protocol ({shape}, grid 3 -> 100, 200 L-BFGS steps per grid; "
              "G + 3 coefficients per link). hol, <= pykan's coefficients: the best stage within the "
              "coefficients of pykan's best grid, on the seeds pykan ran (the same points); hol on pykan's "
              "shape: {shaped}. tanh MLP: [d, W, W, 1] within the budget, "
              "the same BFGS epochs. Wall times per run with one thread, {side} side by side on a 2-core "
              "machine. "
              f"Machines: {'; '.join(machines)}.")
    paper = "Paper: Liu et al. 2024 (arXiv:2404.19756), {table}. "
    shaped = "the preset's ladder alone on that shape (candidates=null, model.widths its hidden widths)"
    tables = (
        ("kan_special", "KAN paper Table 1: special functions", SPECIAL,
         common.format(budget=1000, paper=paper.format(table="Table 1 (best KAN and MLP test RMSE)"),
                       anchor="the paper's best KAN", shape="the paper's best-KAN shape",
                       shaped=shaped,
                       side="two runs (the second candidate: up to four, its times up to 2x long)")),
        ("kan_feynman", "KAN paper Table 2: Feynman equations (dimensionless)", FEYNMAN,
         common.format(budget=2000, paper=paper.format(table="Table 2 (lowest test RMSE of the "
                                                       "human-constructed, pruned and unpruned KANs; MLP)"),
                       anchor="min(best KAN, MLP)", shape="the paper's best pruned-KAN shape",
                       shaped=shaped, side="two runs (pykan: two or three, its times up to 1.5x long)")),
        ("kan_smooth", "Untuned smooth formulas of three and four variables", SMOOTH,
         common.format(budget=3000, paper="", anchor="the issue's target 1e-3",
                       shape="the shape [d, 2d+1, 1]", shaped="the preset's first candidate (the same shape)",
                       side="two runs (pykan: three or four, its times up to 2x long)")),
    )
    for name, title, rows, notes in tables:
        smooth = rows[0].table == "smooth"
        columns = [*LEADING[rows[0].table], *(c for c in COLUMNS if not (smooth and c in PAPER))]
        results.record(name, title, columns, table_rows(runs, rows), notes,
                       command="python benchmarks/kan_tables.py --record --tables-only")


def report(key: str, run: dict[str, Any], row: Row) -> None:
    found = best(run, row.budget)
    shown = f"{found[0]:.3g} @ {found[1]}" if found else "none within budget"
    if "diverged" in run:
        shown += f" ({run['diverged']})"
    print(f"{key}: {shown} (anchor {row.anchor:.3g}, {run['seconds']:.0f} s)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", nargs="+", choices=("special", "feynman", "smooth"),
                        default=["special", "feynman", "smooth"])
    parser.add_argument("--rows", nargs="+", metavar="NAME", help="only these rows (kan_rows.py names)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--again", action="store_true", help="run again what is stored")
    parser.add_argument("--record", action="store_true", help="render the tables from every stored run")
    parser.add_argument("--tables-only", action="store_true", help="run nothing: only --record")
    parser.add_argument("overrides", nargs="*", help="overrides of every hol run (after --)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = [row for row in ROWS if row.table in args.table and (not args.rows or row.name in args.rows)]
    unknown = sorted(set(args.rows or ()) - {row.name for row in ROWS})
    if unknown:
        parser.error(f"unknown rows {', '.join(unknown)}; see kan_rows.py")
    if args.tables_only:
        rows = []
    runs = load_runs()
    folder = Path(tempfile.mkdtemp(prefix="hol-kan-tables-"))
    try:
        for row in rows:
            for seed in args.seeds:
                for method in args.methods:
                    stored = CANDIDATES if method == "hol" else (method,)  # what the run stores
                    if all(run_key(row, name, seed) in runs for name in stored) and not args.again:
                        continue
                    if method == "hol_shape" and shape_method(row) == "hol":
                        continue  # the preset's first candidate is on pykan's shape
                    key = run_key(row, method, seed)
                    where = folder / re.sub(r"\W", "_", key)  # a Hydra override value: no '=', ' ', ...
                    done = ({method: run_pykan(row, seed, where)} if method == "pykan"
                            else run_hol(row, seed, method, args.overrides, where))
                    for name, run in done.items():
                        runs = store_run(run_key(row, name, seed),
                                         {**run, "machine": results.machine(), "overrides": args.overrides})
                        report(run_key(row, name, seed), run, row)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if args.record:
        record_tables(load_runs())


if __name__ == "__main__":
    main()
