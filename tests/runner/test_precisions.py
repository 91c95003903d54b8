"""Every experiment preset runs end to end with its network in float64 (``trainer.precision=64-true``), in
bfloat16 (``bf16-true``), in float16 (``16-true``, the optimizer stepping float32 copies) and in float32 under
bfloat16 autocast (``bf16-mixed``; ``16-mixed`` is the same on the CPU), its inputs and everything it logs
included: runs that ended at the first image logged to TensorBoard in any dtype but float32, and float16 runs
that diverged."""
from __future__ import annotations

import math

import pytest
import torch

from hol.runner.train import train
from tests.helpers.presets import EXPERIMENTS, TINY, tiny_preset
from tests.helpers.runs import compose_config, network_folder, tensorboard_events

DTYPES = {"64-true": torch.float64, "bf16-true": torch.bfloat16, "16-true": torch.float16,
          "bf16-mixed": torch.float32}
LOGS_IMAGES = [name for name in EXPERIMENTS if name not in ("mnist", "cifar100")]
"""The presets whose runs log images or plots (the convolutional classifiers log none)."""
def test_every_experiment_has_tiny_settings():
    assert set(TINY) == set(EXPERIMENTS)


@pytest.mark.slow
@pytest.mark.parametrize("precision", DTYPES)
@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_runs_in_every_true_precision(name, precision, tmp_path, mnist_root, cifar100_root):
    run = tmp_path / "run"
    cfg = compose_config([*tiny_preset(name, mnist_root, cifar100_root), f"trainer.precision={precision}",
                          "logger=tensorboard"], run_dir=run)
    metrics = train(cfg)
    run = network_folder(run)
    assert metrics and all(not math.isnan(value) for value in metrics.values())
    assert bool(tensorboard_events(run).Tags()["images"]) == (name in LOGS_IMAGES)
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    floating = [tensor.dtype for tensor in state.values() if tensor.is_floating_point()]
    assert DTYPES[precision] in floating
