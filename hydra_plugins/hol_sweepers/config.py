"""Structured configs of hol's sweepers, registered in Hydra's ConfigStore (group ``hydra/sweeper``)."""
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore


@dataclass
class HolBasicSweeperConf:
    """Hydra's basic (grid) sweeper that also runs every job after a failure and writes a summary."""

    _target_: str = "hydra_plugins.hol_sweepers.basic_sweeper.HolBasicSweeper"
    max_batch_size: int | None = None
    params: dict[str, str] | None = None


@dataclass
class OptimConf:
    """``hydra.sweeper.optim``: the nevergrad optimizer and its budget."""

    # name in nevergrad.optimizers.registry, e.g. NGOpt, OnePlusOne, CMA, TwoPointsDE, RandomSearch
    optimizer: str = "NGOpt"
    # total number of trials (jobs)
    budget: int = 80
    # trials launched together in one batch (run in parallel by a parallel launcher)
    num_workers: int = 10
    # seed of the parametrization's random state; null: not reproducible
    seed: int | None = None
    # maximize the task's return value instead of minimizing it
    maximize: bool = False


@dataclass
class NevergradSweeperConf:
    """``hydra.sweeper`` for ``hydra/sweeper=nevergrad``.

    ``parametrization`` maps a config key to a list of choices or to an override-grammar string:
    ``interval(a,b)``, ``int(interval(a,b))``, ``tag(log, interval(a,b))``, ``choice(a,b,c)``, ``range(a,b)``
    or a plain value (kept fixed). Sweep overrides on the command line (``key=a,b,c``,
    ``'key=interval(a,b)'``) are added to it and win over it.
    """

    _target_: str = "hydra_plugins.hol_sweepers.nevergrad_sweeper.NevergradSweeper"
    optim: OptimConf = field(default_factory=OptimConf)
    parametrization: dict[str, Any] = field(default_factory=dict)


ConfigStore.instance().store(group="hydra/sweeper", name="hol_basic", node=HolBasicSweeperConf,
                             provider="hol")
ConfigStore.instance().store(group="hydra/sweeper", name="nevergrad", node=NevergradSweeperConf,
                             provider="hol")
