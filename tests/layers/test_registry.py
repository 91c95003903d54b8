"""The kind registry: one LayerKind record per kind, everything else derived from it; registering kinds."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import hol
from hol.layers import HighOrderConv, HighOrderLinear, LayerKind, kind_info
from hol.layers.registry import KINDS, LINK_OPTIONS, register_conv, register_fc


def test_every_kind_has_one_record_and_the_listings_derive_from_it():
    assert hol.layers.kinds() == sorted(name for name, kind in KINDS.items() if kind.fc is not None)
    assert hol.layers.conv_kinds() == sorted(name for name, kind in KINDS.items() if kind.conv is not None)
    for name in hol.layers.kinds():
        kind = kind_info(name)
        assert kind.name == name and kind.baseline == (kind.basis is None)
        assert kind.fc is (HighOrderLinear if kind.basis else kind.fc)
    for name in hol.layers.conv_kinds():
        assert not kind_info(name).product and kind_info(name).basis != "tensor"


@pytest.mark.parametrize(("name", "piecewise", "sparse", "options"), [
    ("continuous", True, True, {"n", "segments", "length", "extrapolation", "init", "bias", "backend"}),
    ("discontinuous_prod", True, False, {"n", "segments", "length", "extrapolation", "init", "bias",
                                         "backend", "alpha"}),
    ("polynomial", False, False, {"n", "length", "extrapolation", "init", "bias", "backend"}),
    ("fourier", False, False, {"n", "length", "init", "bias", "backend"}),
    ("polynomial_nd", False, False, {"n", "length", "extrapolation", "dims", "init", "bias", "backend"}),
    ("product", False, False, {"init", "bias", "backend", "alpha"}),
    ("relu", False, False, set()),
])
def test_what_a_kind_is(name, piecewise, sparse, options):
    kind = kind_info(name)
    assert (kind.piecewise, kind.sparse_capable, set(kind.options)) == (piecewise, sparse, options)


def test_the_options_of_a_kind_are_what_its_layer_reports():
    for name in hol.layers.kinds():
        if kind_info(name).basis is None:
            continue
        layer = hol.layers.fc(name, 2, 2, **({"dims": 2} if name == "polynomial_nd" else {}))
        assert set(layer.hparams()) - {"kind", "in_features", "out_features"} == set(kind_info(name).options)


def test_unknown_kind_lists_the_kinds():
    with pytest.raises(ValueError, match=r"unknown layer kind 'spline'; allowed: continuous, .*relu"):
        kind_info("spline")


def test_a_custom_kind_registered_by_name_takes_every_option(monkeypatch):
    monkeypatch.setattr("hol.layers.registry.KINDS", dict(KINDS))
    seen = {}

    @register_fc("scaled")
    def build(kind, in_features, out_features, **options):
        seen.update(options)
        return nn.Linear(in_features, out_features)

    assert kind_info("scaled").options == frozenset(LINK_OPTIONS) and "scaled" in hol.layers.kinds()
    net = hol.networks.MLP("scaled", 3, 2, 0, 4, n=5, segments=7)
    assert seen == {"n": 5, "segments": 7} and net(torch.zeros(1, 3)).shape == (1, 2)


def test_registering_again_warns_and_replaces(monkeypatch):
    monkeypatch.setattr("hol.layers.registry.KINDS", dict(KINDS))
    with pytest.warns(UserWarning, match="conv layer kind 'continuous' registered again"):
        register_conv("continuous")(HighOrderConv.__new__)
    with pytest.warns(UserWarning, match="layer kind 'continuous' registered again as"):
        register_fc(LayerKind("continuous", basis="polynomial"))(HighOrderLinear)
    assert kind_info("continuous").basis == "polynomial"


def test_layer_classes_refuse_kinds_without_links():
    with pytest.raises(ValueError, match=r"HighOrderLinear needs a kind with link functions; allowed: "):
        HighOrderLinear("relu", 2, 2)
    with pytest.raises(ValueError, match="unknown high-order conv kind 'product'"):
        HighOrderConv("product", 2, 2, 3)


BASELINE_KINDS = sorted(name for name, kind in KINDS.items() if kind.baseline)


@pytest.mark.parametrize("name", BASELINE_KINDS)
def test_kinds_without_links_refuse_link_options_and_unknown_keywords(name):
    """A link option has no effect on a kind without link functions: at its default it is accepted (networks
    pass network-wide options), otherwise refused, as for the high-order kinds; a misspelt keyword is refused
    instead of vanishing."""
    assert isinstance(hol.layers.fc(name, 3, 2, n=3, segments=1, backend="auto"), nn.Module)
    for option, value in (("n", 5), ("segments", 4), ("backend", "sparse"), ("extrapolation", "clamp")):
        message = rf"{option} is not an option of kind '{name}' \(it takes none of the link options\), got"
        with pytest.raises(ValueError, match=message):
            hol.layers.fc(name, 3, 2, **{option: value})
    with pytest.raises(ValueError, match=rf"unknown option segmets=4 for a layer of kind '{name}'; options:"):
        hol.layers.fc(name, 3, 2, segmets=4)
    if name in hol.layers.conv_kinds():
        with pytest.raises(ValueError, match=rf"n is not an option of kind '{name}'"):
            hol.layers.conv(name, 2, 2, 3, n=5)
