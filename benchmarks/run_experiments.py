"""Run the experiment presets as a user would (``hol train experiment=NAME``) and tabulate their results.

Each preset runs in its own process with the default seed; the table gives its network (read back from the
run's checkpoint), the epochs, the test metric, and the wall time of the whole command (start-up, data
loading, training, testing). Real MNIST is read from ``--data-root`` (default: ``../shared/data`` beside the
repository).

Usage::

    python benchmarks/run_experiments.py [--experiments function xor ...] [--device cuda] [--record NAME]

With ``--record NAME`` the table is written to ``benchmarks/results/NAME.json`` (see ``results.py``).
``--device cuda`` runs every preset with ``trainer=gpu`` (one CUDA GPU, bfloat16 autocast).
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

import torch
from hydra import compose, initialize_config_dir

from hol.runner.cli import config_dir

sys.path.insert(0, str(Path(__file__).resolve().parent))
import results  # a sibling script, run as a file

ROOT = Path(__file__).resolve().parents[1]
PRESETS = ("function", "xor", "invariant_mnist", "invariant_mnist_prefine", "mnist")
METRIC = {"classification": "test/acc", "regression": "test/rmse"}


def describe(net: dict) -> str:
    """A network's shape from its ``net_hparams``, e.g. ``MLP 784-256-256-10, continuous n=3 S=2``."""
    layer = net["layer"]
    order = ", ".join(f"{key}={layer[key]}" for key in ("n", "segments") if key in layer)
    if net["name"] == "mlp":
        hidden = net.get("widths") or [net["hidden_width"]] * (net["hidden_layers"] + 1)
        widths = [net["in_features"], *hidden, net["out_features"]]
        return f"MLP {'-'.join(map(str, widths))}, {layer['kind']} {order}"
    return (f"ConvNet {net['in_channels']}-{'-'.join(map(str, net['channels']))} -> {net['out_features']}, "
            f"{net['kernel_size']}x{net['kernel_size']} {layer['kind']} {order}, head {net['head']}")


def run(experiment: str, data_root: str, folder: Path, device: str = "cpu") -> list:
    """One preset through the ``hol`` command (``trainer=gpu`` for a CUDA ``device``); its table row."""
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        data = compose("train", overrides=[f"experiment={experiment}"]).data
    command = [str(Path(sys.executable).with_name("hol")), "train", f"experiment={experiment}",
               *([f"data.root={data_root}"] if "root" in data else []), f"hydra.run.dir={folder}",
               "callbacks.rich_progress_bar=null", *(["trainer=gpu"] if device.startswith("cuda") else [])]
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, capture_output=True)
    seconds = time.perf_counter() - start
    metrics = json.loads((folder / "metrics.json").read_text())
    checkpoint = torch.load(folder / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    metric = "test/acc" if "test/acc" in metrics else "test/rmse"
    return [f"`{experiment}`", describe(checkpoint["net_hparams"]), checkpoint["epoch"] + 1,
            f"{metric.split('/')[1]} {metrics[metric]:.4g}", metrics.get("refine/max_change"),
            f"{seconds:.0f} s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", nargs="+", default=list(PRESETS), choices=PRESETS)
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--device", default="cpu", help="cpu, or cuda: trainer=gpu")
    parser.add_argument("--record", metavar="NAME", help="write benchmarks/results/NAME.json")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="hol-experiments-"))
    rows = []
    try:
        for experiment in args.experiments:
            rows.append(run(experiment, args.data_root, folder / experiment, args.device))
            print(" | ".join(map(str, rows[-1])), flush=True)
    finally:
        shutil.rmtree(folder)
    columns = ["experiment", "network", "epochs", "test", "largest link change at refinements", "wall time"]
    if args.record:
        notes = ("Each preset run once with its default seed (42) by the `hol` command, one process at a "
                 "time; wall time of the whole command.")
        results.record(args.record, "The experiment presets", columns, rows, notes, device=args.device)


if __name__ == "__main__":
    main()
