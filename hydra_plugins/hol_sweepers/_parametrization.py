"""The nevergrad search space of a sweep, from ``hydra.sweeper.parametrization`` and command-line overrides.

Each key maps to a nevergrad parameter or stays fixed:

================================  ==========================================================
spec (config or command line)     nevergrad parameter
================================  ==========================================================
``[a, b, c]``, ``a,b,c``,          ``ng.p.Choice([a, b, c])`` (unordered)
``choice(a,b,c)``
``range(a,b[,step])``             ``ng.p.TransitionChoice`` over the range (ordered)
``interval(a,b)``                 ``ng.p.Scalar(lower=a, upper=b)``
``int(interval(a,b))``            the same with ``set_integer_casting()``
``tag(log, interval(a,b))``       ``ng.p.Log(lower=a, upper=b)`` (uniform in log a .. log b)
a plain value                     fixed: passed unchanged to every job
================================  ==========================================================

Strings use Hydra's override grammar and are parsed by Hydra's own ``OverridesParser``.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import nevergrad as ng
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import (
    ChoiceSweep,
    IntervalSweep,
    Override,
    QuotedString,
    RangeSweep,
    Transformer,
)
from omegaconf import DictConfig, ListConfig, OmegaConf

from ._batch import SweepConfigError


def _plain(value: Any) -> Any:
    """A parsed override element as a plain Python value (quoted strings become str)."""
    return value.text if isinstance(value, QuotedString) else value


@dataclass
class Dimension:
    """One tuned key: its nevergrad parameter and how a value of it is written back as an override value."""

    key: str
    parameter: ng.p.Parameter
    # for choices: the override text of each option, indexed like the options
    option_texts: list[str] | None = None

    def override(self, value: Any, index: int | None = None) -> str:
        if self.option_texts is None:
            return f"{self.key}={Transformer.str(value)}"
        assert index is not None, "a choice's override needs the index of its option"
        return f"{self.key}={self.option_texts[index]}"


def dimension_from_override(override: Override) -> Dimension | None:
    """The dimension for a parsed sweep override; None when the override is a fixed value."""
    key = override.get_key_element()
    value = override.value()
    if isinstance(value, IntervalSweep):
        # interval(a, b) always has both bounds (IntervalSweep declares them optional)
        lower, upper = cast(float, value.start), cast(float, value.end)
        if not lower < upper:
            raise SweepConfigError(f"parametrization of {key!r}: interval({lower}, {upper}) "
                                   "needs lower < upper")
        if "log" in value.tags:
            if lower <= 0:
                raise SweepConfigError(f"parametrization of {key!r}: a log interval needs lower > 0, "
                                       f"got {lower}")
            parameter = ng.p.Log(lower=lower, upper=upper)
        else:
            parameter = ng.p.Scalar(lower=lower, upper=upper)
        if isinstance(lower, int) and isinstance(upper, int):
            parameter.set_integer_casting()
        return Dimension(key, parameter)
    if isinstance(value, RangeSweep):
        options = list(value.range())
        return _choice(key, options, [Transformer.str(o) for o in options], ordered=True)
    if override.is_choice_sweep():
        if isinstance(value, ChoiceSweep) and value.shuffle:
            raise SweepConfigError(f"parametrization of {key!r}: shuffle() makes no sense for an optimizer")
        options = list(override.sweep_iterator())  # also expands glob(...) over config group options
        return _choice(key, [_plain(o) for o in options], [Transformer.str(o) for o in options],
                       ordered=False)
    return None


def _choice(key: str, options: list[Any], texts: list[str], ordered: bool) -> Dimension:
    if not options:
        raise SweepConfigError(f"parametrization of {key!r}: no options to choose from")
    parameter = ng.p.TransitionChoice(options) if ordered else ng.p.Choice(options)
    return Dimension(key, parameter, option_texts=texts)


@dataclass
class SearchSpace:
    """The tuned dimensions and the fixed overrides every job gets."""

    dimensions: dict[str, Dimension] = field(default_factory=dict)
    fixed: dict[str, str] = field(default_factory=dict)

    def parametrization(self, seed: int | None) -> ng.p.Dict:
        if not self.dimensions:
            raise SweepConfigError("nothing to tune: hydra.sweeper.parametrization is empty and no sweep "
                                   "override (e.g. 'optimizer.lr=interval(0.001,0.1)' or layer.n=2,3,4) "
                                   "was given")
        parametrization = ng.p.Dict(**{key: d.parameter for key, d in self.dimensions.items()})
        if seed is not None:
            parametrization.random_state.seed(seed)
        return parametrization

    def values(self, candidate: ng.p.Dict) -> dict[str, Any]:
        """The candidate's value of every dimension as plain Python numbers/strings."""
        return {key: _python(candidate[key].value) for key in self.dimensions}

    def overrides(self, candidate: ng.p.Dict) -> list[str]:
        """The job overrides for a candidate: the fixed ones, then one per dimension."""
        tuned = []
        for key, dimension in self.dimensions.items():
            child = candidate[key]
            index = child.index if dimension.option_texts is not None else None
            tuned.append(dimension.override(_python(child.value), index))
        return list(self.fixed.values()) + tuned


def _python(value: Any) -> Any:
    """numpy scalars -> Python scalars (for overrides and YAML)."""
    return value.item() if hasattr(value, "item") and not isinstance(value, (list, dict, str)) else value


def build_search_space(parametrization: Mapping[str, Any], arguments: Sequence[str],
                       parser: OverridesParser) -> SearchSpace:
    """The search space from the config's parametrization and the command-line task overrides.

    Command-line entries come last and win over config entries of the same key; non-sweep command-line
    overrides (``experiment=xor``) are fixed overrides of every job.
    """
    space = SearchSpace()
    for key, spec in parametrization.items():
        _add(space, parser.parse_override(_as_override_text(str(key), spec)))
    for override in parser.parse_overrides(list(arguments)):
        _add(space, override)
    return space


def _add(space: SearchSpace, override: Override) -> None:
    key = override.get_key_element()
    space.dimensions.pop(key, None)
    space.fixed.pop(key, None)
    dimension = dimension_from_override(override)
    if dimension is None:
        assert override.input_line is not None
        space.fixed[key] = override.input_line
    else:
        space.dimensions[key] = dimension


def _as_override_text(key: str, spec: Any) -> str:
    """``key=...`` in the override grammar for a config entry: a list becomes ``choice(...)``."""
    if isinstance(spec, (DictConfig, ListConfig)):
        spec = OmegaConf.to_container(spec, resolve=True)
    if isinstance(spec, (list, tuple)):
        if not spec:
            raise SweepConfigError(f"hydra.sweeper.parametrization.{key}: the list of choices is empty")
        return f"{key}=choice({','.join(Transformer.str(o) for o in spec)})"
    if isinstance(spec, dict):
        raise SweepConfigError(f"hydra.sweeper.parametrization.{key}: expected a list of choices or an "
                               f"override string such as 'interval(0.001, 0.1)', got the mapping {spec}")
    if isinstance(spec, str):
        return f"{key}={spec}"
    return f"{key}={Transformer.str(spec)}"
