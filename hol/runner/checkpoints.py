"""Checkpoints of a run: ``last.ckpt`` after every epoch, and the best by the monitored metric, which
survives a resume into another run folder.

Lightning's ``ModelCheckpoint`` with ``save_last`` rewrites ``last.ckpt`` only in epochs that also save a
top-k checkpoint, so after a run whose best epoch is not its last, ``last.ckpt`` is an older epoch, and
resuming from it repeats epochs. And resumed into a new folder, it forgets the best score (only the path is
reloaded), so the first resumed epoch counts as the best whatever its loss, and the run tests another
checkpoint than the uninterrupted run. :class:`RunCheckpoint` fixes both:

* with ``save_last``, ``last.ckpt`` is written at the end of every epoch (the last epoch, always);
* resuming from a checkpoint written in another folder copies the best checkpoint file(s) into this run's
  folder (so the run is self-contained) and restores the best score and the top-k bookkeeping, so the resumed
  run tests exactly the checkpoint the uninterrupted run would.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint


class RunCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` (same arguments) whose ``last.ckpt`` is every epoch's and whose best survives a
    resume into another folder (module docstring)."""

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_last_every_epoch(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_last_every_epoch(trainer)

    def _save_last_every_epoch(self, trainer: pl.Trainer) -> None:
        """``last.ckpt`` now, unless this step saved already (then Lightning saved it with the top-k one)."""
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        old_dir = state_dict.get("dirpath")
        if self.dirpath is None or old_dir is None or Path(old_dir) == Path(self.dirpath):
            super().load_state_dict(state_dict)
            return
        moved = {path: self._adopt(path) for path in state_dict.get("best_k_models", {})}
        best = state_dict.get("best_model_path", "")
        moved.setdefault(best, self._adopt(best) if best else best)
        kth = state_dict.get("kth_best_model_path", "")
        super().load_state_dict({
            **state_dict, "dirpath": self.dirpath, "best_model_path": moved[best],
            "kth_best_model_path": moved.get(kth, kth), "last_model_path": "",
            "best_k_models": {moved[path]: score
                              for path, score in state_dict.get("best_k_models", {}).items()},
        })

    def _adopt(self, path: str) -> str:
        """A copy in this run's checkpoint folder of the checkpoint ``path`` of another folder (its path
        here); ``path`` unchanged when the file is gone."""
        source = Path(path)
        if not source.is_file():
            return path
        target = Path(str(self.dirpath)) / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            shutil.copy2(source, target)
        return str(target)
