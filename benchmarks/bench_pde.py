"""Step time of the PDE presets against their tanh-MLP baselines: one physics-informed training step (the
loss of a full training batch, with the residual's derivatives taken by autograd, and its backward), as the
preset's L-BFGS evaluates it, on the preset's own collocation points and in its dtype.

Usage::

    python benchmarks/bench_pde.py [--presets poisson burgers sod] [--rounds 7] [--threads 1] [--record NAME]

Cases are interleaved (:func:`common.interleaved_medians`); the table gives medians and each preset's ratio to
its baseline (``pde_cases.py``: a tanh MLP of about the preset's number of parameters).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from hol.runner.cli import config_dir
from hol.runner.tasks import PhysicsInformed
from hol.runner.train import DOUBLE_PRECISIONS, build_datamodule, build_net

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import interleaved_medians, report  # a sibling script, run as a file
from pde_cases import BY_NAME, Case, describe


def step_of(case: Case, points: int | None) -> tuple[callable, torch.nn.Module]:
    """A closure running one training step of ``case`` (zeroed gradients, loss, backward), and its network."""
    overrides = [*case.arguments(), *([f"data.interior={points}"] if points else [])]
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    datamodule = build_datamodule(cfg)
    net = build_net(cfg.model, datamodule)
    if cfg.trainer.precision in DOUBLE_PRECISIONS:
        net = net.double()
    task = PhysicsInformed(datamodule.equation.hparams())
    batch = next(iter(datamodule.train_dataloader()))

    def step() -> None:
        net.zero_grad(set_to_none=True)
        task.step(net, batch).backward()

    return step, net


def parameters(net: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in net.parameters() if parameter.requires_grad)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["poisson", "burgers", "sod"],
                        choices=["poisson", "burgers", "sod"])
    parser.add_argument("--points", type=int, default=None, help="interior points (default: the preset's)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--record", metavar="NAME", help="write benchmarks/results/NAME.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for preset in args.presets:
        cases = {name: step_of(BY_NAME[name], args.points) for name in (preset, f"{preset}_tanh")}
        times = interleaved_medians({name: step for name, (step, _) in cases.items()}, rounds=args.rounds)
        hol_ms, tanh_ms = 1e3 * times[preset], 1e3 * times[f"{preset}_tanh"]
        rows.append([f"`{preset}`", describe(cases[preset][1].hparams()), parameters(cases[preset][1]),
                     round(hol_ms, 2), parameters(cases[f"{preset}_tanh"][1]), round(tanh_ms, 2),
                     round(hol_ms / tanh_ms, 2)])
    columns = ["preset", "hol network", "coefficients", "hol step (ms)", "tanh MLP parameters",
               "tanh MLP step (ms)", "hol / tanh"]
    report(args.record, "Physics-informed step time: hol presets against tanh MLPs", columns, rows,
           f"One training step (loss with the residual's autograd derivatives, and its backward) on the "
           f"preset's training batch{f' of {args.points} interior points' if args.points else ''}, in its "
           f"dtype; median of {args.rounds} interleaved rounds, {args.threads} thread(s); the baseline is "
           "the tanh MLP of `benchmarks/pde_cases.py`")


if __name__ == "__main__":
    main()
