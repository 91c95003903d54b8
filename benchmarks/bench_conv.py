"""fwd+bwd time of high-order convolutions over the torch convolution they reduce to.

A high-order conv with ``K`` values per link is one basis expansion ``[B, C, H, W] -> [B, C*K, H, W]`` plus
one ``nn.Conv2d(C*K, O)``; the ratio ``hol / Conv2d(C*K)`` is the price of the expansion (target <= 2x). The
time of a plain ``nn.Conv2d(C, O)`` is printed for scale. All cases of a shape run interleaved in one process
(medians, see ``common.py``), with 2 threads unless ``--threads`` says otherwise.

Usage: ``python benchmarks/bench_conv.py [--rounds 7] [--threads 2] [--batch 128] [--device cpu|cuda]
[--record NAME]``
(CUDA: every step synchronized; ``--record NAME`` writes the table as ``benchmarks/results/NAME.json``).
"""
from __future__ import annotations

import argparse

import torch
from common import format_table, forward_backward, interleaved_medians
from results import record
from torch import nn

import hol.layers

KIND, N, SEGMENTS = "continuous", 3, (1, 2, 4)
CHANNELS, OUT_CHANNELS, KERNEL = 16, 32, 3
SIZES = (28, 14)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--record", metavar="NAME", help="write the table to benchmarks/results/NAME.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = args.device
    rows = []
    for size in SIZES:
        x = (torch.rand(args.batch, CHANNELS, size, size, device=device) * 2 - 1).requires_grad_()
        plain = nn.Conv2d(CHANNELS, OUT_CHANNELS, KERNEL, padding=1, device=device)
        cases, widths = {"Conv2d(C)": forward_backward(plain, x)}, {}
        for segments in SEGMENTS:
            layer = hol.layers.conv(KIND, CHANNELS, OUT_CHANNELS, KERNEL, n=N, segments=segments, padding=1,
                                    device=device)
            width = widths[segments] = layer.basis.width
            expansion = torch.rand(args.batch, CHANNELS * width, size, size, device=device).requires_grad_()
            baseline = nn.Conv2d(CHANNELS * width, OUT_CHANNELS, KERNEL, padding=1, bias=False, device=device)
            cases[f"hol S={segments}"] = forward_backward(layer, x)
            cases[f"Conv2d(C*K) S={segments}"] = forward_backward(baseline, expansion)
        times = interleaved_medians(cases, rounds=args.rounds, device=device)
        for segments in SEGMENTS:
            hol_ms, base_ms = 1e3 * times[f"hol S={segments}"], 1e3 * times[f"Conv2d(C*K) S={segments}"]
            rows.append([f"{size}x{size}", segments, widths[segments], hol_ms, base_ms, hol_ms / base_ms,
                         1e3 * times["Conv2d(C)"]])
    description = (f"{KIND} conv, n={N}, B={args.batch}, C={CHANNELS} -> O={OUT_CHANNELS}, kernel {KERNEL}, "
                   f"padding 1, fwd+bwd, float32, {device}, median of {args.rounds} interleaved rounds, "
                   f"{torch.get_num_threads()} threads")
    columns = ["input", "S", "K", "hol ms", "Conv2d(C*K) ms", "ratio", "Conv2d(C) ms"]
    print(description)
    print(format_table(columns, rows))
    if args.record:
        record(args.record, "High-order convolution over nn.Conv2d(C*K, O)", columns, rows, description + ".",
               device=device)


if __name__ == "__main__":
    main()
