"""PSNR against bits per pixel of ``experiment=implicit_image`` (hol) and its three baselines, on hol's
default image and on the two photographs beside the repository, at two parameter budgets set by hol's network.

Each run is ``hol train experiment=<preset> <overrides>`` in its own process with one thread
(``OMP_NUM_THREADS=1``), its PSNR and bits per pixel read from the run's ``metrics.json``. hol's network is an
input layer of S segments and one hidden layer of W (continuous, n=3); each baseline has 3 hidden layers whose
width is chosen so that its coefficient count is the closest to hol's on the same image. The photographs
(512 x 512) train 16 epochs, the default image (128 x 128) 200; the presets' learning rates are used, unless
``--photo-lr PRESET=RATE`` sets one for the photographs.

Usage::

    python benchmarks/run_implicit.py [--images default camera astronaut] [--budgets small large] \\
        [--photo-lr implicit_image_siren=0.001] [--record implicit_images]

With ``--record NAME`` the table is written to ``benchmarks/results/NAME.json`` (see ``results.py``).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import results  # a sibling script, run as a file

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT.parent / "shared" / "data" / "images"
IMAGES = {  # name -> (file or None for the default image, channels, epochs, validation every n epochs)
    "default": (None, 3, 200, 20),
    "camera": ("camera.png", 1, 16, 4),
    "astronaut": ("astronaut.png", 3, 16, 4),
}
HOL_NETWORKS = {  # (default image?, budget) -> (hidden width W, segments S of the input layer)
    (True, "small"): (10, 32), (True, "large"): (16, 32),
    (False, "small"): (32, 64), (False, "large"): (32, 128)}
PRESETS = {  # preset -> column title, whether its input layer has parameters (None: hol)
    "implicit_image": ("hol", None), "implicit_image_relu": ("ReLU MLP", True),
    "implicit_image_fourier": ("ReLU + Fourier features", False), "implicit_image_siren": ("SIREN", True)}
HIDDEN = 3  # hidden layers of the baselines


def hol_coefficients(width: int, segments: int, channels: int) -> int:
    """Continuous links, n=3: ``K = 2 S + 1`` per link of the input layer, ``K = 5`` elsewhere (2
    segments)."""
    return 2 * width * (2 * segments + 1) + width * width * 5 + width * channels * 5


def baseline_coefficients(width: int, channels: int, input_parameters: bool) -> int:
    first = 3 * width if input_parameters else 0
    return first + HIDDEN * (width * width + width) + width * channels + channels


def baseline_width(budget: int, channels: int, input_parameters: bool) -> int:
    return min(range(2, 2000),
               key=lambda width: abs(baseline_coefficients(width, channels, input_parameters) - budget))


def decimals(value: float | None, places: int) -> str | None:
    """``value`` with ``places`` decimals (``None``, a run without the metric, stays ``None``)."""
    return None if value is None else f"{value:.{places}f}"


def overrides(image: str, budget: str, preset: str, photo_rates: dict[str, str]) -> list[str]:
    """The ``hol train`` overrides of one run."""
    file, channels, epochs, every = IMAGES[image]
    width, segments = HOL_NETWORKS[file is None, budget]
    found = [*([f"data.path={PHOTOS / file}"] if file else []), f"trainer.max_epochs={epochs}",
             f"trainer.check_val_every_n_epoch={every}"]
    input_parameters = PRESETS[preset][1]
    if input_parameters is None:
        found += [f"model.hidden_width={width}", f"model.input_layer.segments={segments}"]
    else:
        budget_coefficients = hol_coefficients(width, segments, channels)
        found.append(f"model.hidden_width={baseline_width(budget_coefficients, channels, input_parameters)}")
    if file and preset in photo_rates:
        found.append(f"optimizer.lr={photo_rates[preset]}")
    return found


def run(preset: str, arguments: list[str], folder: Path) -> tuple[dict, float]:
    """One run through the ``hol`` command: its ``metrics.json`` and wall time."""
    command = [str(Path(sys.executable).with_name("hol")), "train", f"experiment={preset}", *arguments,
               f"hydra.run.dir={folder}", "callbacks.rich_progress_bar=null",
               "+trainer.enable_progress_bar=false"]
    start = time.perf_counter()
    subprocess.run(command, check=False, cwd=ROOT, capture_output=True,
                   env={**os.environ, "OMP_NUM_THREADS": "1"})
    record = folder / "metrics.json"
    return (json.loads(record.read_text()) if record.is_file() else {}), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", nargs="+", default=list(IMAGES), choices=IMAGES)
    parser.add_argument("--budgets", nargs="+", default=["small", "large"], choices=["small", "large"])
    parser.add_argument("--photo-lr", action="append", default=[], metavar="PRESET=RATE",
                        help="learning rate of a preset on the photographs")
    parser.add_argument("--record", metavar="NAME", help="write benchmarks/results/NAME.json")
    args = parser.parse_args()
    photo_rates = dict(entry.split("=", 1) for entry in args.photo_lr)
    folder = Path(tempfile.mkdtemp(prefix="hol-implicit-"))
    rows, seconds = [], []
    for image in args.images:
        for budget in args.budgets:
            psnr, bpp = {}, None
            for preset in PRESETS:
                arguments = overrides(image, budget, preset, photo_rates)
                metrics, took = run(preset, arguments, folder / f"{image}_{budget}_{preset}")
                print(f"hol train experiment={preset} {' '.join(arguments)}: "
                      f"psnr {metrics.get('test/psnr')}, bpp {metrics.get('test/bpp')}, {took:.0f} s",
                      flush=True)
                psnr[preset], seconds = metrics.get("test/psnr"), [*seconds, took]
                bpp = metrics.get("test/bpp") if preset == "implicit_image" else bpp
            file, _, epochs, _ = IMAGES[image]
            width, segments = HOL_NETWORKS[file is None, budget]
            rows.append([f"{file or 'default'}, {epochs} epochs", f"S={segments}, W={width}",
                         decimals(bpp, 2), *(decimals(psnr[preset], 1) for preset in PRESETS)])
    columns = ["image, training", "hol network", "bits per pixel", *(title for title, _ in PRESETS.values())]
    print(" | ".join(columns))
    for row in rows:
        print(" | ".join(map(str, row)))
    if args.record:
        notes = (f"PSNR (dB) of the whole image; the baselines' sizes within 4% of hol's bits per pixel; one "
                 f"thread per run, {min(seconds):.0f}-{max(seconds):.0f} s each.")
        results.record(args.record, "Implicit representation: PSNR against bits per pixel", columns, rows,
                       notes)


if __name__ == "__main__":
    main()
