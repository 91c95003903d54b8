"""``experiment=vae`` on MNIST for hol and for ``layer=relu`` with the same architecture and with the same
number of coefficients (wider channels): test negative ELBO, its terms and the wall time of each command.

Each run is ``hol train experiment=vae ...`` in its own process with one thread (``OMP_NUM_THREADS=1``) and
the preset's seed and epochs; real MNIST is read from ``--data-root`` (default ``../shared/data`` beside the
repository). ``--checkpoints DIR`` keeps each run's best checkpoint there (for ``tools/vae_figure.py``).

Usage::

    python benchmarks/run_vae.py [--data-root ../shared/data] [--checkpoints DIR] [--record vae]

With ``--record NAME`` the table is written to ``benchmarks/results/NAME.json`` (see ``results.py``).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import results  # a sibling script, run as a file

from hol.layers import kind_info
from hol.runner.lightning_module import HolModule

ROOT = Path(__file__).resolve().parents[1]
TERMS = ("loss", "recon", "kl")  # test/loss is the negative ELBO
RUNS = {  # name -> overrides of experiment=vae
    "hol": [],
    "relu-same-shapes": ["layer=relu"],
    "relu-same-budget": ["layer=relu", "model.channels=[24,44]"],
}


def describe(net) -> str:
    """E.g. ``continuous n=3 S=2, channels [16, 32]``."""
    hparams = net.hparams()
    layer = hparams["layer"]
    order = "" if kind_info(layer["kind"]).baseline else f" n={layer['n']} S={layer['segments']}"
    return f"{layer['kind']}{order}, channels {hparams['channels']}"


def run(overrides: list[str], data_root: str, folder: Path) -> tuple[dict, float, Path]:
    """One run through the ``hol`` command: its ``metrics.json``, wall time and best checkpoint."""
    command = [str(Path(sys.executable).with_name("hol")), "train", "experiment=vae",
               f"data.root={data_root}", "data.download=false", *overrides, f"hydra.run.dir={folder}",
               "callbacks.rich_progress_bar=null", "+trainer.enable_progress_bar=false"]
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, capture_output=True,
                   env={**os.environ, "OMP_NUM_THREADS": "1"})
    seconds = time.perf_counter() - start
    best = next(path for path in (folder / "checkpoints").glob("epoch_*.ckpt"))
    return json.loads((folder / "metrics.json").read_text()), seconds, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--checkpoints", help="keep the best checkpoint of each run here, as NAME.ckpt")
    parser.add_argument("--record", metavar="NAME", help="write benchmarks/results/NAME.json")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="hol-vae-"))
    rows = []
    try:
        for name, overrides in RUNS.items():
            metrics, seconds, best = run(overrides, args.data_root, folder / name)
            net = HolModule.from_checkpoint(str(best)).net
            coefficients = sum(p.numel() for p in net.parameters())
            rows.append([describe(net), coefficients, *(f"{metrics[f'test/{key}']:.2f}" for key in TERMS),
                         f"{int(seconds // 60)} min {seconds % 60:.0f} s"])
            print(" | ".join(map(str, rows[-1])), flush=True)
            if args.checkpoints:
                Path(args.checkpoints).mkdir(parents=True, exist_ok=True)
                shutil.copy(best, Path(args.checkpoints) / f"{name}.ckpt")
    finally:
        shutil.rmtree(folder)
    columns = ["network", "coefficients", "test −ELBO (nats per image)", "recon", "KL", "wall time"]
    if args.record:
        notes = ("The preset's 5 epochs, seed 42, stride-2 3×3 convolutions, batch norm, latent 16, "
                 "Bernoulli likelihood; one thread per run.")
        results.record(args.record, "Variational autoencoder on MNIST", columns, rows, notes)


if __name__ == "__main__":
    main()
