"""Reading a trained network: symbolic links and the formula it computes (Liu et al. 2024, "KAN:
Kolmogorov-Arnold Networks", arXiv:2404.19756, §2.5.1-§2.5.2, as pykan does it).

Each module has one job:

* :mod:`~hol.symbolic.library`: the candidate functions (``x``, ``x**2``, ``exp``, ``sin``, ``log``, ...;
  one's own as :class:`Candidate`);
* :mod:`~hol.symbolic.fit`: one link's best fit ``a f(b x + c) + d`` with its R² (:func:`fit_link`);
* :mod:`~hol.symbolic.links`: the links of a layer or network sampled and fitted (:func:`fit_layer`,
  :func:`fit_network`);
* :mod:`~hol.symbolic.fix`: links fixed to their symbolic form with trainable constants
  (:class:`SymbolicLinear`, :func:`fix_symbolic`);
* :mod:`~hol.symbolic.formula`: the formula of an MLP in sympy (:func:`formula`);
* :mod:`~hol.symbolic.simplify`: its constants rounded within a tolerance (:func:`simplify_formula`);
* :mod:`~hol.symbolic.evaluate`: its values on tensors and its text (:func:`evaluate`,
  :func:`formula_string`, :func:`parse_formula`).

The path from a trained MLP to its formula::

    fits = fit_network(net)                              # {(layer, output, input): LinkFit}, each with R²
    symbolic = fix_symbolic(net, fits)                   # optional: train its constants a few L-BFGS steps
    [f] = formula(symbolic, ["x", "y"])                  # refuses links left numeric, naming them
    f = simplify_formula(f, ["x", "y"], test_inputs)     # within 1e-6 of the formula's values
    rmse = (evaluate(f, ["x", "y"], test_inputs) - test_targets.squeeze(-1)).square().mean().sqrt()

None of it imports Lightning or Hydra.
"""
from .evaluate import evaluate, formula_string, parse_formula
from .fit import MIN_R2, LinkFit, fit_candidate, fit_candidates, fit_link
from .fix import SymbolicLinear, fix_symbolic
from .formula import formula
from .library import BUILTIN, Candidate, candidates
from .links import fit_layer, fit_network
from .simplify import simplify_formula

__all__ = ["BUILTIN", "MIN_R2", "Candidate", "LinkFit", "SymbolicLinear", "candidates", "evaluate",
           "fit_candidate", "fit_candidates", "fit_layer", "fit_link", "fit_network", "fix_symbolic",
           "formula", "formula_string", "parse_formula", "simplify_formula"]
