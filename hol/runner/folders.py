"""Run and sweep folders: every run its own folder, and no run in a folder that holds another run's results.

* ``${hol_new_folder:PATH}`` (the default ``hydra.run.dir`` and ``hydra.sweep.dir``, ``conf/hydra``) creates
  ``PATH`` atomically, or ``PATH_2``, ``PATH_3``, ... where it exists: two runs started in the same second
  (by hand, by a scheduler, or side by side) get two folders, never one.
* :class:`RunFolderGuard`, a Hydra callback, refuses to start a run or a sweep in a folder that holds
  another run's results (a folder given with ``hydra.run.dir=`` or ``hydra.sweep.dir=``), before Hydra writes
  anything there: a run would otherwise report the old ``metrics.json`` as its own and leave the folder
  holding both runs. ``overwrite=true`` removes the old run's results first; resuming from a checkpoint of the
  folder itself (``ckpt_path=<folder>/checkpoints/...``) continues that run and is allowed.
* Folders the runner cannot create or write are one-line errors naming the folder and the option that moves
  it.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from .records import CANDIDATE_FOLDER, FAILED_FILE, JOB_FILE, METRICS_FILE
from .sweep import SUMMARY_CSV, SUMMARY_MD

RESOLVER = "hol_new_folder"
RUN_RESULTS = (METRICS_FILE, FAILED_FILE, JOB_FILE, "checkpoints", "tensorboard", "csv", "solution.npz")
"""What a run leaves in its folder that a later run must not read as its own."""
SWEEP_RESULTS = (SUMMARY_CSV, SUMMARY_MD, "multirun.yaml", "optimization_results.yaml")
"""What a sweep leaves in its folder, besides its jobs' folders."""

_reserved: dict[str, str] = {}


def new_folder(path: str) -> str:
    """``path``, created now, or the first of ``path_2``, ``path_3``, ... that did not exist (each created
    atomically, so concurrent processes never get the same one); the same answer for the same ``path``
    within one ``hol`` command (:func:`forget_reserved`). Raises :class:`FolderRefused` naming the folder
    when it cannot be created."""
    if path in _reserved:
        return _reserved[path]
    base = Path(path)
    try:
        base.parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, 10_000):
            candidate = base if attempt == 1 else base.with_name(f"{base.name}_{attempt}")
            try:
                candidate.mkdir()
            except FileExistsError:
                continue
            _reserved[path] = str(candidate)
            return str(candidate)
    except OSError as error:
        raise folder_error(base, error) from None
    raise FolderRefused(f"cannot find a new folder next to {base}: 10,000 taken; choose another with "
                        "paths.log_dir=...")


class FolderRefused(BaseException):
    """A run or sweep folder that must not or cannot be used. A ``BaseException`` because Hydra turns an
    ``Exception`` raised by a callback into a warning and starts the run anyway; ``hol`` prints it as its one
    line and exits 1."""


def forget_reserved() -> None:
    """Start a new ``hol`` command in this process: a folder :func:`new_folder` reserved for an earlier one
    (called in process, e.g. by tests or a notebook, within the same second) is not handed out again."""
    _reserved.clear()


def folder_error(folder: Path, error: OSError) -> FolderRefused:
    """The one-line error for a run folder the system refuses (permissions, read-only or full disk)."""
    reason = error.strerror or type(error).__name__
    return FolderRefused(f"cannot write the run folder {folder} ({reason}); choose another with "
                         "paths.log_dir=... (or hydra.run.dir=... / hydra.sweep.dir=...)")


def register_resolver() -> None:
    """Make ``${hol_new_folder:...}`` known to OmegaConf (idempotent)."""
    if not OmegaConf.has_resolver(RESOLVER):
        OmegaConf.register_new_resolver(RESOLVER, new_folder)


def results_in(folder: Path, names: tuple[str, ...] = RUN_RESULTS) -> list[str]:
    """The result files and folders of an earlier run (or sweep) present in ``folder``; for a run, its
    candidates' folders too (``candidate<i>``, :mod:`hol.runner.candidates`)."""
    found = [name for name in names if (folder / name).exists() or (folder / name).is_symlink()]
    if names == RUN_RESULTS and folder.is_dir():
        found += sorted(entry.name for entry in folder.iterdir()
                        if entry.is_dir() and CANDIDATE_FOLDER.fullmatch(entry.name))
    return found


def sweep_results_in(folder: Path) -> list[str]:
    """An earlier sweep's files in ``folder`` and its job folders (numbered subfolders) holding results."""
    found = results_in(folder, SWEEP_RESULTS)
    if folder.is_dir():
        found += [entry.name for entry in sorted(folder.iterdir())
                  if entry.is_dir() and entry.name.isdigit() and results_in(entry)]
    return found


def remove_results(folder: Path, names: list[str]) -> None:
    """Remove the named results of an earlier run or sweep from ``folder`` (``overwrite=true``)."""
    for name in names:
        path = folder / name
        if path.is_dir() and not path.is_symlink():  # a link (a run's checkpoints of its kept candidate) goes
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def _resumes_from(cfg: DictConfig, folder: Path) -> bool:
    """Whether the run trains on from a checkpoint inside ``folder`` (it continues that run there; ``hol
    eval`` of it would replace the run's metrics)."""
    checkpoint = OmegaConf.select(cfg, "ckpt_path", default=None)
    if not checkpoint or not OmegaConf.select(cfg, "train", default=False):
        return False
    return Path(str(checkpoint)).resolve().is_relative_to(folder.resolve())


def _worker_process() -> bool:
    """A process Lightning's DDP started for another rank of the same run (its folder is the run's own)."""
    return os.environ.get("LOCAL_RANK", "0") != "0" or os.environ.get("NODE_RANK", "0") != "0"


def _check_writable(folder: Path) -> None:
    """Create ``folder`` (and parents) and make sure files can be written there; :class:`FolderRefused`
    otherwise."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".hol-write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise folder_error(folder, error) from None


class RunFolderGuard(Callback):
    """Hydra callback (``hydra.callbacks.run_folder_guard``): before a run or sweep starts, its folder must be
    writable and hold no other run's results (module docstring)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        if _worker_process():
            return
        folder = Path(str(config.hydra.run.dir))
        found = results_in(folder)
        if found and not _resumes_from(config, folder):
            self._refuse_or_clear(config, folder, found, "hydra.run.dir")
        _check_writable(folder)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        folder = Path(str(config.hydra.sweep.dir))
        found = sweep_results_in(folder)
        if found:
            self._refuse_or_clear(config, folder, found, "hydra.sweep.dir")
        _check_writable(folder)

    @staticmethod
    def _refuse_or_clear(config: DictConfig, folder: Path, found: list[str], option: str) -> None:
        if OmegaConf.select(config, "overwrite", default=False):
            remove_results(folder, found)
            return
        raise FolderRefused(f"the folder {folder} holds another run's results ({', '.join(found)}); choose "
                            f"another with {option}=... or replace them with overwrite=true")
