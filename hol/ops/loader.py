"""Build and cache hol's C++ CPU kernels (``hol/ops/csrc``) with ``torch.utils.cpp_extension``.

Each extension is compiled at its first use with ``-O3 -march=native -fopenmp`` and cached by torch under
``$TORCH_EXTENSIONS_DIR`` or ``~/.cache/torch_extensions`` (without a home directory, in a per-user folder of
the system's temporary directory, :func:`hol.cache.scratch_dir`; torch would build under a folder literally
named ``~`` in the working directory). The module name carries a hash of the source, the
headers of ``csrc``, the torch version and this CPU's instruction-set flags, so an edited source, another
torch or another CPU gets its own build, and a hash of the sources' folder, so two checkouts do not rebuild
each other's (:func:`build_name`).
"""
from __future__ import annotations

import functools
import hashlib
import logging
import os
import platform
import warnings
from pathlib import Path
from types import ModuleType

import torch

from ..cache import home, scratch_dir

SOURCES = Path(__file__).parent / "csrc"


@functools.cache
def load(name: str, disable_variable: str | None = None, *,
         python_module: bool = True) -> ModuleType | bool | None:
    """Build and load ``csrc/<name>.cpp``: the Python module it defines, or, with ``python_module=False`` (a
    library that registers torch operators, ``TORCH_LIBRARY``), ``True`` once its operators are in
    ``torch.ops``. ``None`` when the environment variable ``disable_variable`` is ``0`` or the build fails
    (then with a ``RuntimeWarning`` naming the error)."""
    if disable_variable and os.environ.get(disable_variable, "1") == "0":
        return None
    source = SOURCES / f"{name}.cpp"
    cpp_extension = _import_cpp_extension()
    try:
        module = cpp_extension.load(name=build_name(name), sources=[str(source)],
                                    extra_cflags=["-O3", "-march=native", "-fopenmp"],
                                    extra_ldflags=["-fopenmp"], extra_include_paths=[str(SOURCES)],
                                    is_python_module=python_module, verbose=False,
                                    build_directory=_build_directory(name))
        return module if python_module else True
    except Exception as error:  # no compiler, ninja or headers: the callers fall back to torch ops
        warnings.warn(f"hol: C++ kernels {name} unavailable ({type(error).__name__}: {error}); "
                      "using torch ops instead", RuntimeWarning, stacklevel=2)
        return None


def _build_directory(name: str) -> str | None:
    """Where to build ``name``: torch's default (``None``: ``$TORCH_EXTENSIONS_DIR``, else the user's cache
    folder) where it can be written; else, without a home directory or with one that cannot be written, a
    folder of :func:`hol.cache.scratch_dir`."""
    if os.environ.get("TORCH_EXTENSIONS_DIR"):
        return None
    if home() is not None:
        root = Path(_import_cpp_extension().get_default_build_root())
        try:
            root.mkdir(parents=True, exist_ok=True)
            if os.access(root, os.W_OK):
                return None
        except OSError:
            pass
    return str(scratch_dir(f"torch_extensions/{build_name(name)}"))


def build_name(name: str) -> str:
    """The extension's name, also its build folder's: ``hol_<name>_<build_key>_<where>``, ``<where>`` 6 hex
    digits of the sources' folder. Without it two checkouts (or environments) of the same version on one
    machine share a build folder whose ``build.ninja`` names the other's sources, and each rebuilds the
    kernels whenever the other has built them (measured: a 9 s rebuild before a tiny forward)."""
    where = hashlib.sha256(str(SOURCES.resolve()).encode()).hexdigest()[:6]
    return f"hol_{name}_{build_key(name)}_{where}"


@functools.cache
def build_key(name: str) -> str:
    """12 hex digits identifying ``csrc/<name>.cpp`` with the headers of ``csrc``, the torch version and this
    CPU's instruction sets. Read once per process (the cost model asks for it at every forward of a layer with
    ``backend="auto"``)."""
    code = b"".join(path.read_bytes() for path in [SOURCES / f"{name}.cpp", *sorted(SOURCES.glob("*.h"))])
    return hashlib.sha256(code + torch.__version__.encode() + cpu_flags().encode()).hexdigest()[:12]


@functools.cache
def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; else the platform's processor name)."""
    return _cpuinfo_field("model name") or platform.processor() or platform.machine()


@functools.cache
def cpu_flags() -> str:
    """The ``flags`` line of ``/proc/cpuinfo`` (else the platform's processor name)."""
    return _cpuinfo_field("flags") or platform.processor() or platform.machine()


def _cpuinfo_field(name: str) -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == name:
                return value.strip()
    except OSError:
        pass
    return ""


def _import_cpp_extension():
    """``torch.utils.cpp_extension``, imported without the warning it logs at import on machines with a CUDA
    toolkit but no GPU ("No CUDA runtime is found"): the kernels here are CPU code, the warning only
    confuses."""
    logger = logging.getLogger("torch.utils.cpp_extension")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        from torch.utils import cpp_extension
    finally:
        logger.setLevel(level)
    return cpp_extension
