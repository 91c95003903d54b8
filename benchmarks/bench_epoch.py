"""Training epoch time of ``experiment=invariant_mnist`` with a high-order layer over the same run with
``layer=relu``.

Builds the run exactly as ``hol train`` does (configs, data module, network, LightningModule) and times
``Trainer.fit`` over ``--batches`` training batches (no validation, logging or checkpoints), interleaving the
layers and repeating ``--repeats`` times; prints the median seconds per epoch-equivalent and the ratio to
relu (target <= 2x). Uses the MNIST files under ``--root`` (default ``../shared/data``); without them,
random images in the MNIST format.

    .venv/bin/python benchmarks/bench_epoch.py --layers continuous relu --batches 100
    .venv/bin/python benchmarks/bench_epoch.py --device cuda --precision bf16-mixed --record epoch_cuda

``--device cuda`` trains on one GPU (Lightning's ``gpu`` accelerator) in ``--precision`` (default
``32-true``); ``--record NAME`` writes the table as ``benchmarks/results/NAME.json`` (:mod:`results`).
"""
from __future__ import annotations

import argparse
import statistics
import struct
import tempfile
import time
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
from common import synchronize
from hydra import compose, initialize_config_dir
from results import record

from hol.runner.cli import config_dir
from hol.runner.train import build_datamodule, build_module


def random_mnist(root: Path) -> Path:
    """Random images and labels in MNIST's IDX files (timing only)."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, size in (("train", 60000), ("t10k", 10000)):
        for kind, shape in (("images-idx3", (size, 28, 28)), ("labels-idx1", (size,))):
            array = rng.integers(0, 256 if kind.startswith("images") else 10, shape).astype(np.uint8)
            header = struct.pack(">HBB", 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
            (raw / f"{prefix}-{kind}-ubyte").write_bytes(header + array.tobytes())
    return root


def epoch_seconds(layer: str, root: Path, batches: int, extra: list[str], device: str,
                  precision: str) -> float:
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=invariant_mnist", f"layer={layer}", f"data.root={root}",
                                          "data.download=false", *extra])
    datamodule = build_datamodule(cfg)
    module = build_module(cfg, datamodule)
    accelerator = "gpu" if torch.device(device).type == "cuda" else "cpu"
    trainer = pl.Trainer(accelerator=accelerator, devices=1, precision=precision, max_epochs=1,
                         limit_train_batches=batches,
                         limit_val_batches=0, num_sanity_val_steps=0, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule)
    synchronize(device)
    per_batch = (time.perf_counter() - start) / batches
    return per_batch * len(datamodule.train_dataloader())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", nargs="+", default=["continuous", "relu"])
    parser.add_argument("--root", default=str(Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))
    parser.add_argument("--batches", type=int, default=100, help="training batches timed per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--precision", default="32-true", help="Lightning's precision, e.g. bf16-mixed")
    parser.add_argument("--record", metavar="NAME", help="write the table to benchmarks/results/NAME.json")
    parser.add_argument("overrides", nargs="*", help="extra config overrides, e.g. layer.n=5")
    args = parser.parse_args()

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(args.root)
        if not (root / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file():
            print(f"no MNIST under {root}: timing on random images in the MNIST format")
            root = random_mnist(Path(scratch))
        times = {layer: [] for layer in args.layers}
        for _ in range(args.repeats):
            for layer in args.layers:
                times[layer].append(epoch_seconds(layer, root, args.batches, args.overrides, args.device,
                                                  args.precision))
    baseline = statistics.median(times["relu"]) if "relu" in times else None
    description = (f"invariant_mnist, {args.device}, precision {args.precision}, {torch.get_num_threads()} "
                   f"threads, median of {args.repeats} x {args.batches} batches, extrapolated to one epoch; "
                   f"overrides: {' '.join(args.overrides) or 'none'}")
    print(description)
    rows = []
    for layer, values in times.items():
        median = statistics.median(values)
        ratio = f"{median / baseline:5.2f}x relu" if baseline else ""
        print(f"  {layer:<16} {median:7.2f} s/epoch  {ratio}")
        rows.append((f"`{layer}`", median, median / baseline if baseline else None))
    if args.record:
        record(args.record, "invariant_mnist epoch over layer=relu", ("layer", "s / epoch", "ratio"), rows,
               description + ".", device=args.device)


if __name__ == "__main__":
    main()
