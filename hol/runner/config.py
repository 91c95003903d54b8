"""Structured configs generated from the library's code, so that every default is written once, in the
code.

``layer_options``: the options of a layer, i.e. the keyword arguments of :class:`hol.layers.HighOrderLinear`
(the union of what every kind takes) with their types and defaults, plus ``kind``. ``conf/train.yaml`` puts
it under ``layer`` before the chosen ``conf/layer/<kind>.yaml``, which then only names its kind and what it
changes. Being typed, it rejects ``layer.n=abc`` and unknown keys such as ``+layer.colour=red``.

:func:`register_configs` stores these in Hydra's ConfigStore (:func:`hol.runner.cli.config_dir` calls it);
:func:`config_folder` is where the shipped configs are; :func:`plain_dict` a config node as plain Python;
:func:`override_key` the key a command-line override sets.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import typing
from importlib.resources import files
from pathlib import Path
from typing import Any, cast

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from ..layers import HighOrderLinear
from .folders import register_resolver

NOT_CONFIGURABLE = ("kind", "in_features", "out_features", "device", "dtype")
"""Arguments of the layer that are no layer options: the kind (named by the config group), sizes (the
network's) and where the parameters live (the trainer's)."""


def layer_options_schema() -> type:
    """A dataclass ``LayerOptions`` with ``kind: str`` and one field per option of
    :class:`hol.layers.HighOrderLinear`, typed and defaulted as its signature."""
    hints = typing.get_type_hints(HighOrderLinear.__init__)
    fields: list[tuple] = [("kind", str)]
    for name, parameter in inspect.signature(HighOrderLinear).parameters.items():
        if name not in NOT_CONFIGURABLE:
            fields.append((name, hints[name], dataclasses.field(default=parameter.default)))
    return dataclasses.make_dataclass("LayerOptions", fields)


def register_configs() -> None:
    """Store the generated configs (``layer_options``) in Hydra's ConfigStore, and make the configs'
    resolver ``hol_new_folder`` (:mod:`hol.runner.folders`) known."""
    ConfigStore.instance().store(name="layer_options", node=layer_options_schema(), provider="hol")
    register_resolver()


def config_folder() -> Path:
    """The shipped configs (``conf/``, installed as the package ``hol.conf``; the checkout's ``conf/`` where
    hol runs from a source tree that is not installed, e.g. on ``PYTHONPATH``)."""
    if importlib.util.find_spec("hol.conf") is None:
        return Path(__file__).resolve().parents[2] / "conf"
    return Path(str(files("hol.conf")))


def override_key(override: str) -> str:
    """The config key a command-line override sets: ``+model.widths=[4]`` -> ``model.widths``."""
    return override.lstrip("+~").split("=", 1)[0]


def plain_dict(node: DictConfig) -> dict[str, Any]:
    """A mapping config node, resolved, as plain Python dicts and lists (``OmegaConf.to_container``, whose
    return type covers every kind of node)."""
    return cast(dict[str, Any], OmegaConf.to_container(node, resolve=True))
