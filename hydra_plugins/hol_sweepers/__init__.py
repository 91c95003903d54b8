"""hol's Hydra sweepers: ``hydra/sweeper=hol_basic`` (grid sweeps with a summary) and
``hydra/sweeper=nevergrad``.

Hydra discovers this package through the ``hydra_plugins`` namespace package; the modules whose names do not
start with ``_`` are imported at every Hydra start, so they import nothing heavy (nevergrad, torch) at module
level.
"""
