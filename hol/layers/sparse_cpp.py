"""The C++ CPU kernels of the segment-sparse operators (``csrc/segment_sparse.cpp``), built on first use by
:mod:`hol.layers.cpp_extensions` (cached by torch; first build ~30-60 s; the module name carries a hash of
the source and headers, the torch version and this CPU's instruction sets, so a cache shared between
different CPUs never serves the wrong build). ``HOL_SPARSE_CPP=0`` switches the kernels off (the operators
then run their torch implementation).
"""
from __future__ import annotations

import os
from types import ModuleType

from . import cpp_extensions
from .cpp_extensions import cpu_model

__all__ = ["build_key", "cpu_model", "extension", "extension_available", "kernels"]

NAME = "segment_sparse"
DISABLE = "HOL_SPARSE_CPP"


def extension() -> ModuleType | None:
    """The compiled kernels, or ``None`` (with a warning) when they cannot be built here."""
    module = cpp_extensions.load(NAME)  # HOL_SPARSE_CPP is read by extension_available, at every call
    return module if isinstance(module, ModuleType) else None


def extension_available() -> bool:
    """Whether the C++ kernels serve CPU calls: not when ``HOL_SPARSE_CPP=0``, else whether they build (the
    first call builds them)."""
    return os.environ.get(DISABLE, "1") != "0" and extension() is not None


def kernels() -> ModuleType:
    """The compiled kernels, for callers that checked :func:`extension_available`; ``RuntimeError`` where they
    cannot be built."""
    module = extension()
    if module is None:
        raise RuntimeError("hol: the segment-sparse C++ kernels are unavailable (see the earlier warning)")
    return module


def build_key() -> str:
    """12 hex digits identifying the kernels' source and headers, the torch version and this CPU's instruction
    sets."""
    return cpp_extensions.build_key(NAME)
