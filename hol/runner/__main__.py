"""``python -m hol.runner train|eval ...``: the ``hol`` command, also what Lightning's DDP runs in its
other processes.

Run as a file (``python .../hol/runner/__main__.py``), it drops the package's own folder from ``sys.path``,
where its modules (``hol/runner/data.py``, ...) would shadow top-level ones, and imports the installed
``hol``.
"""
import sys

if not __package__:
    sys.path.pop(0)

from hol.runner.cli import main

main()
