"""A tiny Hydra app for the sweeper tests (copied into a temporary folder by the ``sweep_app`` fixture).

Its objective is ``(x - 0.3)**2 + y``; it writes ``metrics.json`` and returns the objective. It fails on
purpose for the job numbers in ``fail_jobs`` (ValueError), ``exit_jobs`` (sys.exit) and when ``x`` equals
``fail_at``; for ``nan_jobs`` it returns NaN. The config group ``shape`` has the options ``circle`` and
``square`` only, so ``shape=triangle`` does not compose.
"""
import json
import sys
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
