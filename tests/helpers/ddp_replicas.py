"""A callback for the DDP tests (importable by the DDP processes through ``PYTHONPATH``): at the end of
training every process saves its network's parameters as ``replica_<rank>.pt`` in ``dirpath``."""
from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import torch


class SaveReplica(pl.Callback):
    def __init__(self, dirpath: str):
        self.dirpath = Path(dirpath)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        torch.save(pl_module.net.state_dict(), self.dirpath / f"replica_{trainer.global_rank}.pt")
