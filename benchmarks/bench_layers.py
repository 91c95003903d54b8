"""Forward + backward time of every hol fc kind, relative to a matrix multiply, and against the reference.

Part 1: each kind at ``B=1024, I=O=256, n=5`` (piecewise kinds for ``S in {1, 2, 4, 16, 64}``) over
``nn.Linear(I*n, O)`` on an input of the same expanded width: the ratio is the price of the basis expansion.
Part 2 (when ``high_order_layers_torch`` is importable): the speed-up over high-order-layers-torch 2.6.0 at
``B=256, I=O=128, n=5, S=2``, after checking that both compute the same function from the same weights.

All cases of a part run in one process, interleaved, and report medians (see ``common.interleaved_medians``),
with ``torch.set_num_threads(2)``.

Usage: ``python benchmarks/bench_layers.py [--rounds 5] [--kinds continuous,linear] [--segments 1,2]
[--backends dense,sparse] [--device cpu|cuda] [--record NAME]``; the ``backend`` column is the path a layer
actually took. On CUDA every step is synchronized (part 2, the reference, runs on the CPU). ``--record NAME``
writes part 1's table as ``benchmarks/results/NAME.json`` and part 2's as ``NAME_reference.json``
(:mod:`results`).
"""
from __future__ import annotations

import importlib.util

import torch
from common import format_table, forward_backward, interleaved_medians, layer_arguments, report
from torch import nn

import hol.layers

BASELINE = "linear(I*n, O)"


def layer_cases(kinds, segments_list, backends, batch: int, features: int, n: int,
                device) -> dict[str, tuple]:
    """``label -> (kind, S, backend, step)`` for every kind (piecewise kinds once per ``S``, kinds with a
    choice of compute path once per backend; each kind gets the options it takes) and the baseline. Kinds
    without trainable parameters (fixed embeddings) are left out."""
    generator = torch.Generator().manual_seed(0)
    cases = {}
    for kind in kinds:
        info = hol.layers.kind_info(kind)
        for segments in segments_list if info.piecewise else (None,):
            for backend in backends if info.sparse_capable else (None,):
                options = {"n": n, "segments": segments, "backend": backend, "dims": 2}
                options = {key: value for key, value in options.items()
                           if key in info.options and value is not None}
                layer = hol.layers.fc(kind, features, features, device=device, **options)
                if not any(parameter.requires_grad for parameter in layer.parameters()):
                    continue  # a fixed embedding (fourier_features): no backward to time
                shape = (batch, features, 2) if "dims" in options else (batch, features)
                x = (torch.rand(*shape, generator=generator) * 2 - 1).to(device)
                used = layer.compute_backend(x) if hasattr(layer, "compute_backend") else "-"
                if backend == "auto":
                    used = f"auto:{used}"
                label = f"{kind} S={segments} {backend}"
                cases[label] = (kind, "-" if segments is None else segments, used, forward_backward(layer, x))
    baseline = nn.Linear(features * n, features, device=device)
    x = (torch.rand(batch, features * n, generator=generator) * 2 - 1).to(device)
    cases[BASELINE] = ("nn.Linear", "-", "-", forward_backward(baseline, x))
    return cases


def bench_kinds(args) -> None:
    kinds = args.kinds or hol.layers.kinds()
    cases = layer_cases(kinds, args.segments, args.backends, args.batch, args.features, args.n, args.device)
    medians = interleaved_medians({label: case[-1] for label, case in cases.items()}, rounds=args.rounds,
                                  device=args.device)
    base = medians[BASELINE]
    rows = [(kind, s, used, 1e3 * medians[label], medians[label] / base)
            for label, (kind, s, used, _) in cases.items()]
    description = (f"fwd+bwd, B={args.batch}, I=O={args.features}, n={args.n}, float32, {args.device}, "
                   f"{torch.get_num_threads()} threads, median of {args.rounds} interleaved rounds; ratio = "
                   f"time / time of nn.Linear(I*n, O) ({1e3 * base:.3f} ms)")
    report(args.record, "Fully connected kinds over nn.Linear(I*n, O)",
           ("kind", "S", "backend", "ms", "ratio"), rows, description, device=args.device)


