"""Training step time of ``experiment=vae``'s network (hol convolutions, continuous n=3 S=2) over the same
architecture with ``layer=relu`` and over the relu VAE of the same parameter budget (wider channels).

One step = forward, negative ELBO (Bernoulli), backward and an Adam step, on a batch of random MNIST-shaped
images; all cases run interleaved in one process (medians, see ``common.py``).

Usage: ``python benchmarks/bench_vae.py [--rounds 9] [--batch 128] [--threads 2] [--record vae_step]``; with
``--record NAME`` the table is written to ``benchmarks/results/NAME.json`` (see ``results.py``).
"""
from __future__ import annotations

import argparse

import results
import torch
from common import format_table, interleaved_medians

from hol.vae import VAE

CASES = {  # name -> (layer kind, channels, layer options)
    "hol continuous n=3 S=2, [16, 32]": ("continuous", [16, 32], {"n": 3, "segments": 2}),
    "relu, [16, 32]": ("relu", [16, 32], {}),
    "relu, [24, 44] (same budget)": ("relu", [24, 44], {}),
}


def training_step(vae: VAE, images: torch.Tensor):
    optimizer = torch.optim.Adam(vae.parameters(), lr=1e-3, fused=True)

    def step() -> None:
        out = vae(images * 2 - 1)
        loss = (out.reconstruction(images) + out.kl()).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--record", metavar="NAME", help="write benchmarks/results/NAME.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    images = torch.rand(args.batch, 1, 28, 28)
    models = {name: VAE(kind, 1, 28, channels, 16, **options)
              for name, (kind, channels, options) in CASES.items()}
    medians = interleaved_medians({name: training_step(vae, images) for name, vae in models.items()},
                                  rounds=args.rounds, warmup=2)
    anchor = medians["relu, [16, 32]"]
    rows = [(name, sum(p.numel() for p in models[name].parameters()), 1000 * seconds, seconds / anchor)
            for name, seconds in medians.items()]
    columns = ["network", "coefficients", "ms", "x relu [16, 32]"]
    print(f"VAE training step, batch {args.batch}, {args.threads} threads, median of {args.rounds} rounds")
    print(format_table(columns, rows))
    if args.record:
        notes = (f"A training step (forward, negative ELBO, backward, Adam) on a batch of {args.batch}; all "
                 f"cases interleaved in one process, medians of {args.rounds} rounds.")
        results.record(args.record, "VAE training step", columns, rows, notes)


if __name__ == "__main__":
    main()
