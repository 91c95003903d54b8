"""Every experiment preset with ``trainer=gpu`` (one CUDA GPU, bfloat16 autocast) end to end on tiny data:
fit, plots, checkpoints, test; a GPU checkpoint evaluated on the CPU. Marked ``cuda``: skipped without a GPU
(their composition is tested everywhere, tests/runner/test_configs.py)."""
from __future__ import annotations

import math

import pytest
import torch

from hol.runner.lightning_module import HolModule
from hol.runner.train import evaluate, train
from tests.helpers.presets import EXPERIMENTS, tiny_preset
from tests.helpers.runs import compose_config, network_folder


@pytest.mark.cuda
@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_trains_on_the_gpu(name, tmp_path, mnist_root, cifar100_root):
    run = tmp_path / "run"
    cfg = compose_config([*tiny_preset(name, mnist_root, cifar100_root), "trainer=gpu", "logger=csv"],
                         run_dir=run)
    metrics = train(cfg)
    run = network_folder(run)
    assert metrics and all(math.isfinite(value) for value in metrics.values())
    last = run / "checkpoints" / "last.ckpt"
    module = HolModule.from_checkpoint(str(last))  # onto the CPU
    assert all(p.device.type == "cpu" for p in module.parameters())
    evaluated = evaluate(compose_config([f"ckpt_path={last}"], "eval", tmp_path / "eval"))  # on the CPU
    assert evaluated and all(math.isfinite(value) for value in evaluated.values())
    assert torch.cuda.max_memory_allocated() > 0  # the run used the GPU
