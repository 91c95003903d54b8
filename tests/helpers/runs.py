"""Compose the runner's configs in tests, with the run folder pointed at a temp dir."""
from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

from hol.runner.cli import config_dir


def compose_run(run_dir: Path, overrides: list[str], config_name: str = "train") -> DictConfig:
    """``config_name`` composed with ``overrides``; ``paths.output_dir`` is ``run_dir`` (created)."""
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(config_name, overrides=overrides)
    run_dir.mkdir(parents=True, exist_ok=True)
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir)
    return cfg
