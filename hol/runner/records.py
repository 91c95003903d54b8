"""The files a run and a sweep write, and how they are written and read back.

* ``metrics.json`` (:data:`METRICS_FILE`): a run's final metrics, written as its very last step, with
  ``run/status`` (:data:`FINISHED`, or :data:`DIVERGED` with ``run/diverged_epoch`` and
  ``run/diverged_metric``);
* ``FAILED`` (:data:`FAILED_FILE`): instead of it, the error of a run that failed;
* ``job.json`` (:data:`JOB_FILE`): a sweep job's status, wall time and error;
* ``.hydra/config.yaml`` (:data:`CONFIG_FILE`): rewritten by the run with the config it resolved
  (:func:`hol.runner.train.save_config`);
* ``candidate<i>/`` (:data:`CANDIDATE_FOLDER`): a run with candidates (:mod:`hol.runner.candidates`) holds a
  whole run per candidate, and ``checkpoints`` links to the kept one's.

The JSON files are strict data: without NaN or infinity (a non-finite value is ``null``). They and the saved
config are written atomically (:func:`write_text`).
Also the one-line description of an error shared by the command line and the sweep summaries.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.json"
FINISHED = "finished"
DIVERGED = "diverged"
FAILED_FILE = "FAILED"
JOB_FILE = "job.json"
CONFIG_FILE = "config.yaml"
CANDIDATE_FOLDER = re.compile(r"candidate(\d+)")
"""The folder of candidate ``i`` in a run's folder, ``candidate<i>``."""


def strict(data: Any) -> Any:
    """``data`` with every NaN or infinite float replaced by ``None`` (JSON has no such numbers),
    recursively."""
    if isinstance(data, dict):
        return {key: strict(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [strict(value) for value in data]
    if isinstance(data, float) and not math.isfinite(data):
        return None
    return data


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically: into a temporary file beside ``path``, then renamed, so a reader
    never sees a half-written file."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    temporary.replace(path)


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as strict, indented JSON (non-finite numbers become ``null``, :func:`strict`),
    atomically (:func:`write_text`)."""
    write_text(path, json.dumps(strict(data), indent=2, allow_nan=False) + "\n")


def read_json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; ``{}`` when the file is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def flatten(tree: Any, separator: str = "/", prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one level: ``{"a": {"b": 1}}`` -> ``{"a/b": 1}`` (with ``separator="/"``).

    Lists and tuples are leaves. Keys that already contain the separator are kept as they are.
    """
    if not isinstance(tree, dict):
        return {prefix: tree}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{separator}{key}" if prefix else str(key)
        flat.update(flatten(value, separator, name) if isinstance(value, dict) else {name: value})
    return flat


def unwrap_error(error: BaseException) -> BaseException:
    """The error a user should see: the cause inside Hydra's wrappers around errors in instantiating a config
    object (``InstantiationException``)."""
    from hydra.errors import InstantiationException

    while isinstance(error, InstantiationException) and error.__cause__ is not None:
        error = error.__cause__
    return error


def describe_error(error: BaseException) -> str:
    """``"Type: message"`` on one line, of :func:`unwrap_error`'s error."""
    error = unwrap_error(error)
    message = " ".join(str(error).split())
    return f"{type(error).__name__}: {message}" if message else type(error).__name__
