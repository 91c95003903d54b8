"""The ``hol`` command line: Hydra configs -> data, LightningModule, Trainer; refinement stages, sweeps,
plots.

The runner builds on the library (:mod:`hol.layers`, :mod:`hol.networks`, :mod:`hol.refine`), which never
imports it. ``hol train`` / ``hol eval`` (:mod:`hol.runner.cli`) are thin over :func:`hol.runner.train.train`
and :func:`hol.runner.train.evaluate`, plain functions a test can call.
"""
