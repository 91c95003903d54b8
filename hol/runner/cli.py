"""The ``hol`` command: ``hol train [overrides]``, ``hol eval ckpt_path=... [overrides]`` and ``hol symbolic
ckpt_path=... [overrides]``.

Each subcommand is a Hydra 1.3 app (``conf/train.yaml``, ``conf/eval.yaml``, ``conf/symbolic.yaml``) around
a plain function (:mod:`hol.runner.train`, :mod:`hol.runner.symbolic`), so all of Hydra's command line works:
``--help``, ``--cfg job``, ``-m`` multiruns, overrides.

Bad input (unknown config option or key, invalid values, missing data files, a launcher plugin that is not
installed) ends with one line ``hol <command>: error: ...`` on stderr and exit status 1 (2 for usage errors),
without a traceback; ``HYDRA_FULL_ERROR=1`` shows the full one. A sweep with failed jobs ends with status 1.
"""
from __future__ import annotations

import logging
import os
import re
import shlex
import signal
import sys
import warnings
from pathlib import Path
from typing import cast

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import (
    HydraException,
    InstantiationException,
    MissingConfigException,
    OverrideParseException,
)
from hydra.types import RunMode
from omegaconf import DictConfig, read_write
from omegaconf.errors import OmegaConfBaseException

from .config import config_folder, register_configs
from .folders import FolderRefused, forget_reserved
from .records import unwrap_error

COMMANDS = {"train": "train a model: hol train [experiment=NAME] [key=value ...]",
            "eval": "test a checkpoint: hol eval ckpt_path=PATH [key=value ...]",
            "symbolic": "read a checkpoint as a formula: hol symbolic ckpt_path=PATH [key=value ...]"}
USAGE = ("usage: hol {train,eval,symbolic} [overrides]   (hol train --help lists the config groups; "
         "hol --version)")
FULL_ERROR = "HYDRA_FULL_ERROR"
# set by Lightning's DDP launcher for the processes it starts
DDP_VARIABLES = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")
_show_full_error = False  # the user set HYDRA_FULL_ERROR=1: show tracebacks


def config_dir() -> str:
    """Absolute path of the shipped configs (:func:`~hol.runner.config.config_folder`); the configs generated
    from the code (:mod:`hol.runner.config`) are registered in Hydra's ConfigStore beside them."""
    register_configs()
    return str(config_folder())


OPTIONAL_PLUGINS = {"hydra_plugins.hydra_joblib_launcher": "joblib",
                    "hydra_plugins.hydra_submitit_launcher": "slurm"}
"""The Hydra plugins the configs name that come with an optional extra of hol (``pip install 'hol[EXTRA]'``).
"""


def missing_plugin(error: BaseException) -> str | None:
    """The one-line message for a configured Hydra plugin that is not installed (``None`` for other
    errors)."""
    found = re.search(r"Unknown plugin class : '([\w.]+)'", str(error))
    if not isinstance(error, RuntimeError) or not found:
        return None
    target = found.group(1)
    extra = next((extra for package, extra in OPTIONAL_PLUGINS.items() if target.startswith(package)), None)
    install = f"pip install 'hol[{extra}]'" if extra else f"install the package that provides {target}"
    return f"the Hydra plugin {target} is not installed: {install}"


def is_user_error(error: BaseException) -> bool:
    """Errors caused by the input (config, values, data files, a plugin to install), reported in one line;
    others are bugs."""
    if missing_plugin(error):
        return True
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    from .data import DataError

    input_errors = (ValueError, DataError, HydraException, OmegaConfBaseException, MisconfigurationException)
    if isinstance(error, InstantiationException):  # a constructor refused its arguments, or a bug inside it
        return isinstance(unwrap_error(error), (*input_errors, TypeError))
    return isinstance(error, input_errors)


