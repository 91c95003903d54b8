"""The layout of a config folder as Hydra reads it."""
from __future__ import annotations

from pathlib import Path

NOT_GROUPS = ("__pycache__",)
"""Folders of a config folder that Hydra takes for no config group: Python's bytecode folder, which importing
the package ``hol.conf`` from a checkout writes beside ``conf/__init__.py``."""


def config_groups(folder: Path) -> list[str]:
    """The top-level config groups of ``folder``, sorted: its subfolders but :data:`NOT_GROUPS`."""
    return sorted(path.name for path in folder.iterdir() if path.is_dir() and path.name not in NOT_GROUPS)
