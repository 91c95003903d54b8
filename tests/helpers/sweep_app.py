"""Helpers of the sweep tests: a tiny Hydra app written into a temporary folder, and running commands.

The app's objective is ``(x - 0.3)**2 + y``; it writes ``metrics.json`` and returns the objective. It fails
on purpose for the job numbers in ``fail_jobs`` (ValueError), ``exit_jobs`` (sys.exit) and when ``x`` equals
``fail_at``; for ``nan_jobs`` it returns NaN. The config group ``shape`` has the options ``circle`` and
``square`` only, so ``shape=triangle`` does not compose.
"""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

APP = '''
import json, sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig


@hydra.main(version_base="1.3", config_path=".", config_name="config")
def main(cfg):
    job = HydraConfig.get().job.num
    if job in cfg.fail_jobs or cfg.x == cfg.fail_at:
        raise ValueError(f"job {job} fails on purpose")
    if job in cfg.exit_jobs:
        sys.exit(3)
    value = float("nan") if job in cfg.nan_jobs else (cfg.x - 0.3) ** 2 + cfg.y
    metrics = {"test/loss": value, "test/x": cfg.x}
    Path(HydraConfig.get().runtime.output_dir, "metrics.json").write_text(json.dumps(metrics))
    return value


if __name__ == "__main__":
    main()
'''

CONFIG = '''
defaults:
  - shape: circle
  - _self_
x: 0.0
y: 0
fail_at: null
fail_jobs: []
exit_jobs: []
nan_jobs: []
'''

TINY_XOR = ["experiment=xor", "trainer.max_epochs=1", "data.train_size=64", "data.val_size=32",
            "data.test_size=32", "trainer.num_sanity_val_steps=0", "callbacks=none", "logger=csv"]


def write_app(folder: Path, extra_configs: dict[str, str] | None = None) -> Path:
    """Write the app, its config and the ``shape`` group into ``folder``; return the script's path."""
    (folder / "shape").mkdir(parents=True, exist_ok=True)
    (folder / "shape" / "circle.yaml").write_text("sides: 0\n")
    (folder / "shape" / "square.yaml").write_text("sides: 4\n")
    (folder / "config.yaml").write_text(CONFIG)
    for name, text in (extra_configs or {}).items():
        (folder / name).write_text(text)
    script = folder / "app.py"
    script.write_text(APP)
    return script


def run(args: list[str], cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    """Run ``args`` with this interpreter's environment, one thread per process."""
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def run_app(script: Path, sweep_dir: Path, *overrides: str, config_name: str = "config"):
    return run([sys.executable, str(script), "--config-name", config_name, "-m", f"hydra.sweep.dir={sweep_dir}",
                *overrides], cwd=script.parent)


def run_hol(cwd: Path, *args: str):
    """``hol ARGS`` through hol.runner.cli.main with this interpreter."""
    return run([sys.executable, "-c", "from hol.runner.cli import main; main()", *args], cwd=cwd)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as stream:
        return list(csv.DictReader(stream))