def error_message(error: BaseException) -> str:
    """One line describing ``error`` for the user."""
    if plugin := missing_plugin(error):
        return plugin
    if isinstance(error, InstantiationException):
        where = re.search(r"full_key: (\S+)", str(error))
        return (f"{where.group(1)}: " if where else "") + error_message(unwrap_error(error))
    if isinstance(error, MissingConfigException) and error.options is not None:
        match = re.search(r"Could not find '([^/']+)/([^']+)'", str(error))
        if match:
            group, name = match.groups()
            return f"unknown {group} {name!r}; allowed: {', '.join(sorted(error.options))}"
    if isinstance(error, OverrideParseException) and (placeholder := re.search(r"<\w+>", error.override)):
        return (f"cannot read the override {error.override!r}: {placeholder.group()} is a placeholder of the "
                "documentation; put the name it stands for there (e.g. <run>: the run's folder, printed "
                "after 'Results in')")
    if isinstance(error, OverrideParseException) and (unquoted := _unquoted_character(error.override)):
        option, _, value = error.override.partition("=")
        return (f"cannot read the override {error.override!r}: {unquoted!r} is read only inside quotes; "
                f"write it as '{option}=\"{value}\"'")
    if isinstance(error, OverrideParseException):
        lines = [line for line in str(error).splitlines()
                 if line.strip() and not line.startswith("See https")]
        return " ".join(" ".join(lines).split()) + (
            ". Quote values with parentheses, spaces or commas: 'data.expr=\"sin(pi*x)\"'")
    cause = error.__cause__
    key = getattr(cause, "full_key", None) or getattr(error, "full_key", None)
    text = str(error).split("\n")[0]
    typed = re.search(r"Key '[^']+' not in '(\w+)'", str(cause))  # a structured (typed) node: no new keys
    if "Key '" in str(cause) and ("is not in struct" in str(cause) or typed):
        parent = getattr(cause, "parent_node", None)
        allowed = f"; allowed keys: {', '.join(sorted(str(k) for k in parent))}" if parent else ""
        hint = "" if typed else f" (add a new key with +{key}=VALUE)"
        return f"unknown config key {key!r}{allowed}{hint}"
    if cause is not None and isinstance(cause, OmegaConfBaseException):
        text = f"{text} {str(cause).split(chr(10))[0]}"
    return " ".join(text.split())


QUOTED_ONLY = frozenset("!#&;<>^`")
"""ASCII characters Hydra's grammar (1.3) reads in an override's value only inside quotes (measured over the
ASCII punctuation; brackets, parentheses and commas are its own syntax)."""


def _unquoted_character(override: str) -> str | None:
    """The first character of an override's value that Hydra's grammar reads only in a quoted value (a space,
    a letter beyond ASCII such as an accent, one of :data:`QUOTED_ONLY`), or ``None``."""
    value = override.partition("=")[2]
    if value[:1] in ("'", '"'):
        return None
    return next((character for character in value
                 if not character.isascii() or character.isspace() or character in QUOTED_ONLY), None)


def exit_status(error: BaseException) -> int:
    """2 for usage errors (the command line or config does not compose), 1 for runs that failed; an error may
    say which with an ``exit_status`` attribute (a sweep with failed jobs: 1)."""
    usage = isinstance(error, HydraException) and not isinstance(error, InstantiationException)
    return getattr(error, "exit_status", 2 if usage else 1)


def _fail(command: str, error: BaseException, status: int):
    sys.stderr.write(f"hol {command}: error: {error_message(error)}\n")
    raise SystemExit(status)


def _quiet_known_warnings() -> None:
    # Lightning 2.6 calls a torch pytree API that torch deprecated; nothing a user can act on.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")


def _route_lightning_logs() -> None:
    """Send Lightning's messages through Hydra's logging (console and the run's log file), once."""
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True


def _task(command: str, cfg: DictConfig):
    from lightning.pytorch.utilities import rank_zero_only
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from .symbolic import symbolic
    from .train import evaluate, run_task, train

    _route_lightning_logs()
    _quiet_known_warnings()

    _set_worker_command(command)
    environment = set(os.environ)
    try:
        metrics = run_task(cfg, {"train": train, "eval": evaluate, "symbolic": symbolic}[command])
    except SIGTERMException:  # Lightning stops with a SystemExit of no status: it must not read as 0
        sys.stderr.write(f"hol {command}: error: stopped by SIGTERM; {_resume_hint(cfg)}\n")
        raise SystemExit(128 + signal.SIGTERM) from None
    except Exception as error:
        if not is_user_error(error) or _show_full_error or HydraConfig.get().mode == RunMode.MULTIRUN:
            raise  # multirun: Hydra records the failed job and the sweep goes on
        _fail(command, error, 1)
    finally:
        _end_distributed(environment)
    # DDP: the other processes finish the same job silently (Lightning sets rank on the function, undeclared)
    if rank_zero_only.rank == 0:  # type: ignore[attr-defined]
        _report(cfg, metrics)
    optimized = cfg.get("optimized_metric")
    if optimized and optimized not in metrics and HydraConfig.get().mode == RunMode.MULTIRUN:
        # the job fails saying so (a sweeper would otherwise only find no objective after its last trial)
        raise ValueError(f"optimized_metric {optimized!r} is none of this run's metrics; allowed: "
                         f"{', '.join(sorted(metrics))}")
    return metrics.get(optimized) if optimized else None


