"""The C++ CPU kernels of the segment-sparse operators (``csrc/segment_sparse.cpp``), built on first use.

The build goes through ``torch.utils.cpp_extension.load`` and is cached by torch under
``$TORCH_EXTENSIONS_DIR`` or ``~/.cache/torch_extensions`` (first build ~30-60 s). The code is compiled with
``-march=native``, so the module name carries a hash of the source, the torch version and this CPU's
instruction-set flags: a cache shared between different CPUs never serves the wrong build.
``HOL_SPARSE_CPP=0`` switches the kernels off (the operators then run their torch implementation).
"""
from __future__ import annotations

import functools
import hashlib
import logging
import os
import platform
import warnings
from pathlib import Path

SOURCE = Path(__file__).parent / "csrc" / "segment_sparse.cpp"


@functools.cache
def extension():
    """The compiled kernels, or ``None`` (with a warning) when they cannot be built here."""
    cpp_extension = _import_cpp_extension()
    try:
        return cpp_extension.load(name=f"hol_segment_sparse_{build_key()}", sources=[str(SOURCE)],
                                  extra_cflags=["-O3", "-march=native", "-fopenmp"],
                                  extra_ldflags=["-fopenmp"], verbose=False)
    except Exception as error:  # no compiler, ninja or headers: the torch ops take over
        warnings.warn(f"hol: segment-sparse C++ kernels unavailable ({type(error).__name__}: {error}); "
                      "using the torch implementation", RuntimeWarning, stacklevel=2)
        return None


def extension_available() -> bool:
    """Whether the C++ kernels serve CPU calls: not when ``HOL_SPARSE_CPP=0``, else whether they build (the
    first call builds them)."""
    return os.environ.get("HOL_SPARSE_CPP", "1") != "0" and extension() is not None


def build_key() -> str:
    """12 hex digits identifying the kernels' source, the torch version and this CPU's instruction sets."""
    import torch

    identity = SOURCE.read_bytes() + torch.__version__.encode() + cpu_flags().encode()
    return hashlib.sha256(identity).hexdigest()[:12]


def cpu_flags() -> str:
    """The ``flags`` line of ``/proc/cpuinfo`` (else the platform's processor name)."""
    return _cpuinfo_field("flags") or platform.processor() or platform.machine()


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; else the platform's processor name)."""
    return _cpuinfo_field("model name") or platform.processor() or platform.machine()


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
