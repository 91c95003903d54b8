"""hol.samples: the batches of a ``samples`` argument and eval mode with every submodule's mode restored."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from hol.samples import eval_mode, sample_batches


def test_batches_are_tensors_or_the_inputs_of_tuples_and_empty_ones_are_skipped():
    x, y = torch.ones(3, 2), torch.zeros(4, 2)
    assert [batch is x for batch in sample_batches(x)] == [True]
    batches = list(sample_batches([(x, torch.zeros(3)), torch.empty(0, 2), y]))
    assert len(batches) == 2 and batches[0] is x and batches[1] is y
    with pytest.raises(ValueError, match=r"^samples must be a tensor or an iterable of batches, .* a str$"):
        list(sample_batches(["x"]))


def test_eval_mode_restores_each_submodules_own_mode():
    net = nn.Sequential(nn.Dropout(0.5), nn.Dropout(0.5))
    net[1].eval()  # mixed: net.train(True) afterwards would switch this one back on
    with eval_mode(net):
        assert not any(module.training for module in net.modules())
    assert [net.training, net[0].training, net[1].training] == [True, True, False]
