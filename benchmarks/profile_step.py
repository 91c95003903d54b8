"""Where a layer's training step spends its time: host (operators, launches) or device (kernels).


A GPU runs a small layer's kernels in microseconds, but every torch operator costs the host time to dispatch
and launch; when the host issues kernels more slowly than the device runs them, the device idles and the step
takes as long as its operators take to issue, whatever its arithmetic. So for each case this script reports
per fwd+bwd step (inputs requiring grad: a hidden layer):

* ``ms``: wall time (median of ``--rounds`` interleaved rounds, every step synchronized);
* ``ops``: torch operators the step dispatches (view operators excluded; a custom operator counts once,
  whatever its implementation launches), counted with a ``TorchDispatchMode``: the same count on every device;
* on CUDA (``torch.profiler``, ``--steps`` steps): ``kernels`` launched (memory copies and fills included),
  their summed ``device ms``, and
  ``busy``, the device time over the wall time: far below 1, the step is bound by the host, and fewer
  operators (not faster kernels) would shorten it. The heaviest kernels of each case follow the table.

Cases (``--cases``, comma-separated): ``linear`` (``nn.Linear(I*n, O)``, the anchor of the ratios) and
``KIND[:S[:BACKEND]]`` for the fc kinds: ``S`` (segments) and ``BACKEND`` only for kinds that take them, which
otherwise use their defaults (``S = 1``, ``backend="auto"``).

Usage: ``python benchmarks/profile_step.py [--device cuda] [--cases linear,continuous:1:dense]
[--batch 1024 --features 256 --n 5] [--rounds 9] [--steps 10] [--record NAME]``.
"""
from __future__ import annotations

import collections

import torch
from common import forward_backward, interleaved_medians, layer_arguments, report, synchronize
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

import hol.layers
from hol.functional import BACKENDS

DEFAULT_CASES = ("linear,continuous:1:dense,continuous:1:sparse,continuous:8:dense,continuous:8:sparse,"
                 "continuous:64:sparse,polynomial,fourier,continuous_prod:2,product")


class OperatorCount(TorchDispatchMode):
    """Counts the non-view operators dispatched while active."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if not func.is_view:
            self.count += 1
        return func(*args, **(kwargs or {}))


def case_options(label: str, n: int) -> tuple[str, dict]:
    """``(kind, options of hol.layers.fc)`` of a case label ``KIND[:S[:BACKEND]]``; ``ValueError`` for a
    label that is not one (an unknown kind or backend, more than three parts, an S that is not an integer,
    an S or a backend for a kind that does not take it)."""
    kind, *rest = label.split(":")
    info = hol.layers.kind_info(kind)  # ValueError naming the kinds
    if len(rest) > 2 or (rest and not (rest[0].isdigit() and int(rest[0]) >= 1)):
        raise ValueError(f"a case is linear or KIND[:S[:BACKEND]] with S an integer >= 1, got {label!r}")
    for option, given in (("segments", len(rest) > 0), ("backend", len(rest) > 1)):
        if given and option not in info.options:
            raise ValueError(f"case {label!r}: kind {kind!r} takes no {option}")
    backend = rest[1] if len(rest) > 1 else None
    if backend is not None and backend not in BACKENDS:
        raise ValueError(f"case {label!r}: unknown backend {backend!r}; allowed: {', '.join(BACKENDS)}")
    options = {"n": n, "segments": int(rest[0]) if rest else None, "backend": backend}
    return kind, {key: value for key, value in options.items() if key in info.options and value is not None}


def build_case(case: tuple[str, dict] | None, batch: int, features: int, n: int, device: str):
    """``(module, input)`` of a parsed case: ``(kind, options)`` from :func:`case_options`, ``None`` for
    ``linear``."""
    generator = torch.Generator().manual_seed(0)
    if case is None:
        module, width = nn.Linear(features * n, features, device=device), features * n
    else:
        kind, options = case
        module, width = hol.layers.fc(kind, features, features, device=device, **options), features
    x = (torch.rand(batch, width, generator=generator) * 2 - 1).to(device).requires_grad_()
    return module, x


def operators_per_step(step) -> int:
    step()  # warm-up outside the count (first-call work: kernel builds, calibrations, caches)
    with OperatorCount() as counter:
        step()
    return counter.count


def device_profile(step, steps: int) -> tuple[float, float, collections.Counter]:
    """``(kernels per step, device ms per step, device us per step by kernel name)`` over ``steps`` steps."""
    from torch.profiler import ProfilerActivity, profile

    step()
    synchronize("cuda")
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as profiler:
        for _ in range(steps):
            step()
        synchronize("cuda")
    kernels = [event for event in profiler.events() if event.device_type == torch.autograd.DeviceType.CUDA]
    by_name: collections.Counter = collections.Counter()
    for event in kernels:
        by_name[event.name] += event.time_range.elapsed_us() / steps
    return len(kernels) / steps, sum(by_name.values()) / 1e3, by_name


def main() -> None:
    parser = layer_arguments(__doc__.split("\n")[0], segments=None, rounds=9)
    parser.add_argument("--cases", default=DEFAULT_CASES, help=f"default: {DEFAULT_CASES}")
    parser.add_argument("--steps", type=int, default=10, help="profiled steps per case (CUDA)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    labels = args.cases.split(",")
    if len(set(labels)) < len(labels):
        parser.error(f"a case is named twice in --cases {args.cases!r}")
    cases = {}
    for label in labels:
        try:
            cases[label] = None if label == "linear" else case_options(label, args.n)
        except ValueError as error:
            parser.error(str(error))
    steps = {label: forward_backward(*build_case(case, args.batch, args.features, args.n, args.device))
             for label, case in cases.items()}
    operators = {label: operators_per_step(step) for label, step in steps.items()}
    medians = interleaved_medians(steps, rounds=args.rounds, device=args.device)
    anchor = medians.get("linear")
    cuda = torch.device(args.device).type == "cuda"
    columns = ["case", "ms", "ratio", "ops"] + (["kernels", "device ms", "busy"] if cuda else [])
    rows, heaviest = [], {}
    for label in labels:
        row = [label, 1e3 * medians[label], medians[label] / anchor if anchor else "-", operators[label]]
        if cuda:
            kernels, device_ms, by_name = device_profile(steps[label], args.steps)
            row += [kernels, device_ms, device_ms / (1e3 * medians[label])]
            heaviest[label] = by_name.most_common(4)
        rows.append(row)
    description = (f"fwd+bwd, B={args.batch}, I=O={args.features}, n={args.n}, inputs with gradient, "
                   f"float32, {args.device}, {torch.get_num_threads()} threads; ms: median of {args.rounds} "
                   f"interleaved rounds; ratio: over nn.Linear(I*n, O); ops: torch operators dispatched per "
                   f"step"
                   + ("; kernels, device ms: per step, torch.profiler over "
                      f"{args.steps} steps; busy: device ms / ms" if cuda else ""))
    report(args.record, "Host and device time of one step", columns, rows, description, device=args.device)
    for label, kernels in heaviest.items():
        print(f"\n{label}: " + "; ".join(f"{name[:60]} {us:.0f} us" for name, us in kernels))


if __name__ == "__main__":
    main()
