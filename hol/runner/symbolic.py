"""``symbolic(cfg)``: the ``hol symbolic`` command, a trained network read as a formula.

The steps, each a library function (no step of its own here): load the checkpoint
(:meth:`~hol.runner.lightning_module.HolModule.from_checkpoint`), rebuild its data (a formula's,
``data=function``/``xor``: the training inputs and the test set), prune on the training inputs
(:func:`hol.prune.prune`), fit every remaining link (:func:`hol.symbolic.fit_network`), make the links with a
fit of R² ≥ ``min_r2`` symbolic (:func:`hol.symbolic.fix_symbolic`) and train their constants by L-BFGS on
the training data, write the formula (:func:`hol.symbolic.formula`) and simplify it within ``tolerance`` on
the test inputs (:func:`hol.symbolic.simplify_formula`).

Results: the metrics ``symbolic/rmse`` (the formula's test RMSE; absent where links stay numeric),
``symbolic/network_rmse`` (the checkpoint's network's), ``symbolic/pruned_max_change``; ``symbolic.json`` in
the checkpoint's run folder (the folder above ``checkpoints/``): ``formula`` (text sympy parses, in the data's
variable names, or ``null`` with ``numeric_links`` naming the links no candidate fits), ``variables``,
``rmse``, ``network_rmse``, ``pruning`` (the variables, links and units removed, the largest change) and per
link its fit and R² (``links``); and a TensorBoard image per
layer of its links with their fits, under ``tensorboard/symbolic/`` in that folder (beside the training's
events: ``tensorboard --logdir <run>`` shows both).
"""
from __future__ import annotations

from pathlib import Path
from typing import cast

import hydra
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import TensorDataset
from torch.utils.tensorboard import SummaryWriter

from .. import prune as pruning
from ..checks import check_int, check_number
from ..layers import HighOrderLinear
from ..networks import MLP
from ..symbolic import (
    MIN_R2,
    LinkFit,
    evaluate,
    fit_network,
    fix_symbolic,
    formula,
    formula_string,
    simplify_formula,
)
from ..symbolic.links import layer_inputs
from .data import SyntheticDataModule
from .lightning_module import HolModule
from .optimizers import ScaledLBFGS
from .plots import symbolic_links_figure
from .records import FINISHED, METRICS_FILE, write_json

RESULT_FILE = "symbolic.json"


def run_folder(checkpoint: Path) -> Path:
    """The run folder of a checkpoint: the folder above ``checkpoints/``, else the checkpoint's own."""
    return checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent


def _data(module: HolModule) -> SyntheticDataModule:
    """The checkpoint's formula data in float64, its splits drawn (``ValueError`` for other data)."""
    data_cfg = OmegaConf.create(module.hparams.get("data_config") or {})
    datamodule = hydra.utils.instantiate(data_cfg, dtype="float64") if data_cfg else None
    if not isinstance(datamodule, SyntheticDataModule):
        raise ValueError("hol symbolic reads networks trained on a formula (data=function or xor); this "
                         f"checkpoint's data is {data_cfg.get('_target_', 'unknown')}")
    datamodule.setup("fit")
    return datamodule


def _refit(net: MLP, inputs: torch.Tensor, targets: torch.Tensor, iterations: int) -> None:
    """Train ``net``'s parameters (its symbolic constants, and the numeric links left) by L-BFGS on the
    training data, in place."""
    if iterations == 0:
        return
    # the loss divided by its first value: the symbolic constants start within rounding of the network, where
    # torch's absolute thresholds would stop L-BFGS at once (ScaledLBFGS)
    optimizer = ScaledLBFGS(net.parameters(), max_iter=iterations, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-12, tolerance_change=1e-14)

    def closure():
        optimizer.zero_grad()
        loss = (net(inputs) - targets).square().mean()
        loss.backward()
        return loss

    optimizer.step(closure)


def _rmse(values: torch.Tensor, targets: torch.Tensor) -> float:
    return float((values.reshape(targets.shape) - targets).square().mean().sqrt())


def _link_record(key: tuple[int, int, int], fit: LinkFit, min_r2: float) -> dict:
    layer, output, input_ = key
    return {"layer": layer, "output": output, "input": input_, "function": fit.name, "a": fit.a, "b": fit.b,
            "c": fit.c, "d": fit.d, "r2": fit.r2, "symbolic": fit.r2 >= min_r2}


