"""Which ``init`` should be the default? Train a small MLP of continuous layers on MNIST once per init.

Network: ``depth`` times ``fc(continuous, ., H) -> norm(max_abs)``, then ``fc(continuous, H, 10)``,
``segments=2``; pixels scaled to ``[-1, 1]``; Adam, cross-entropy, one epoch (or ``--train-samples`` of the
training set); test accuracy on the full 10 000 test images. Every (n, init) is run for several seeds; the
table shows mean and min accuracy.

Needs the raw MNIST files under ``--root`` (torchvision layout, no download). Usage::

    OMP_NUM_THREADS=1 python benchmarks/init_mnist.py --seeds 2                                  # ~4 min
    OMP_NUM_THREADS=1 python benchmarks/init_mnist.py --seeds 2 --depth 3 --train-samples 10000  # ~1.5 min
    python benchmarks/init_mnist.py --device cuda                                                 # on a GPU

``--record NAME`` writes the table as ``benchmarks/results/NAME.json`` (:mod:`results`).

The deeper network separates the inits clearly: flat (``constant``) links pass no gradient to the layers
before them at the first step, so the deeper the network, the longer it stalls.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from common import format_table
from results import record
from torch import nn
from torchvision.datasets import MNIST

import hol.layers
from hol.layers.init import INITS


def load_mnist(root: str, train: bool, device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Images flattened to ``[N, 784]``, pixels scaled to ``[-1, 1]``, and labels ``[N]``, on ``device``."""
    dataset = MNIST(root=root, train=train, download=False)
    images = dataset.data.reshape(len(dataset.data), -1).float() / 127.5 - 1
    return images.to(device), dataset.targets.to(device)


def network(init: str, n: int, segments: int, hidden: int, depth: int) -> nn.Module:
    """``depth`` hidden layers of width ``hidden``, each followed by ``max_abs``, then the output layer."""
    layers, width = [], 784
    for _ in range(depth):
        layers += [hol.layers.fc("continuous", width, hidden, n=n, segments=segments, init=init),
                   hol.layers.norm("max_abs", hidden)]
        width = hidden
    layers.append(hol.layers.fc("continuous", width, 10, n=n, segments=segments, init=init))
    return nn.Sequential(*layers)


def train_and_test(model: nn.Module, train, test, *, batch_size: int, lr: float, seed: int) -> float:
    """One pass of Adam over ``train``; returns the accuracy on ``test``."""
    images, labels = train
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed)).to(images.device)
    model.train()
    for start in range(0, len(images), batch_size):
        batch = order[start:start + batch_size]
        loss = nn.functional.cross_entropy(model(images[batch]), labels[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        predictions = torch.cat([model(chunk).argmax(-1) for chunk in test[0].split(2000)])
    return (predictions == test[1]).float().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", default=str(Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))
    parser.add_argument("--n", type=lambda s: [int(v) for v in s.split(",")], default=[3, 5])
    parser.add_argument("--segments", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=100)
    parser.add_argument("--depth", type=int, default=1, help="number of hidden layers")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--train-samples", type=int, default=None, help="default: all 60 000")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--record", metavar="NAME", help="write the table to benchmarks/results/NAME.json")
    args = parser.parse_args()

    train = load_mnist(args.root, train=True, device=args.device)
    test = load_mnist(args.root, train=False, device=args.device)
    if args.train_samples is not None:
        train = (train[0][:args.train_samples], train[1][:args.train_samples])
    description = (f"MNIST: {len(train[0])} training samples (1 epoch), {len(test[0])} test samples; "
                   f"784 -> {args.depth} x {args.hidden} -> 10 continuous, segments={args.segments}, "
                   f"max_abs between layers, Adam lr={args.lr}, batch {args.batch_size}, {args.seeds} seeds, "
                   f"{args.device}, {torch.get_num_threads()} threads")
    print(description)
    rows = []
    for n in args.n:
        for init in INITS:
            accuracies, start = [], time.perf_counter()
            for seed in range(args.seeds):
                torch.manual_seed(seed)
                model = network(init, n, args.segments, args.hidden, args.depth).to(args.device)
                accuracies.append(train_and_test(model, train, test, batch_size=args.batch_size, lr=args.lr,
                                                 seed=seed))
            rows.append((n, init, 100 * statistics.mean(accuracies), 100 * min(accuracies),
                         " ".join(f"{100 * a:.2f}" for a in accuracies),
                         (time.perf_counter() - start) / args.seeds))
            print(f"n={n} init={init}: test accuracy {rows[-1][4]} %", flush=True)
    columns = ("n", "init", "mean %", "min %", "per seed %", "s/run")
    print(format_table(columns, rows))
    if args.record:
        record(args.record, "Test accuracy by init", columns, rows, description + ".", device=args.device)


if __name__ == "__main__":
    main()
