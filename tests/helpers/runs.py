"""Running hol in tests: composed configs, tiny quiet runs, the ``hol`` command in a subprocess, run
outputs."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

from hol.runner.cli import config_dir
from hol.runner.records import METRICS_FILE

REPO = Path(__file__).resolve().parents[2]
QUIET = ["callbacks.rich_progress_bar=null", "callbacks.model_summary=null",
         "+trainer.enable_progress_bar=false", "trainer.log_every_n_steps=1"]
"""Overrides of every test run: no progress bars or model summaries on the console, a log line per step."""
TINY_DATA = ["data.train_size=64", "data.val_size=32", "data.test_size=32", "data.batch_size=16"]
"""Overrides making the synthetic data sets (function, xor) tiny."""
TINY_XOR = ["experiment=xor", *QUIET, *TINY_DATA, "trainer.max_epochs=1", "trainer.num_sanity_val_steps=0",
            "callbacks.plots=null", "logger=csv"]
"""A complete one-epoch XOR run of a second or two."""


def compose_config(overrides: list[str], config_name: str = "train", run_dir: Path | None = None,
                   return_hydra_config: bool = False, quiet: bool = True) -> DictConfig:
    """The shipped config ``config_name`` composed with ``overrides`` (and, for ``train`` when ``quiet``,
    :data:`QUIET` first); with ``run_dir`` (created) as the run folder ``paths.output_dir``."""
    overrides = [*(QUIET if quiet and config_name == "train" else []), *overrides]
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(config_name, overrides=overrides, return_hydra_config=return_hydra_config)
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        with open_dict(cfg):
            cfg.paths.output_dir = str(run_dir)
    return cfg


def run_hol(cwd: Path, *args: str, timeout: float = 240, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess:
    """``hol ARGS`` through the console script of this environment, in ``cwd``, one thread per process, with
    the repository on ``PYTHONPATH`` (so ``tests.helpers`` callbacks can be instantiated), without
    ``HYDRA_FULL_ERROR`` unless ``env`` (added variables) sets it."""
    base = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env = {**base, "OMP_NUM_THREADS": "1", **(env or {}),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), base.get("PYTHONPATH")]))}
    command = [str(Path(sys.executable).with_name("hol")), *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)


def run_script(script: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    """``python script ARGS`` with this interpreter, in the script's folder, one thread per process."""
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run([sys.executable, str(script), *args], cwd=script.parent, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def run_sweep_app(script: Path, sweep_dir: Path, *overrides: str, config_name: str = "config"):
    """The sweep test app (the ``sweep_app`` fixture) as a multirun into ``sweep_dir``."""
    return run_script(script, "--config-name", config_name, "-m", f"hydra.sweep.dir={sweep_dir}", *overrides)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as stream:
        return list(csv.DictReader(stream))


def network_folder(run_dir: Path) -> Path:
    """The folder of a finished run's network: the run's own, or for a run with candidates
    (hol.runner.candidates) the chosen candidate's."""
    chosen = json.loads((run_dir / METRICS_FILE).read_text()).get("candidate/chosen")
    return run_dir if chosen is None else run_dir / f"candidate{chosen}"


def tensorboard_events(run_dir: Path) -> EventAccumulator:
    """The TensorBoard events of a run folder, every scalar and image kept."""
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    return events


def tensorboard_scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """``tag -> [(step, value), ...]`` of every scalar logged to TensorBoard in a run folder."""
    events = tensorboard_events(run_dir)
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def tensorboard_hparams(run_dir: Path) -> dict[str, float | str | bool]:
    """The hyperparameters a run logged to TensorBoard (its HPARAMS tab), by flattened config key (``{}``:
    none)."""
    for content in tensorboard_events(run_dir).PluginTagToContent("hparams").values():
        data = HParamsPluginData.FromString(content)
        if data.HasField("session_start_info"):
            return {key: getattr(value, value.WhichOneof("kind"))
                    for key, value in data.session_start_info.hparams.items()}
    return {}
