"""Running a module on samples, as the transforms that read a trained network do (:mod:`hol.adapt`,
:mod:`hol.prune`, :mod:`hol.symbolic`): the input batches a ``samples`` argument holds, and eval mode with
every submodule's own mode restored afterwards."""
from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

from torch import Tensor, nn


def sample_batches(samples: Any) -> Iterator[Tensor]:
    """The non-empty input tensors of ``samples``: a tensor, or an iterable of batches, each a tensor or an
    ``(inputs, targets, ...)`` tuple (as a DataLoader of a dataset yields), one at a time.

    Raises:
        ValueError: a batch that is no tensor (one line).
    """
    single = isinstance(samples, Tensor) or not isinstance(samples, Iterable)
    for batch in [samples] if single else samples:
        if isinstance(batch, tuple | list) and batch and isinstance(batch[0], Tensor):
            batch = batch[0]
        if not isinstance(batch, Tensor):
            raise ValueError("samples must be a tensor or an iterable of batches, each a tensor or a tuple "
                             f"(inputs, targets, ...); got a {type(batch).__name__}")
        if batch.numel():
            yield batch


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[None]:
    """``module`` in eval mode, each submodule's train/eval mode restored afterwards (not all set to the
    top's, as ``module.train(mode)`` would)."""
    modes = {name: sub.training for name, sub in module.named_modules()}
    module.eval()
    try:
        yield
    finally:
        for name, sub in module.named_modules():
            sub.training = modes.get(name, sub.training)
