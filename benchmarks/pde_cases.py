"""The PDE presets and their tanh-MLP baselines, as the ``hol train`` overrides that run them: one table for
``run_pde.py`` (accuracy) and ``bench_pde.py`` (step time).

Each case names its preset, the overrides beyond ``experiment=<preset>`` and the metric the issue judges it
by; a baseline is the standard PINN network (a tanh MLP, ``layer=tanh``) with about the preset's number of
parameters, run the same way.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hol.layers import kind_info

NONSEPARABLE_EXACT = "(1-x**2)*(1-y**2)*exp(x*y)"
NONSEPARABLE_FORCING = ("(x**4*y**2-x**4+4*x**3*y+x**2*y**4-2*x**2*y**2+3*x**2+4*x*y**3-8*x*y-y**4+3*y**2-4)"
                        "*exp(x*y)")
"""A Poisson solution that is no product of functions of x and y, and its Laplacian (sympy)."""


@dataclass(frozen=True)
class Case:
    name: str
    preset: str
    overrides: tuple[str, ...]
    metric: str
    what: str

    def arguments(self) -> list[str]:
        """The ``hol train`` arguments of this case."""
        return [f"experiment={self.preset}", *self.overrides]


CASES = (
    Case("poisson", "poisson", (), "test/mse", "KAN paper's Poisson problem, hol preset"),
    Case("poisson_tanh", "poisson", ("layer=tanh", "model.hidden_layers=1", "model.hidden_width=5"),
         "test/mse", "KAN paper's Poisson problem, tanh MLP 2-5-5-1"),
    Case("poisson_nonseparable", "poisson",
         (f'pde.forcing="{NONSEPARABLE_FORCING}"', f'pde.exact="{NONSEPARABLE_EXACT}"',
          "model.hidden_width=6", "layer.n=12"),
         "test/mse", "u = (1-x²)(1-y²)e^(xy), hol preset with 6 product units"),
    Case("poisson_piecewise", "poisson", ("layer.n=8", "layer.segments=4"), "test/mse",
         "KAN paper's Poisson problem, piecewise links (S = 4), strong form only"),
    Case("poisson_piecewise_breaks", "poisson", ("layer.n=8", "layer.segments=4", "pde.weights.breaks=0.001"),
         "test/mse", "KAN paper's Poisson problem, piecewise links (S = 4), with the break-jump term"),
    Case("burgers", "burgers", (), "test/rel_l2", "Burgers ν = 0.01/π, hol preset"),
    Case("burgers_tanh", "burgers", ("layer=tanh", "model.normalization=none", "model.hidden_layers=7",
                                     "model.hidden_width=20"),
         "test/rel_l2", "Burgers ν = 0.01/π, tanh MLP 9 x 20 (Raissi et al.)"),
    Case("sod", "sod", (), "test/l1/rho", "Sod's shock tube, hol preset"),
    Case("sod_tanh", "sod", ("layer=tanh", "model.normalization=none", "model.hidden_layers=4",
                             "model.hidden_width=24", "refine=[]",
                             "trainer.max_epochs=9"),
         "test/l1/rho", "Sod's shock tube, tanh MLP 2-24-24-24-24-24-3"),
)
BY_NAME = {case.name: case for case in CASES}


def describe(net: dict[str, Any]) -> str:
    """An MLP's shape from its ``hparams()``, e.g. ``MLP 2-16-16-1: continuous n=5 S=2, output linear``
    (orders only for kinds with links)."""
    layer = net["layer"]
    hidden = net.get("widths") or [net["hidden_width"]] * (net["hidden_layers"] + 1)
    widths = [net["in_features"], *hidden, net["out_features"]]
    order = "" if kind_info(layer["kind"]).baseline else f" n={layer['n']} S={layer['segments']}"
    ends = [f"{end.split('_')[0]} {spec if isinstance(spec, str) else spec.get('kind')}"
            for end in ("input_layer", "output_layer") if (spec := net.get(end))]
    return f"MLP {'-'.join(map(str, widths))}: {layer['kind']}{order}" + "".join(f", {end}" for end in ends)
