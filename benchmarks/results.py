"""The documentation's results and benchmark tables come from files: each table is a JSON file under
``benchmarks/results/``, written by the script that measured it, and rendered into the pages that show it
(``README.md`` and ``docs/*.md``, :data:`PAGES`).

A result file holds ``{"title", "command", "machine", "date", "columns", "rows", "notes"}``: the command line
that produced it, the machine (CPU model and threads, :func:`machine`), the date, the table, and notes (how it
was measured). In a page a table sits between the markers ``<!-- results: NAME -->`` and
``<!-- /results -->`` (NAME: the file's stem). ``python benchmarks/results.py`` rewrites every marked block
from its file; the test suite fails if a block differs from its file, so no table is typed by hand.

Scripts record a table with :func:`record` (usually behind a ``--record NAME`` option). ``HOL_RESULTS_DIR``
sends the files elsewhere (``benchmarks/gpu_check.sh`` collects a device's results in its output folder).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
"""The documentation: the README (the front door) and the pages of ``docs/``."""
BLOCK = re.compile(r"(<!-- results: (?P<name>[\w.-]+) -->\n)(?P<body>.*?)(<!-- /results -->)", re.S)


def machine(device: str = "cpu") -> str:
    """This machine's CPU model and the threads torch uses, e.g. ``"AMD EPYC (2 threads)"``; for a CUDA
    ``device``, the GPU first: ``"NVIDIA H200 (CUDA 12.8), host AMD EPYC (16 threads)"``."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    threads = torch.get_num_threads()
    host = f"{model} ({threads} thread{'s' if threads != 1 else ''})"
    if torch.device(device).type == "cuda":
        return f"{torch.cuda.get_device_name(torch.device(device))} (CUDA {torch.version.cuda}), host {host}"
    return host


def record(name: str, title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], notes: str = "",
           command: str | None = None, device: str = "cpu") -> Path:
    """Write the result file ``benchmarks/results/NAME.json`` (or under ``$HOL_RESULTS_DIR``) for a table
    measured now on this machine's ``device``; ``command`` defaults to this process's command line."""
    if not re.fullmatch(r"[\w.-]+", name):
        raise ValueError(f"result name must be letters, digits, '_', '.', '-', got {name!r}")
    command = command or " ".join(["python", *[os.path.relpath(a, ROOT) if a == sys.argv[0] else a
                                               for a in sys.argv]])
    result = {"title": title, "command": command, "machine": machine(device),
              "date": datetime.date.today().isoformat(), "columns": list(columns),
              "rows": [list(row) for row in rows], "notes": notes}
    folder = Path(os.environ.get("HOL_RESULTS_DIR") or RESULTS)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(result, indent=1, allow_nan=False) + "\n")
    return path


def cell(value: Any) -> str:
    """A table cell: floats to 3 significant digits (as ``format(v, '.3g')``; from 1000 on, rounded to an
    integer), ``None`` as a dash."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.3g}"
    return str(value).replace("|", "\\|")


def render(result: dict) -> str:
    """The Markdown of a result: its table, then one line with the command, the machine and the date."""
    columns = result["columns"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in result["rows"]]
    source = f"`{result['command']}` — {result['machine']}, {result['date']}."
    notes = f" {result['notes']}" if result.get("notes") else ""
    return "\n".join(lines) + f"\n\n{source}{notes}\n"


def load(name: str) -> dict:
    return json.loads((RESULTS / f"{name}.json").read_text())


def rendered(text: str) -> str:
    """``text`` with every marked block replaced by the rendering of its result file."""
    return BLOCK.sub(lambda m: m.group(1) + render(load(m.group("name"))) + m.group(4), text)


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Rewrite the tables of the README and docs/ from benchmarks/results/.")
    parser.add_argument("--check", action="store_true", help="only report pages whose tables differ (exit 1)")
    args = parser.parse_args()
    stale = []
    for page in PAGES:
        text = page.read_text()
        new = rendered(text)
        if new != text:
            stale.append(page.relative_to(ROOT).as_posix())
            if not args.check:
                page.write_text(new)
        print(f"{len(BLOCK.findall(text))} tables in {page.relative_to(ROOT)}")
    if args.check and stale:
        raise SystemExit(f"tables differ from their files in: {', '.join(stale)}")


if __name__ == "__main__":
    main()
