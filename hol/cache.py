"""Where hol keeps files between processes: the cost model's calibration. (The C++ kernels are built where
torch builds extensions, ``$TORCH_EXTENSIONS_DIR`` or torch's cache folder: :mod:`hol.ops.loader`;
only without a home directory in :func:`scratch_dir`.)

``$HOL_CACHE_DIR``, else ``$XDG_CACHE_HOME/hol``, else ``~/.cache/hol``. Without a home directory (``HOME``
unset and a user id without a passwd entry, as in containers run with ``--user`` or jobs started with
``env -i``) there is no such folder: :func:`cache_dir` is ``None`` and callers keep nothing between processes
(the cost model calibrates again in each), and :func:`scratch_dir` gives a per-user folder in the system's
temporary directory for what must be written somewhere (a build).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def home() -> Path | None:
    """The user's home directory, or ``None`` where it cannot be determined."""
    try:
        return Path.home()
    except (RuntimeError, KeyError):
        return None


def cache_dir() -> Path | None:
    """hol's cache folder (module docstring), or ``None`` without ``HOL_CACHE_DIR``, ``XDG_CACHE_HOME`` and a
    home directory. Not created here."""
    if os.environ.get("HOL_CACHE_DIR"):
        return Path(os.environ["HOL_CACHE_DIR"])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "hol"
    user_home = home()
    return None if user_home is None else user_home / ".cache" / "hol"


def scratch_dir(name: str) -> Path:
    """A folder ``name`` for this user in the system's temporary directory (created), for files that must be
    written somewhere when there is no cache folder."""
    folder = Path(tempfile.gettempdir()) / f"hol-{os.getuid() if hasattr(os, 'getuid') else 'user'}" / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder
