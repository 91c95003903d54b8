"""The cost model behind ``backend="auto"``, calibrated on the machine it runs on.

In units of one multiply-add of the dense path (expansion + GEMM), a step of a piecewise layer costs

* dense: ``B I O K + c' I K O`` (``K = (n-1) S + 1`` continuous, ``n S`` discontinuous; ``c'`` passes over
  the weights, which count at small batches);
* sparse: ``B I O (a + b n) + (c + c') I K O + d``: ``a + b n`` per (sample, input, output) -- the product and
  its derivative products do ``n`` multiply-adds each where the GEMMs do ``K``, plus per-input work that does
  not scale with ``n`` (segment lookup, basis, output tiles) -- ``c`` passes over the ``I K O`` weights beyond
  the dense path's (packing them into panels, writing their gradient), and ``d`` per call: the sparse path's
  fixed cost beyond the dense path's (its operators' Python: autograd Functions, ``torch.library`` dispatch,
  kernel launches), which decides for small layers.

A step is one of :data:`STEPS`, which do different work on both paths: ``inputs`` (forward and a backward that
includes the input gradient: a hidden layer), ``weights`` (a backward for the weights only: an input layer),
``none`` (forward only: inference).

For the Lagrange kinds (``continuous``, ``discontinuous``, ``polynomial``) a third path, the fused operator
(:mod:`hol.ops.lagrange_linear`: basis values and product in one C++ kernel), costs per (sample, input)
``p + q n O`` against the other paths' ``h + O K`` (dense) and ``h + O (a + b n)`` (sparse), ``h`` being
what the torch operators computing the basis values cost per (sample, input): :class:`FusedCost`, calibrated
by :func:`calibrate_fused` (``HOL_FUSED_COST="h,p,q"`` overrides it). It wins where ``O`` is small (the narrow
networks of PDEs and implicit representations), where the basis, not the product, is the work.

The sparse path is chosen when ``B (a + b n) + c K + d / (I O) < B K``; for a batch that is symbolic
(``torch.export`` with a dynamic batch, ``torch.compile`` with dynamic shapes) the large-batch limit
``a + b n < K`` decides, so the choice never guards on the batch size. Nothing depends on data values. While
``torch.compile`` or ``torch.export`` trace, the layers leave the batch out and the same limit decides: a
compiled graph sheds most of the Python that ``d`` measures, and strict export refuses a guard on a dynamic
batch.

``(a, b, c, d)`` are measured once per machine and device (:func:`calibrate`: about a second on idle cores,
several under load) on first use, for
each step, dtype, device (the CPU: model, instruction sets and thread count; a CUDA GPU: its name),
implementation of the sparse product (C++ kernels or torch ops on the CPU, the Triton kernels on CUDA) and
torch version, and cached in ``sparse_cost.json`` in hol's cache folder (:func:`hol.cache.cache_dir`:
``$HOL_CACHE_DIR``, ``$XDG_CACHE_HOME/hol`` or ``~/.cache/hol``; without a home directory nothing is kept and
each process calibrates again): a CUDA machine measures its own GPU. ``HOL_SPARSE_COST="a,b,c[,d]"``
(``d = 0`` when left out) overrides the CPU's measurement, ``HOL_SPARSE_COST_CUDA`` the CUDA GPUs'.

Where nothing can be measured the dense path is chosen, so the default is never slower than dense: on devices
without a sparse kernel of their own (all but the CPU, and CUDA with Triton; torch's sparse ops there are
slower than the GEMM at the sizes layers use), and on CUDA while a graph is traced before any calibration
exists (measuring then would time fake tensors). On the CPU, :data:`DEFAULT_COST`, a measured fit, stands in
while tracing before calibration.
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import torch

from ..cache import cache_dir
from . import lagrange_linear, loader, segment_sparse
from .lagrange import lagrange_transform, piecewise_expand, segment_basis, working_dtype
from .segment_sparse import HOST_KERNELS, segment_sparse_product, triton_kernels


class SparseCost(NamedTuple):
    """Cost of the sparse path in multiply-adds of the dense path (module docstring)."""

    fixed: float  # a: per (sample, input, output)
    per_node: float  # b: per (sample, input, output, node)
    weight_passes: float  # c: per weight entry, beyond the dense path's
    overhead: float = 0.0  # d: per call


DEFAULT_COST = SparseCost(3.6, 0.9, 4.0)
"""Fitted (before calibration existed) to fwd+bwd times of both paths on a 2-core AMD EPYC at n = 2, 3, 5,
S = 2 to 8, B x I x O from 64 x 100 x 10 to 1024 x 256 x 256 (no per-call term). Only used while tracing
before calibration."""
MODEL = "cost model 3"
"""Names the form of :class:`SparseCost` in the calibration cache's keys (3: with the per-call term ``d`` and
``c`` net of the dense path's weight passes), so a cache written by an older form is measured again rather
than read."""

class FusedCost(NamedTuple):
    """Costs per (sample, input) of the fused path against the other two, in multiply-adds of the dense path
    (module docstring)."""

    expansion: float  # h: the dense and sparse paths' torch operators computing the basis values
    per_input: float  # p: the fused operator's work that does not scale with the outputs
    per_product: float  # q: the fused operator's cost of one multiply-add of the product


FUSED_ENVIRONMENT = "HOL_FUSED_COST"
"""The override of the fused path's cost on the CPU, ``"h,p,q"`` (:class:`FusedCost`)."""
FUSED_OUTPUTS = (4, 64)
"""The output widths :func:`calibrate_fused` times both paths at (``I = 16``, ``n = 5``, ``S = 2``)."""
_fused_measured: dict[str, FusedCost] = {}

ENVIRONMENT = "HOL_SPARSE_COST"
"""The override of the CPU's cost; other device types append their name: ``HOL_SPARSE_COST_CUDA``."""
STEPS = ("inputs", "weights", "none")
_measured: dict[str, SparseCost] = {}


def step_of(x: torch.Tensor, weight: torch.Tensor) -> str:
    """The step (:data:`STEPS`) a forward of ``x`` through a layer with ``weight`` starts: read from grad mode
    and ``requires_grad`` (never from values)."""
    if not torch.is_grad_enabled() or not (x.requires_grad or weight.requires_grad):
        return "none"
    return "inputs" if x.requires_grad else "weights"


def choose_backend(*, n: int, segments: int, batch, in_features: int, out_features: int,
                   device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                   continuous: bool = True, step: str = "inputs", fusable: bool = False) -> str:
    """``"dense"``, ``"sparse"`` or, where ``fusable`` (a Lagrange kind), ``"fused"``: whichever the cost
    model of ``device`` expects to be faster for ``step`` (:data:`STEPS`); ``"dense"`` where the device cannot
    be measured (module docstring).

    ``batch`` (samples per call) may be a ``torch.SymInt`` or ``None`` (unknown): then the large-batch limit
    decides (module docstring). ``dtype``: the compute dtype (under ``torch.autocast`` the autocast dtype is
    used instead, as for ``nn.Linear``). Calibrates on the first call for a (device, step, dtype) with
    ``K > n``. Raises ``ValueError`` for an unknown ``step``.
    """
    if step not in STEPS:
        raise ValueError(f"unknown step {step!r}; allowed: {', '.join(STEPS)}")
    device = torch.device(device)
    width = (n - 1) * segments + 1 if continuous else n * segments
    if not measurable(device):
        return "dense"
    autocast = torch.amp.is_autocast_available(device.type) and torch.is_autocast_enabled(device.type)
    if autocast and dtype != torch.float64:
        dtype = torch.get_autocast_dtype(device.type)
    known_batch = batch is not None and not isinstance(batch, torch.SymInt)
    # per (sample, input, output), in multiply-adds of the dense path
    costs = {"dense": float(width)}
    cost = sparse_cost(dtype, step, device_name(device)) if width > n else None  # one segment: GEMM, faster
    if cost is not None:
        fixed, per_node, weight_passes, overhead = cost
        costs["sparse"] = fixed + per_node * n
        if known_batch:
            per_call = overhead / (in_features * out_features)
            costs["sparse"] += (weight_passes * width + per_call) / max(batch, 1)
    fused = fused_cost(dtype, step, device_name(device)) if fusable and not autocast else None
    if fused is not None:
        costs = {path: value + fused.expansion / out_features for path, value in costs.items()}
        costs["fused"] = fused.per_input / out_features + fused.per_product * n
    return min(costs, key=costs.__getitem__)


def measurable(device: torch.device) -> bool:
    """Whether ``device`` has a sparse kernel of its own that :func:`calibrate` can time: the CPU, a CUDA
    GPU with the Triton kernels."""
    if device.type == "cpu":
        return True
    return device.type == "cuda" and _cuda_kernels_measurable()


@torch.compiler.assume_constant_result
def _cuda_kernels_measurable() -> bool:
    """A CUDA GPU is there and the Triton kernels serve it (a constant for ``torch.compile``)."""
    return torch.cuda.is_available() and triton_kernels() is not HOST_KERNELS


def device_name(device: torch.device) -> str:
    """``"cpu"`` or ``"cuda:INDEX"`` (the current device for a bare ``"cuda"``)."""
    if device.type == "cuda":
        return f"cuda:{device.index if device.index is not None else torch.cuda.current_device()}"
    return device.type


@torch.compiler.assume_constant_result
def sparse_cost(dtype: torch.dtype, step: str = "inputs", device: str = "cpu") -> SparseCost | None:
    """The cost of the sparse path for ``dtype`` and ``step`` on ``device`` (:func:`device_name`): the
    override (``HOL_SPARSE_COST``, ``HOL_SPARSE_COST_CUDA``), else this process's or the disk's calibration,
    else a new calibration; while tracing before any calibration, :data:`DEFAULT_COST` on the CPU and ``None``
    (no measurement: dense) elsewhere. A constant for ``torch.compile``."""
    device_type = torch.device(device).type
    override = os.environ.get(environment_variable(device_type))
    if override:
        return parse_cost(override, environment_variable(device_type))
    cost = _remembered(cache_key(dtype, step, device), _measured, SparseCost,
                       lambda: calibrate(dtype, step, device=device))
    if cost is None:  # tracing before any calibration
        return DEFAULT_COST if device_type == "cpu" else None
    return cost


@torch.compiler.assume_constant_result
def fused_cost(dtype: torch.dtype, step: str = "inputs", device: str = "cpu") -> FusedCost | None:
    """The fused path's cost for ``dtype`` and ``step`` on ``device``: ``None`` (never chosen) but on the CPU
    with the fused kernels built; else the override ``HOL_FUSED_COST``, this process's or the disk's
    calibration, or a new one (``None`` while tracing before any). A constant for ``torch.compile``."""
    if torch.device(device).type != "cpu" or lagrange_linear.extension() is None:
        return None
    override = os.environ.get(FUSED_ENVIRONMENT)
    if override:
        form = "'h,p,q' (the other paths' basis, fused per input, fused per product)"
        return FusedCost(*_parse_numbers(override, FUSED_ENVIRONMENT, (3,), form))
    key = f"fused {loader.build_key('lagrange_linear')} | {cache_key(dtype, step, device)}"
    return _remembered(key, _fused_measured, FusedCost, lambda: calibrate_fused(dtype, step))


def _remembered(key: str, memory: dict, kind: type, measure: Callable[[], tuple]) -> Any:
    """The calibration ``key``: from this process's ``memory``, else from the disk cache (as ``kind``), else
    ``measure()`` (kept in both); ``None`` while ``torch.compile`` or ``torch.export`` trace before any (fake
    tensors cannot be timed)."""
    if key in memory:
        return memory[key]
    cached = _read_cache().get(key)
    if cached is not None:
        memory[key] = kind(*cached)
        return memory[key]
    if torch.compiler.is_compiling():
        return None
    memory[key] = measure()
    _write_cache(key, memory[key])
    return memory[key]


def environment_variable(device_type: str) -> str:
    """The variable overriding the cost on ``device_type``: :data:`ENVIRONMENT`, suffixed for other than the
    CPU (``HOL_SPARSE_COST_CUDA``)."""
    return ENVIRONMENT if device_type == "cpu" else f"{ENVIRONMENT}_{device_type.upper()}"


def parse_cost(text: str, variable: str = ENVIRONMENT) -> SparseCost:
    """``"a,b,c"`` or ``"a,b,c,d"`` as a :class:`SparseCost`; ``ValueError`` naming ``variable`` otherwise."""
    return SparseCost(*_parse_numbers(text, variable, (3, 4), "'a,b,c[,d]' (fixed, per node, weight passes, "
                                      "per call)"))


def _parse_numbers(text: str, variable: str, counts: tuple[int, ...], form: str) -> list[float]:
    """The comma-separated finite numbers >= 0 of ``text``, as many as one of ``counts``; ``ValueError``
    naming ``variable`` and the ``form`` otherwise."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) not in counts or not all(0 <= value < math.inf for value in values):  # NaN fails both
        how_many = " or ".join(["three", "four"][count - 3] for count in counts)
        raise ValueError(f"{variable} must be {how_many} finite numbers >= 0 {form}, got {text!r}")
    return values


def cache_key(dtype: torch.dtype, step: str, device: str = "cpu") -> str:
    """What a calibration depends on: the device (CPU model, instruction sets and threads; GPU name), the
    kernels, torch, dtype, step."""
    if torch.device(device).type == "cuda":
        return (f"{_gpu_name(device)} | triton-{_triton_key()} | "
                f"torch {torch.__version__} | {dtype} | step {step} | {MODEL}")
    implementation = f"cpp-{segment_sparse.build_key()}" if segment_sparse.extension_available() else "torch"
    return (f"{loader.cpu_model()} | {implementation} | torch {torch.__version__} | {dtype} | "
            f"step {step} | {torch.get_num_threads()} threads | {MODEL}")


@functools.cache
def _gpu_name(device: str) -> str:
    """The name of the CUDA GPU ``device`` (``"cuda:INDEX"``), asked once per process."""
    return torch.cuda.get_device_name(torch.device(device))


@functools.cache
def _triton_key() -> str:
    """Triton's version and 12 hex digits of the kernels' source."""
    import triton

    source = (Path(__file__).parent / "segment_sparse_triton.py").read_bytes()
    return f"{triton.__version__}-{hashlib.sha256(source).hexdigest()[:12]}"


def cache_path() -> Path | None:
    """The calibrations' file in hol's cache folder (:func:`hol.cache.cache_dir`), ``None`` without one."""
    folder = cache_dir()
    return None if folder is None else folder / "sparse_cost.json"


def _read_cache() -> dict:
    path = cache_path()
    if path is None:
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write_cache(key: str, cost: SparseCost | FusedCost) -> None:
    path = cache_path()
    if path is None:  # no home directory: calibrate again in the next process
        return
    entries = _read_cache()
    entries[key] = list(cost)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(entries, indent=1, sort_keys=True))
        temporary.replace(path)
    except OSError:
        pass  # a read-only home: calibrate again in the next process


CALIBRATION_BATCHES = {"cpu": (512, 16), "cuda": (4096, 256)}
"""``(batch, small_batch)`` of :func:`calibrate` per device type: on a GPU, batches large enough that kernel
launches do not dominate the times."""
TINY = 16
"""Samples and features (``B = I = O``) of the layer whose times give the per-call term ``d``: small enough
that the fixed costs dominate both paths."""
TINY_CALLS = 20
"""Calls in a row per timing of the tiny layer (one call right after a large case runs several times slower,
on cold caches)."""


def calibrate(dtype: torch.dtype = torch.float32, step: str = "inputs", *, device: str = "cpu",
              batch: int | None = None, features: int = 256, small_batch: int | None = None,
              rounds: int = 7) -> SparseCost:
    """Measure ``(a, b, c)`` of :class:`SparseCost` on ``device`` (the CPU with its current thread count, or a
    CUDA GPU) for ``step`` (:data:`STEPS`), ``I = O = features``; every case timed against the dense path in
    the same round (GPU work synchronized), the median of ``rounds`` such ratios (slow spells of a shared
    machine hit both sides of a ratio alike). ``batch`` and ``small_batch`` default to
    :data:`CALIBRATION_BATCHES`.

    The dense path at ``n=5, S=2`` (``K=9``) gives the time ``g`` of one of its multiply-adds. The sparse path
    at ``K=9`` with ``n = 2, 5, 9`` (``S = 8, 2, 1``) and ``batch`` samples gives ``B (a + b n) + 9 (c + c')``
    in units of ``g I O``, hence ``a`` and ``b`` (least squares); both paths at ``n=5, S=16`` (``K=65``) with
    ``small_batch`` samples, where the weights dominate, give ``c + c'`` and ``c'``, hence ``c``; both paths
    at ``n=5, S=2`` with ``B = I = O =`` :data:`TINY`, where the fixed costs dominate, give ``d`` (their
    difference in units of ``g``, less the work difference ``a``, ``b``, ``c`` account for; each timed over
    :data:`TINY_CALLS` calls in a row, as a layer runs, not once after a large case).
    """
    if step not in STEPS:
        raise ValueError(f"unknown step {step!r}; allowed: {', '.join(STEPS)}")
    target = torch.device(device)
    default_batch, default_small_batch = CALIBRATION_BATCHES.get(target.type, CALIBRATION_BATCHES["cpu"])
    batch, small_batch = batch or default_batch, small_batch or default_small_batch
    generator = torch.Generator().manual_seed(0)

    def case(n: int, segments: int, rows: int, dense: bool = False,
             size: int = features) -> Callable[[], None]:
        width = (n - 1) * segments + 1
        transform = lagrange_transform(n).to(device=target, dtype=working_dtype(dtype))  # as a layer keeps it
        weight = (torch.rand(size, size, width, generator=generator) - 0.5).to(target, dtype)
        x = (torch.rand(rows, size, generator=generator) * 2 - 1).to(target, dtype)
        wanted = {"inputs": (x, weight), "weights": (weight,), "none": ()}[step]
        for tensor in wanted:
            tensor.requires_grad_()

        def run() -> None:
            if dense:
                expansion = piecewise_expand(x, transform, segments, 2.0, True).to(dtype)
                y = torch.nn.functional.linear(expansion.flatten(-2), weight.flatten(1))
            else:
                phi, base = segment_basis(x, transform, segments, 2.0, True, "polynomial")
                y = segment_sparse_product(phi.to(dtype), base, weight)  # x is [B, I]: already rows
            if wanted:
                torch.autograd.grad(y.sum(), wanted)

        return run

    with torch.inference_mode(False), torch.enable_grad(), torch.autocast(target.type, enabled=False):
        return _measure(case, batch, small_batch, features, rounds, target)


def calibrate_fused(dtype: torch.dtype = torch.float32, step: str = "inputs", *, batch: int = 4096,
                    rounds: int = 7) -> FusedCost:
    """Measure :class:`FusedCost` on the CPU (its current thread count) for ``step``: the dense and fused
    paths at ``I = 16``, ``n = 5``, ``S = 2`` (``K = 9``) and ``batch`` samples, for the outputs of
    :data:`FUSED_OUTPUTS`, interleaved over ``rounds`` rounds (medians). Per (sample, input) the dense path
    takes ``g (h + 9 O)`` and the fused one ``g (p + 5 q O)``: two widths give ``g`` and ``h``, then ``p`` and
    ``q``."""
    if step not in STEPS:
        raise ValueError(f"unknown step {step!r}; allowed: {', '.join(STEPS)}")
    generator = torch.Generator().manual_seed(0)
    inputs, n, segments = 16, 5, 2
    transform = lagrange_transform(n).to(dtype=working_dtype(dtype))
    scale, shift = torch.full((inputs,), 1.0, dtype=dtype), torch.full((inputs,), 1.0, dtype=dtype)

    def case(outputs: int, fused: bool) -> Callable[[], None]:
        weight = (torch.rand(outputs, inputs, 9, generator=generator) - 0.5).to(dtype)
        x = (torch.rand(batch, inputs, generator=generator) * 2 - 1).to(dtype)
        wanted = {"inputs": (x, weight), "weights": (weight,), "none": ()}[step]
        for tensor in wanted:
            tensor.requires_grad_()

        def run() -> None:
            if fused:
                y = lagrange_linear.lagrange_linear(x, scale, shift, weight, transform, segments=segments,
                                                    continuous=True)
            else:
                expansion = piecewise_expand(x, transform, segments, 2.0, True).to(dtype)
                y = torch.nn.functional.linear(expansion.flatten(-2), weight.flatten(1))
            if wanted:
                torch.autograd.grad(y.sum(), wanted)

        return run

    cases = {(outputs, fused): case(outputs, fused) for outputs in FUSED_OUTPUTS for fused in (False, True)}
    times: dict[tuple[int, bool], list[float]] = {name: [] for name in cases}
    with torch.inference_mode(False), torch.enable_grad(), torch.autocast("cpu", enabled=False):
        for round_ in range(rounds + 1):  # round 0 warms up
            for name, run in cases.items():
                seconds = _seconds(run, torch.device("cpu"))
                if round_:
                    times[name].append(seconds / (batch * inputs))
    median = {name: statistics.median(values) for name, values in times.items()}
    narrow, wide = FUSED_OUTPUTS
    unit = max((median[wide, False] - median[narrow, False]) / (9 * (wide - narrow)), 1e-15)  # g
    expansion = max(0.0, median[narrow, False] / unit - 9 * narrow)
    per_product = max(0.0, (median[wide, True] - median[narrow, True]) / (unit * n * (wide - narrow)))
    per_input = max(0.0, median[narrow, True] / unit - per_product * n * narrow)
    return FusedCost(round(expansion, 3), round(per_input, 3), round(per_product, 3))


CALIBRATION_NODES = {2: 8, 5: 2, 9: 1}
"""``n -> S`` of the sparse cases of :func:`calibrate` at ``batch`` samples, all with ``K = 9``."""


def _measure(case: Callable[..., Callable[[], None]], batch: int, small_batch: int, features: int,
             rounds: int, device: torch.device) -> SparseCost:
    """The measurements of :func:`calibrate` (``case(n, S, rows, dense, size)`` makes a timed case,
    ``I = O = size``, default ``features``) and their fit (:func:`fit`)."""
    cases: dict[str | int, Callable[[], None]] = {"small": case(5, 16, small_batch),
                                                  "small dense": case(5, 16, small_batch, dense=True)}
    cases.update({n: case(n, segments, batch) for n, segments in CALIBRATION_NODES.items()})
    calls: dict[str | int, int] = dict.fromkeys(cases, 1)
    cases["tiny sparse"] = case(5, 2, TINY, size=TINY)
    cases["tiny dense"] = case(5, 2, TINY, dense=True, size=TINY)
    calls["tiny sparse"] = calls["tiny dense"] = TINY_CALLS
    dense = case(5, 2, batch, dense=True)
    # time / the dense time of the same round: drifts of the machine cancel
    ratios: dict[str | int, list[float]] = {name: [] for name in cases}
    for round_ in range(rounds + 1):  # round 0 warms up
        reference = _seconds(dense, device)
        for name, run in cases.items():
            if round_:
                ratios[name].append(_seconds(run, device, calls[name]) / reference)
            else:
                run()
    return fit({name: statistics.median(values) for name, values in ratios.items()}, batch, small_batch,
               features)


def fit(ratio: dict, batch: int, small_batch: int, features: int) -> SparseCost:
    """:class:`SparseCost` from the times of :func:`calibrate`'s cases over the dense reference's (``n=5,
    S=2``, ``batch`` samples, ``I = O = features``): ``ratio[n]`` for :data:`CALIBRATION_NODES`,
    ``ratio["small"]``, ``ratio["small dense"]``, ``ratio["tiny sparse"]``, ``ratio["tiny dense"]`` (per call;
    :func:`calibrate`'s docstring).

    ``a, b, c`` come from the larger cases, the sparse ones less ``d``; ``d`` from the tiny ones less the work
    ``a, b, c`` count there. Each depends on the other only a little, so a few alternations settle both (exact
    for times the model itself generates). Negative estimates (noise) become 0."""
    reference = batch * features**2 * 9  # the dense reference's multiply-adds, the unit of the ratios
    sparse_cases = [*CALIBRATION_NODES, "small"]
    overhead = 0.0
    for _ in range(8):
        without_overhead = {name: value - overhead / reference if name in sparse_cases else value
                            for name, value in ratio.items()}
        fixed, per_node, weight_passes = _fit_work(without_overhead, batch, small_batch)
        difference = (ratio["tiny sparse"] - ratio["tiny dense"]) * reference
        work = TINY**2 * (TINY * (fixed + 5 * per_node) + 9 * weight_passes) - 9 * TINY**3
        overhead = max(0.0, difference - work)
    return SparseCost(round(fixed, 3), round(per_node, 3), round(weight_passes, 3), round(overhead))


def _fit_work(ratio: dict, batch: int, small_batch: int) -> tuple[float, float, float]:
    """``(a, b, c)`` from the larger cases' ratios, the sparse path's per-call cost removed (:func:`fit`)."""
    nodes = CALIBRATION_NODES
    per_sample = {n: 9 * ratio[n] for n in nodes}  # a + b n + 9 (c + c') / B, in units of g I O per sample
    mean_n = sum(nodes) / len(nodes)
    mean_cost = sum(per_sample.values()) / len(nodes)
    per_node = (sum((n - mean_n) * (per_sample[n] - mean_cost) for n in nodes)
                / sum((n - mean_n) ** 2 for n in nodes))
    per_node = max(0.0, per_node)
    at_five = mean_cost + per_node * (5 - mean_n)  # a + 5 b + 9 (c + c') / B, fitted
    # the small cases in units of g I O: sparse small_batch (a + 5 b) + 65 (c + c'), dense
    # (small_batch + c') 65
    all_passes = (9 * batch * ratio["small"] - small_batch * at_five) / (65 - 9 * small_batch / batch)
    dense_passes = max(0.0, 9 * batch * ratio["small dense"] / 65 - small_batch)
    fixed = max(0.0, at_five - 9 * all_passes / batch - 5 * per_node)
    return fixed, per_node, max(0.0, all_passes - dense_passes)


def _seconds(run: Callable[[], None], device: torch.device, calls: int = 1) -> float:
    """Wall time of one ``run()``, the mean of ``calls`` calls in a row, including the device work they
    queued."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(calls):
        run()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / calls