def _resume_hint(cfg: DictConfig) -> str:
    """Where a stopped run keeps its checkpoints and how to resume it: a run with candidates
    (:mod:`hol.runner.candidates`) resumes one candidate alone, in its folder ``candidate<i>/``."""
    folder = Path(cfg.paths.output_dir)
    if cfg.get("candidates"):
        candidate = folder / "candidate<i>"
        last = shlex.quote(f"ckpt_path={candidate / 'checkpoints' / 'last.ckpt'}")
        return (f"the candidates' folders candidate<i>/ of {folder} keep their checkpoints (resume one alone "
                f"with hol train --config-path {shlex.quote(str(candidate / '.hydra'))} --config-name config "
                f"{last})")
    last = shlex.quote(f"ckpt_path={folder / 'checkpoints' / 'last.ckpt'}")
    return f"the run folder {folder} keeps its checkpoints (resume with {last})"


def _set_worker_command(command: str) -> None:
    """Make ``sys.argv`` the command line of this job for the processes Lightning's DDP starts.

    Lightning runs ``python sys.argv[0] sys.argv[1:] hydra.run.dir=<hydra.run.dir> ...`` in every other
    process. That must be hol's ``__main__``, the subcommand and this job's own overrides (in a multirun, the
    job's values, without ``-m`` and the sweep), and, in a multirun, ``hydra.run.dir`` must be the job's
    folder. ``main`` restores ``sys.argv`` afterwards.
    """
    hydra_cfg = HydraConfig.get()
    sys.argv = [str(Path(__file__).with_name("__main__.py")), command, *hydra_cfg.overrides.task]
    if hydra_cfg.mode == RunMode.MULTIRUN:
        with read_write(cast(DictConfig, hydra_cfg.run)):  # typed as its dataclass, a DictConfig at run time
            hydra_cfg.run.dir = hydra_cfg.runtime.output_dir


def _end_distributed(environment: set[str]) -> None:
    """After a job: end its DDP process group and drop the variables Lightning's DDP launcher set in this
    process (those not in ``environment``, the names before the job), so a multirun's next job starts anew."""
    import torch.distributed

    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    for name in DDP_VARIABLES:
        if name not in environment:
            os.environ.pop(name, None)


def _report(cfg: DictConfig, metrics: dict) -> None:
    out = cfg.paths.output_dir
    loggers = cfg.get("logger") or {}
    tensorboard = any("TensorBoardLogger" in str(entry.get("_target_", "")) for entry in loggers.values()
                      if isinstance(entry, DictConfig))
    board = [f"TensorBoard: tensorboard --logdir {shlex.quote(str(out))}"] if tensorboard else []  # to paste
    print("\n".join([f"Results in {out}"] + [f"  {key:<16} {value:.6g}" for key, value in metrics.items()]
                    + board))


def _app(command: str):
    @hydra.main(version_base="1.3", config_path=config_dir(), config_name=command)
    def app(cfg: DictConfig):
        return _task(command, cfg)

    return app


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``hol`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE + "\n" + "\n".join(f"  {name:<8} {text}" for name, text in COMMANDS.items()))
        raise SystemExit(0 if argv else 2)
    if argv[0] == "--version":
        from .. import __version__

        print(f"hol {__version__}")
        raise SystemExit(0)
    command = argv[0]
    if command not in COMMANDS:
        sys.stderr.write(f"hol: error: unknown command {command!r}; allowed: {', '.join(COMMANDS)}\n"
                         f"{USAGE}\n")
        raise SystemExit(2)
    # Hydra prints composition errors over several lines: let them reach us (HYDRA_FULL_ERROR) and print one,
    # unless the user asked for the full error.
    global _show_full_error
    user_full_error = _show_full_error = os.environ.get(FULL_ERROR) == "1"
    os.environ[FULL_ERROR] = "1"
    saved_argv = sys.argv
    sys.argv = [f"hol {command}", *argv[1:]]
    forget_reserved()  # this command's run folder is a new one, also after an earlier command in process
    try:
        _app(command)()
    except FolderRefused as error:  # raised past Hydra's callbacks (hol.runner.folders)
        _fail(command, error, 1)
    except Exception as error:
        if user_full_error or not is_user_error(error):
            raise
        _fail(command, error, exit_status(error))
    finally:
        sys.argv = saved_argv
        if not user_full_error:
            os.environ.pop(FULL_ERROR, None)
