"""The local launcher: the cells' commands as subprocesses of the runner, at most `max_parallel` at once.

One thread polls the children (no thread per cell). Each child gets its own process group and dies with the
runner (Linux `PR_SET_PDEATHSIG`), so a killed runner leaves no orphan writing into a cell's staging folder;
SIGINT / SIGTERM stop the children first. A cell whose attempt was interrupted is pending on the next run. With
N cells at once, each gets this machine's CPUs / N threads unless `OMP_NUM_THREADS` is set (`local_env`): N
processes each using every core slow one another down several times over (the threads wait on one another).
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import time
from typing import Callable, Iterable, Mapping, Sequence

from .cells import Attempt, CellState, SuiteDirs, cell_env, finish_attempt, start_attempt
from .spec import Cell

POLL_S = 0.05
_PR_SET_PDEATHSIG = 1


class Interrupted(Exception):
    """The runner got SIGINT / SIGTERM; its running cells were stopped and are pending."""


def _die_with(parent: int) -> Callable[[], None]:
    def preexec() -> None:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the runner died before prctl took effect
            os._exit(1)
    return preexec


def local_env(env: Mapping[str, str], max_parallel: int) -> dict[str, str]:
    """A local cell's environment (`cell_env`), with `OMP_NUM_THREADS` = usable CPUs // `max_parallel` (≥ 1) when
    more than one cell runs at once and neither this environment nor the spec's `env` sets it."""
    environment = cell_env(env)
    if max_parallel > 1 and "OMP_NUM_THREADS" not in environment:
        environment["OMP_NUM_THREADS"] = str(max(1, len(os.sched_getaffinity(0)) // max_parallel))
    return environment


def run_local(cells: Sequence[Cell], dirs: SuiteDirs, env: Mapping[str, str], max_parallel: int,
              on_change: Callable[[Mapping[str, CellState], int], None]) -> dict[str, CellState]:
    """Run `cells` (pending or failed ones) and return their new states. `on_change(states of the running and
    finished cells, finished count)` is called as states change and about every second."""
    if max_parallel < 1:
        raise ValueError(f"--max-parallel must be ≥ 1, got {max_parallel}")
    queue = list(cells)
    running: dict[str, tuple[Cell, Attempt, subprocess.Popen]] = {}
    states: dict[str, CellState] = {}
    environment = local_env(env, max_parallel)
    previous = {sig: signal.signal(sig, _raise_interrupted) for sig in (signal.SIGINT, signal.SIGTERM)}
    finished, last_tick = 0, 0.0
    try:
        while queue or running:
            changed = False
            while queue and len(running) < max_parallel:
                cell = queue.pop(0)
                attempt = start_attempt(cell, dirs)
                with open(attempt.log, "wb") as log:
                    proc = subprocess.Popen(attempt.command, stdout=log, stderr=subprocess.STDOUT, env=environment,
                                            preexec_fn=_die_with(os.getpid()), start_new_session=True)
                running[cell.id] = (cell, attempt, proc)
                states[cell.id] = CellState("running", f"attempt {attempt.number}", attempt.log)
                changed = True
            for cell_id, (cell, attempt, proc) in list(running.items()):
                if proc.poll() is not None:
                    states[cell_id] = finish_attempt(cell, dirs, attempt, proc.returncode)
                    del running[cell_id]
                    finished, changed = finished + 1, True
            now = time.monotonic()
            if changed or now - last_tick > 1.0:
                on_change(states, finished)
                last_tick = now
            time.sleep(POLL_S)
    except Interrupted as err:
        _stop(running.values())
        for cell_id, (_, attempt, _) in running.items():
            states[cell_id] = CellState("pending", f"attempt {attempt.number} stopped ({err})", attempt.log)
        on_change(states, finished)
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return states


def _raise_interrupted(signum: int, frame: object) -> None:
    raise Interrupted(signal.Signals(signum).name)


def _stop(running: Iterable[tuple[Cell, Attempt, subprocess.Popen]], grace: float = 5.0) -> None:
    """SIGTERM every running cell's process group, SIGKILL what is left after `grace` seconds."""
    procs = [proc for _, _, proc in running]
    for proc in procs:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    for proc in procs:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
