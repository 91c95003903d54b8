"""PSNR against bits per pixel of experiment=implicit_image (hol) and its three baselines, on images, at
parameter budgets set by hol's network; prints the command lines and a markdown table (the README's).

Each run is ``hol train experiment=<preset> <overrides>`` in its own process (one thread:
``OMP_NUM_THREADS=1``), its results read from the run folder's ``metrics.json``. The baselines' width is
chosen so that their coefficient count is the closest to hol's for the same image (3 hidden layers, as the
presets):

    .venv/bin/python tools/implicit_table.py [--images default,camera,astronaut] [--budgets small,large] \
        [--lr implicit_image_siren=0.0003 ...]     # a preset's learning rate, if not its own
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HOL = Path(sys.executable).with_name("hol")
PHOTOS = ROOT.parent / "shared" / "data" / "images"
IMAGES = {  # name -> (data overrides, channels, pixels, training epochs, validation every n epochs)
    "default": ([], 3, 128 * 128, 200, 20),
    "camera": ([f"data.path={PHOTOS / 'camera.png'}"], 1, 512 * 512, 16, 4),
    "astronaut": ([f"data.path={PHOTOS / 'astronaut.png'}"], 3, 512 * 512, 16, 4),
}
HOL_NETWORKS = {  # (image kind, budget) -> (hidden width, segments of the input layer); n=3, 1 hidden layer
    ("default", "small"): (10, 32), ("default", "large"): (16, 32),
    ("photo", "small"): (32, 64), ("photo", "large"): (32, 128),
}
BASELINES = {  # preset -> (input layer has parameters)
    "implicit_image_relu": True, "implicit_image_fourier": False, "implicit_image_siren": True}
HIDDEN = 3  # hidden layers of the baselines


def hol_coefficients(width: int, segments: int, channels: int) -> int:
    """Continuous links, n=3: K = 2 S + 1 per input link, K = 5 elsewhere (2 segments)."""
    return 2 * width * (2 * segments + 1) + width * width * 5 + width * channels * 5


def baseline_coefficients(width: int, channels: int, input_parameters: bool) -> int:
    first = 3 * width if input_parameters else 0
    return first + HIDDEN * (width * width + width) + width * channels + channels


def baseline_width(budget: int, channels: int, input_parameters: bool) -> int:
    return min(range(2, 2000),
               key=lambda width: abs(baseline_coefficients(width, channels, input_parameters) - budget))


def runs(images: list[str], budgets: list[str], rates: dict[str, str]
         ) -> list[tuple[str, str, str, list[str]]]:
    """``(image, budget, preset, overrides)`` of every run; ``rates``: preset -> learning rate."""
    found = []
    for image in images:
        data, channels, _, epochs, every = IMAGES[image]
        common = [*data, f"trainer.max_epochs={epochs}", f"trainer.check_val_every_n_epoch={every}"]
        for budget in budgets:
            width, segments = HOL_NETWORKS["default" if image == "default" else "photo", budget]
            found.append((image, budget, "implicit_image", [
                *common, f"model.hidden_width={width}", f"model.input_layer.segments={segments}",
                *_rate(rates, "implicit_image")]))
            coefficients = hol_coefficients(width, segments, channels)
            for preset, input_parameters in BASELINES.items():
                width = baseline_width(coefficients, channels, input_parameters)
                found.append((image, budget, preset, [*common, f"model.hidden_width={width}",
                                                      *_rate(rates, preset)]))
    return found


def _rate(rates: dict[str, str], preset: str) -> list[str]:
    return [f"optimizer.lr={rates[preset]}"] if preset in rates else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", default="default,camera,astronaut")
    parser.add_argument("--budgets", default="small,large")
    parser.add_argument("--presets", default=None, help="comma-separated presets to run (default: all four)")
    parser.add_argument("--lr", action="append", default=[], help="PRESET=RATE")
    parser.add_argument("--out", default="outputs/implicit_table")
    args = parser.parse_args()
    rates = dict(entry.split("=", 1) for entry in args.lr)
    chosen = args.presets.split(",") if args.presets else None
    rows = []
    for image, budget, preset, overrides in runs(args.images.split(","), args.budgets.split(","), rates):
        if chosen is not None and preset not in chosen:
            continue
        folder = Path(args.out) / f"{image}_{budget}_{preset}" / (rates.get(preset) or "preset_lr")
        command = ["train", f"experiment={preset}", *overrides, f"hydra.run.dir={folder}",
                   "callbacks.rich_progress_bar=null", "+trainer.enable_progress_bar=false"]
        print("hol " + " ".join(command), flush=True)
        start = time.perf_counter()
        done = subprocess.run([str(HOL), *command], env={**os.environ, "OMP_NUM_THREADS": "1"},
                              capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - start
        record = folder / "metrics.json"
        metrics = json.loads(record.read_text()) if record.is_file() else {}
        if done.returncode:
            print(f"  failed: {done.stderr.strip().splitlines()[-1:]}", flush=True)
        rows.append((image, budget, preset, metrics.get("test/bpp"), metrics.get("test/psnr"), seconds))
        print(f"  bpp {metrics.get('test/bpp')}, psnr {metrics.get('test/psnr')}, {seconds:.0f} s",
              flush=True)
    print("\n| image | budget | model | lr | bits per pixel | PSNR (dB) | wall time |\n"
          "|---|---|---|---|---|---|---|")
    for image, budget, preset, bpp, value, seconds in rows:
        name = preset.removeprefix("implicit_image_") if preset != "implicit_image" else "hol"
        bpp_text = f"{bpp:.2f}" if bpp is not None else "-"
        value_text = f"{value:.2f}" if value is not None else "diverged"
        print(f"| {image} | {budget} | {name} | {rates.get(preset, 'preset')} | {bpp_text} | {value_text} "
              f"| {seconds:.0f} s |")


if __name__ == "__main__":
    main()
