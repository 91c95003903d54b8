"""``python -m hol train|eval ...``: the ``hol`` command, also what Lightning's DDP runs in its other processes.

Run as a file (``python .../hol/__main__.py``), it drops the package's own folder from ``sys.path``, where its
modules (``hol/data.py``, ...) would shadow top-level ones, and imports the installed ``hol``.
"""
import sys

if not __package__:
    sys.path.pop(0)

from hol.cli import main

main()
