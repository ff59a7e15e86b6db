"""`run_suite`: load a spec, find which cells are done, run the others through a launcher, report.

    from benchmarks.suite import run_suite
    result = run_suite("configs/suites/demo_fmnist.py", "results", cfg_options={...})
    result.complete, result.states[cell_id].state, result.tables
"""
from __future__ import annotations

import fcntl
import fnmatch
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence, TextIO

from contracts.provenance import REPO_ROOT
from contracts.resume import ResumeError

from .cells import CellState, SuiteDirs, cell_state, remove_temps
from .local import Interrupted, run_local
from .report import Progress, count, final_report, print_dry_run, removed_temps
from .spec import SpecError, Suite, check_suite, load_suite


class SuiteFailure(RuntimeError):
    """The suite could not start: a bad spec, SLURM unreachable or refusing, OUT/slurm/jobs.json damaged or another
    run's, another runner on the same output."""


@dataclass
class SuiteResult:
    suite: Suite
    dirs: SuiteDirs
    states: dict[str, CellState]
    tables: str = ""
    interrupted: str | None = None  # the signal that stopped the local launcher

    @property
    def complete(self) -> bool:
        return all(state.state == "done" for state in self.states.values()) and not self.suite.problems


def run_suite(spec: str | Path, out: str | Path | None = None, *, launcher: str = "local", max_parallel: int = 1,
              cfg_options: Mapping[str, Any] | None = None, dry_run: bool = False,
              only: Sequence[str] | None = None, accept: bool | Sequence[str] = False,
              stream: TextIO = sys.stdout) -> SuiteResult:
    """Run (or with `dry_run` list) the cells of `spec` whose id matches `only` (fnmatch; default all). `accept`:
    the differences of OUT/slurm/jobs.json's run to accept (`contracts.resume.check_resume`; the command line's
    `--resume-anyway`)."""
    try:
        suite = load_suite(spec, cfg_options, fetch=not dry_run, strict=not dry_run)
    except SpecError as err:
        raise SuiteFailure(str(err)) from None
    if only:
        suite.cells = [c for c in suite.cells if any(fnmatch.fnmatch(c.id, p) for p in only)]
    dirs = SuiteDirs(Path(out or REPO_ROOT / "results" / "suite" / suite.name).resolve())
    states = {cell.id: cell_state(cell, dirs) for cell in suite.cells}
    if dry_run:
        check_suite(suite, strict=False)
        print_dry_run(suite, dirs, states, stream)
        if suite.problems:
            stream.write(f"{len(suite.problems)} problem(s) would stop a run:\n  " + "\n  ".join(suite.problems)
                         + "\n")
        return SuiteResult(suite, dirs, states)
    with _runner_lock(dirs.out):
        todo = [cell for cell in suite.cells if states[cell.id].state in ("pending", "failed")]
        if todo:
            try:
                check_suite(suite)
            except SpecError as err:
                raise SuiteFailure(str(err)) from None
        stream.write(f"[suite] {suite.name}: {len(suite.cells)} cells, {len(suite.cells) - len(todo)} done, "
                     f"{len(todo)} to run ({launcher}) → {dirs.out}\n")
        for cell in todo:
            if states[cell.id].unusable:
                stream.write(f"[suite] {cell.id}: {states[cell.id].detail}\n")
        stream.flush()
        interrupted = None
        if todo:
            shown = {**states, **{cell.id: CellState("pending") for cell in todo}}
            progress = Progress(len(suite.cells), stream)

            def on_change(changed: Mapping[str, CellState], finished: int) -> None:
                shown.update(changed)
                progress.show(count(shown.values()), finished_here=finished)

            try:
                if launcher == "local":
                    removed_temps(remove_temps(dirs), dirs, stream)
                    try:
                        run_local(todo, dirs, suite.env, max_parallel, on_change)
                    except Interrupted as err:  # the running cells were stopped: pending on the next run
                        interrupted = str(err)
                elif launcher == "slurm":
                    from .slurm import SlurmError, run_slurm
                    try:
                        run_slurm(suite, todo, dirs, on_change, stream, accept=accept)
                    except (SlurmError, ResumeError) as err:
                        raise SuiteFailure(str(err)) from None
                else:
                    raise SuiteFailure(f"unknown launcher {launcher!r}; use local or slurm")
            finally:
                progress.show(count(shown.values()), finished_here=progress.finished_here, force=True)
                progress.close()
        states = _final_states(suite, dirs, shown if todo else {})
        tables = final_report(suite, dirs, states, stream)
        if interrupted:
            stream.write(f"[suite] interrupted by {interrupted}: the cells it stopped are pending on the next run\n")
    return SuiteResult(suite, dirs, states, tables, interrupted)


def _final_states(suite: Suite, dirs: SuiteDirs, told: Mapping[str, CellState]) -> dict[str, CellState]:
    """Each cell's state as its files say; where they say pending, the launcher's reason when it gave one (a
    cancelled job, an interrupted attempt)."""
    states = {}
    for cell in suite.cells:
        state, said = cell_state(cell, dirs), told.get(cell.id)
        states[cell.id] = said if state.state == "pending" and said and said.state == "pending" and said.detail \
            else state
    return states


@contextmanager
def _runner_lock(out: Path) -> Iterator[None]:
    """One runner per output root (a second one would run the same cells twice); released when the runner ends,
    however it ends."""
    out.mkdir(parents=True, exist_ok=True)
    fd = os.open(out / ".runner.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            raise SuiteFailure(f"another runner (pid {holder}) is working on {out}; wait for it or stop it") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)
