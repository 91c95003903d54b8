"""Whether ``backend="auto"`` picks the faster compute path, for layers from tiny to large.

For each shape ``B x I=O x S`` (``--shapes``): fwd+bwd of ``fc("continuous", I, I, n=n, segments=S)`` with
``backend="dense"``, ``"sparse"`` and ``"auto"`` (inputs requiring grad: a hidden layer), in one process,
every case of every shape interleaved (``common.interleaved_medians``), medians; ``auto`` is the path the
calibrated cost model (:mod:`hol.ops.cost`) picks for that step, ``pick/best`` the picked path's
time over the faster one's, ``auto/best`` the auto layer's own time (decision included) over the faster
path's.

Usage: ``python benchmarks/bench_auto.py [--shapes 16x32x8,1024x256x2] [--n 5] [--rounds 9] [--threads 1]
[--device cpu|cuda] [--record NAME]``.
"""
from __future__ import annotations

import argparse

import torch
from common import forward_backward, interleaved_medians, report

import hol.layers

DEFAULT_SHAPES = ("16x32x8,64x32x8,256x32x8,16x128x16,16x256x8,256x64x8,64x128x16,1024x256x2,1024x256x16,"
                  "256x256x64")


def shape(text: str) -> tuple[int, int, int]:
    """``"BxIxS"`` as ``(B, I, S)``."""
    try:
        batch, features, segments = (int(part) for part in text.split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a shape is BxIxS with three integers, got {text!r}") from None
    return batch, features, segments


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shapes", type=lambda text: [shape(part) for part in text.split(",")],
                        default=[shape(part) for part in DEFAULT_SHAPES.split(",")],
                        help=f"default: {DEFAULT_SHAPES}")
    parser.add_argument("--n", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=9, help="timed interleaved rounds (median is reported)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--record", metavar="NAME", help="write the table to benchmarks/results/NAME.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)
    cases, picks = {}, {}
    for batch, features, segments in args.shapes:
        x = (torch.rand(batch, features, generator=generator) * 2 - 1).to(args.device).requires_grad_()
        for backend in ("dense", "sparse", "auto"):
            layer = hol.layers.fc("continuous", features, features, n=args.n, segments=segments,
                                  backend=backend, device=args.device)
            cases[(batch, features, segments, backend)] = forward_backward(layer, x)
            if backend == "auto":
                picks[(batch, features, segments)] = layer.compute_backend(x)  # calibrates on first use
    medians = interleaved_medians(cases, rounds=args.rounds, device=args.device)
    rows = []
    for (batch, features, segments), pick in picks.items():
        dense, sparse = (medians[(batch, features, segments, path)] for path in ("dense", "sparse"))
        best = min(dense, sparse)
        rows.append((batch, features, segments, pick, 1e3 * dense, 1e3 * sparse,
                     medians[(batch, features, segments, pick)] / best,
                     medians[(batch, features, segments, "auto")] / best))
    description = (f"continuous layer fwd+bwd, n={args.n}, inputs with gradient, float32, {args.device}, "
                   f"{torch.get_num_threads()} threads, median of {args.rounds} interleaved rounds; auto: "
                   f"the path the calibrated cost model picks; pick/best: its time over the faster path's; "
                   f"auto/best: the auto layer's time, decision included")
    report(args.record, "backend='auto' against the faster path",
           ("B", "I=O", "S", "auto", "dense ms", "sparse ms", "pick/best", "auto/best"), rows, description,
           device=args.device)


if __name__ == "__main__":
    main()