def reference_pairs(features: int, n: int, segments: int):
    """``(name, reference layer, hol layer)`` with the reference's weights copied into ``.weight``."""
    import high_order_layers_torch.layers as reference

    pairs = [("continuous", reference.PiecewisePolynomial(n, features, features, segments),
              hol.layers.fc("continuous", features, features, n=n, segments=segments)),
             ("discontinuous", reference.PiecewiseDiscontinuousPolynomial(n, features, features, segments),
              hol.layers.fc("discontinuous", features, features, n=n, segments=segments)),
             ("polynomial", reference.Polynomial(n, features, features),
              hol.layers.fc("polynomial", features, features, n=n))]
    for _, ref, ours in pairs:
        with torch.no_grad():
            ref.w.uniform_(-1, 1)
            ours.load_state_dict({"w": ref.w.detach().clone()})
    return pairs


def check_reference(features: int = 16, n: int = 5, segments: int = 2) -> None:
    """Print how far the reference's outputs are from ours for the same weights, inside and outside
    [-1, 1]."""
    print(f"same weights, same outputs? (I=O={features}, n={n}, S={segments}, 4096 samples, float32)")
    rows = []
    for name, ref, ours in reference_pairs(features, n, segments):
        for low, high in ((-1.0, 1.0), (-1.5, 1.5)):
            x = torch.rand(4096, features, generator=torch.Generator().manual_seed(1)) * (high - low) + low
            with torch.no_grad():
                expected, got = ref(x), ours(x)
            rows.append((name, f"[{low}, {high}]", f"{(got - expected).abs().max().item():.2e}",
                         f"{((got - expected).abs().max() / expected.abs().max()).item():.2e}"))
    print(format_table(("kind", "x range", "max |diff|", "relative"), rows))


def bench_reference(args) -> None:
    features, batch, n, segments = 128, 256, 5, 2
    x = torch.rand(batch, features, generator=torch.Generator().manual_seed(0)) * 2 - 1
    cases, names = {}, []
    for name, ref, ours in reference_pairs(features, n, segments):
        cases[f"ref {name}"] = forward_backward(ref, x)
        cases[f"hol {name}"] = forward_backward(ours, x)
        names.append(name)
    medians = interleaved_medians(cases, rounds=args.rounds)
    rows = [(name, 1e3 * medians[f"ref {name}"], 1e3 * medians[f"hol {name}"],
             medians[f"ref {name}"] / medians[f"hol {name}"]) for name in names]
    description = (f"fwd+bwd vs high-order-layers-torch 2.6.0 (the same weights), B={batch}, I=O={features}, "
                   f"n={n}, S={segments}, float32, cpu, {torch.get_num_threads()} threads, median of "
                   f"{args.rounds} interleaved rounds")
    print()
    report(args.record and f"{args.record}_reference", "hol over high-order-layers-torch",
           ("kind", "reference ms", "hol ms", "speed-up"), rows, description)


def parse_args():
    parser = layer_arguments(__doc__.split("\n")[0], segments=[1, 2, 4, 16, 64], rounds=5)
    parser.add_argument("--kinds", type=lambda s: s.split(","), default=None, help="default: every kind")
    parser.add_argument("--backends", type=lambda s: s.split(","), default=["auto"],
                        help="compute paths of continuous/discontinuous to time, e.g. dense,sparse "
                             "(default auto)")
    parser.add_argument("--skip-reference", action="store_true")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    bench_kinds(args)
    if args.skip_reference:
        return
    if importlib.util.find_spec("high_order_layers_torch") is None:
        print("\nhigh_order_layers_torch is not importable: no comparison with the reference "
              "(pip install --no-deps --target DIR high-order-layers-torch==2.6.0; PYTHONPATH=DIR)")
        return
    print()
    check_reference()
    bench_reference(args)


if __name__ == "__main__":
    main()
