"""What the runner shows: the live progress line, the dry-run listing, the temp files it removed, and at the end the
spec's paper-shaped tables and the failed cells with their logs.

Tables go through `benchmarks.table`'s public API only (`build_tables`, `render`), over the records of this
spec's done cells (records of cells the spec no longer has — another checkpoint, another setting — stay on disk
and out of the tables).
"""
from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path
from typing import Iterable, Mapping, Sequence, TextIO

from contracts.fileio import atomic_write_text, remove_orphaned_temps

from .cells import CellState, SuiteDirs, command
from .spec import Suite


class Progress:
    """`[suite] 12/40 done · 2 running · 1 failed · 25 pending · 3.2 cells/min · ETA 8 min`: rewritten in place on
    a terminal, printed when it changes (at most every `every` s) otherwise."""

    def __init__(self, total: int, stream: TextIO = sys.stdout, every: float = 10.0) -> None:
        self.total, self.stream, self.every = total, stream, every
        self.start = time.monotonic()
        self.finished_here = 0
        self.last_text, self.last_print = "", 0.0
        self.tty = stream.isatty()

    def show(self, counts: Mapping[str, int], *, finished_here: int, force: bool = False) -> None:
        """Print the line for `counts` (state → number of cells); `finished_here`: cells this run completed."""
        self.finished_here = finished_here
        elapsed = time.monotonic() - self.start
        rate = finished_here / elapsed * 60 if elapsed > 0 and finished_here else 0.0
        left = counts.get("pending", 0) + counts.get("running", 0)
        eta = f"ETA {_duration(left / rate * 60)}" if rate else "ETA —"
        text = (f"[suite] {counts.get('done', 0)}/{self.total} done · {counts.get('running', 0)} running · "
                f"{counts.get('failed', 0)} failed · {counts.get('pending', 0)} pending · {rate:.1f} cells/min · "
                f"{eta}")
        now = time.monotonic()
        if self.tty:
            self.stream.write("\r" + text.ljust(len(self.last_text)))
        elif force or (text != self.last_text and now - self.last_print >= self.every):
            self.stream.write(text + "\n")
        else:
            return
        self.stream.flush()
        self.last_text, self.last_print = text, now

    def close(self) -> None:
        if self.tty and self.last_text:
            self.stream.write("\n")
            self.stream.flush()


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min" if seconds < 7200 else \
        f"{seconds / 3600:.1f} h"


def print_dry_run(suite: Suite, dirs: SuiteDirs, states: Mapping[str, CellState],
                  stream: TextIO = sys.stdout) -> None:
    """Every cell: its state and where its records are (or why not), then its exact command."""
    for cell in suite.cells:
        state = states[cell.id]
        where = dirs.records(cell) if cell.type.record_task else dirs.work(cell) / cell.type.product
        stream.write(f"{cell.id}: {state.state} — {state.detail if state.state != 'done' else where}\n")
        if state.log:
            stream.write(f"    log: {state.log}\n")
        if state.state != "blocked":
            stream.write(f"    $ {shlex.join(command(cell, dirs))}\n")
    counts = count(states.values())
    stream.write(f"{len(suite.cells)} cells: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + "\n")


def removed_temps(removed: Sequence[Path], dirs: SuiteDirs, stream: TextIO = sys.stdout) -> None:
    """`[suite] removed 2 temp files of interrupted writes: cells/<id>/.status.json.k2j4.tmp, ...` (if any)."""
    if removed:
        stream.write(f"[suite] removed {len(removed)} temp files of interrupted writes: "
                     + ", ".join(str(p.relative_to(dirs.out)) for p in removed) + "\n")


def count(states: Iterable[CellState]) -> dict[str, int]:
    """State → number of cells."""
    out: dict[str, int] = {}
    for state in states:
        out[state.state] = out.get(state.state, 0) + 1
    return out


def final_report(suite: Suite, dirs: SuiteDirs, states: Mapping[str, CellState],
                 stream: TextIO = sys.stdout) -> str:
    """The spec's tables over its done cells' records (also written to OUT/tables_<spec name>.md) and the cells
    that did not finish, failed ones with their logs. Returns the tables' text."""
    from contracts.records import read_records

    from benchmarks.table import build_tables, render
    done = [cell for cell in suite.cells if states[cell.id].state == "done" and cell.type.record_task]
    text = ""
    removed_temps(remove_orphaned_temps(dirs.out, "tables_*.md"), dirs, stream)  # a kill during an earlier write
    if suite.tables and done:
        records = [rec for cell in done for rec in read_records(dirs.records(cell))]
        text = render(build_tables(records, suite.tables))
        path = dirs.out / f"tables_{suite.name}.md"
        atomic_write_text(path, text)
        stream.write(text + f"\n(tables written to {path})\n")
    unfinished = [cell for cell in suite.cells if states[cell.id].state != "done"]
    counts = count(states.values())
    stream.write(f"\n[suite] {suite.name}: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) +
                 f" of {len(suite.cells)} cells; records under {dirs.records_root}\n")
    for cell in unfinished:
        state = states[cell.id]
        log = f"\n    log: {state.log}" if state.log else ""
        stream.write(f"  {state.state:<8} {cell.id}: {state.detail}{log}\n")
    return text