def symbolic(cfg: DictConfig) -> dict[str, float]:
    """Read the checkpoint ``cfg.ckpt_path`` as a formula (module docstring); return the metrics."""
    path = Path(str(cfg.get("ckpt_path") or ""))
    if not path.is_file():
        raise ValueError(f"ckpt_path must name a checkpoint file, got {cfg.get('ckpt_path')!r}")
    threshold = check_number("prune.threshold", cfg.prune.threshold, 0)
    min_r2 = check_number("min_r2", cfg.get("min_r2", MIN_R2), 0, 1, above=True)
    iterations = check_int("refit_iterations", cfg.refit_iterations, 0)
    tolerance = check_number("tolerance", cfg.tolerance, 0)
    library = None if cfg.get("library") is None else list(cfg.library)
    module = HolModule.from_checkpoint(str(path))
    net = module.net.double().eval()
    if not isinstance(net, MLP):
        raise ValueError(f"hol symbolic reads an MLP, and {path} holds a {type(net).__name__}")
    datamodule = _data(module)
    train_x, train_y = (tensor.double() for tensor in cast(TensorDataset, datamodule.train_set).tensors)
    test_x, test_y = (tensor.double() for tensor in cast(TensorDataset, datamodule.test_set).tensors)
    variables = list(datamodule.names)

    pruned_module, report = pruning.prune(net, train_x, threshold=threshold, score=cfg.prune.score)
    pruned = cast(MLP, pruned_module)  # the pruned copy of an MLP is an MLP
    fits = fit_network(pruned, train_x, library)
    with torch.no_grad():
        network_rmse = _rmse(net(test_x), test_y)
    numeric = {key: fit for key, fit in fits.items() if fit.r2 < min_r2}
    result: dict = {"variables": variables, "network_rmse": network_rmse,
                    "pruning": {"threshold": threshold, "score": cfg.prune.score,
                                "inputs_removed": [variables[i] for i in report.inputs_removed],
                                "links_removed": report.links_removed,
                                "units_removed": {str(k): v for k, v in report.units_removed.items()},
                                "max_change": report.max_change},
                    "links": [_link_record(key, fit, min_r2) for key, fit in sorted(fits.items())]}
    metrics = {"symbolic/network_rmse": network_rmse, "symbolic/pruned_max_change": report.max_change}
    if numeric:
        result |= {"formula": None, "rmse": None,
                   "numeric_links": [{"layer": k[0], "output": k[1], "input": k[2], "best": fit.name,
                                      "r2": fit.r2} for k, fit in sorted(numeric.items())]}
    else:
        fixed = fix_symbolic(pruned, fits, min_r2=min_r2)
        _refit(fixed, train_x, train_y, iterations)
        [expression] = formula(fixed, variables, fits, min_r2=min_r2)
        expression = simplify_formula(expression, variables, test_x, tolerance=tolerance)
        rmse = _rmse(evaluate(expression, variables, test_x), test_y)
        result |= {"formula": formula_string(expression), "rmse": rmse}
        metrics["symbolic/rmse"] = rmse
    folder = run_folder(path)
    write_json(folder / RESULT_FILE, result)
    _log_links(folder / "tensorboard" / "symbolic", pruned, fits, layer_inputs(pruned, train_x))
    write_json(Path(cfg.paths.output_dir) / METRICS_FILE, {"run/status": FINISHED, **metrics})
    _print(result)
    return metrics


def _log_links(folder: Path, net: MLP, fits: dict, inputs: dict[int, torch.Tensor]) -> None:
    """A TensorBoard image per layer: its links over the inputs the layer receives, with their fits."""
    writer = SummaryWriter(str(folder))
    try:
        for index, layer in enumerate(net.layers):
            layer_fits = {(o, i): fit for (where, o, i), fit in fits.items() if where == index}
            if layer_fits and index in inputs and isinstance(layer, HighOrderLinear):
                writer.add_figure(f"symbolic/layer{index}", symbolic_links_figure(layer, layer_fits,
                                                                                  inputs[index]))
    finally:
        writer.close()


def _print(result: dict) -> None:
    if result["formula"] is None:
        links = ", ".join(f"({link['layer']}, {link['output']}, {link['input']}) best {link['best']} "
                          f"at 1 - R² = {1 - link['r2']:.2g}" for link in result["numeric_links"])
        print(f"no formula: {len(result['numeric_links'])} link(s) fit no candidate well enough: {links}")
    else:
        print(f"formula: {result['formula']}")
        if result["rmse"] > result["network_rmse"]:
            print(f"the formula's test RMSE, {result['rmse']:.3g}, is above the network's, "
                  f"{result['network_rmse']:.3g}: a stricter min_r2 leaves the links that cause it numeric")
