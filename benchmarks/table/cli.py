"""Paper-shaped comparison tables from result records (contract 3): ours beside the papers' numbers.

    python -m benchmarks.table [--records DIR] [--layout tab4 tab5 tab6 dmae ade20k fig5 distill other | all]
                               [--format md|csv|latex] [--diagnostics] [--out FILE]

Reads records only, never re-runs anything (join rules: the package doc).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from contracts.fileio import atomic_write_text
from contracts.records import DEFAULT_RESULTS_DIR, read_records

from .build import build_tables
from .layouts import LAYOUT_NAMES
from .render import render


def main(argv: Sequence[str] | None = None) -> str:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.table", description=__doc__.splitlines()[0])
    parser.add_argument("--records", default=str(DEFAULT_RESULTS_DIR), help="results directory (recursive)")
    parser.add_argument("--format", default="md", choices=["md", "csv", "latex"])
    parser.add_argument("--layout", nargs="+", default=["all"], choices=[*LAYOUT_NAMES, "all"])
    parser.add_argument("--diagnostics", action="store_true", help="add the diagnostics table (best_c, fit_s, ...)")
    parser.add_argument("--out", default=None, help="write here (atomically) as well as printing")
    args = parser.parse_args(argv)
    records_dir = Path(args.records)
    if not records_dir.is_dir():
        parser.error(f"--records {records_dir}: no such directory")
    text = render(build_tables(read_records(records_dir), args.layout, diagnostics=args.diagnostics), args.format)
    if args.out:
        atomic_write_text(args.out, text)
    sys.stdout.write(text)
    return text
