"""The suite runner's targets (issue 29), measured on the 4-cell grid configs/suites/fmnist_tiny.py:

    python -m benchmarks.suite_bench [--out DIR] [--rounds 3] [--kills 10] [--slurm auto|on|off] [--seed 0]

1. rerun of a completed grid: cells started (target 0) and the wall time of `python -m benchmarks.suite SPEC`,
   process start included (target ≤ 5 s), each round;
2. runner overhead per local cell: (the runner's wall time − the same cells' commands run directly one after the
   other) / cells, on fresh outputs and caches, the two orders alternating between rounds (target ≤ 1 s);
3. SLURM (a cluster that answers `sinfo`, or the one-node cluster of tools/slurm_local.sh started here as root):
   per cell, submission → SLURM's start time and submission → the cell's command starting, and the grid's wall
   time against the local launcher's;
4. random kills: the runner, or one of its running cells, SIGKILLed at a random moment, then the runner again,
   until at least K kills; the records must end equal (metric values) to the uninterrupted run's, with no staging
   folder or temp file left and no cell outliving a killed runner.
Prints the figures (machine, date, load) and writes them to OUT/suite_bench.json. Timings on a shared machine are
noisy: the per-round figures are printed beside the medians.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from contracts.fileio import atomic_write_text
from contracts.provenance import REPO_ROOT, machine_description

SPEC = REPO_ROOT / "configs" / "suites" / "fmnist_tiny.py"


def _runner(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "benchmarks.suite", str(SPEC), "--out", str(out), *extra]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH"))
                                                        if p)}


def _timed(cmd: Sequence[str]) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env())
    seconds = time.perf_counter() - start
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return seconds, proc.stdout


def _metrics(out: Path) -> dict[str, list[dict]]:
    return {folder.name: [{k: v for k, v in json.loads(p.read_text())["metrics"].items() if k != "fit_s"}
                          for p in sorted(folder.glob("*.json"))]
            for folder in sorted((out / "records").iterdir())}


def rerun_times(out: Path, rounds: int) -> dict[str, Any]:
    """Wall time of rerunning a completed grid, and the cells each rerun started."""
    seconds, started = [], []
    for _ in range(rounds):
        wall, text = _timed(_runner(out))
        seconds.append(wall)
        started.append(int(text.split(" to run")[0].rsplit(" ", 1)[1]))
    return {"seconds": seconds, "median_s": statistics.median(seconds), "cells_started": started}


def local_overhead(folder: Path, rounds: int) -> dict[str, Any]:
    """Per cell: its span in a serial runner run (cell.json written → records moved in) minus the same command
    run directly, on fresh outputs, the order alternating between rounds; and what the runner pays once per run:
    start-up (spawn → the first cell's command: imports, the spec's checks) and end (→ exit: the tables)."""
    from benchmarks.suite.cells import SuiteDirs, cell_env, command
    from benchmarks.suite.spec import load_suite
    suite = load_suite(SPEC)
    env = cell_env(suite.env)
    differences, startups, ends = [], [], []
    for r in range(rounds):
        direct: dict[str, float] = {}
        span: dict[str, float] = {}
        for what in (("runner", "direct") if r % 2 == 0 else ("direct", "runner")):
            out = folder / f"{what}{r}"
            if what == "direct":
                for cell in suite.cells:
                    start = time.perf_counter()
                    subprocess.run(command(cell, SuiteDirs(out)), check=True, capture_output=True, env=env)
                    direct[cell.id] = time.perf_counter() - start
                continue
            spawned = time.time()
            wall, _ = _timed(_runner(out))
            started = {c.name: (c / "cell.json").stat().st_mtime for c in (out / "cells").iterdir()}
            moved_in = {p.name: p.stat().st_ctime for p in (out / "records").iterdir()}  # the rename sets ctime
            span = {cell_id: moved_in[cell_id] - started[cell_id] for cell_id in started}
            startups.append(min(started.values()) - spawned)
            ends.append(spawned + wall - max(moved_in.values()))
        differences += [span[cell_id] - direct[cell_id] for cell_id in direct]
    return {"cells": len(suite.cells), "rounds": rounds, "per_cell_differences_s": differences,
            "median_overhead_per_cell_s": statistics.median(differences), "startup_s": startups, "end_s": ends,
            "bookkeeping_per_cell_s": bookkeeping(folder / "runner0", folder / "bookkeeping")}


def bookkeeping(done: Path, scratch: Path) -> float:
    """The runner's own work per cell, in process (start an attempt, take its records in, read the state back),
    on a copy of a done grid: the part of the overhead that the differential above cannot resolve under load."""
    from benchmarks.suite.cells import SuiteDirs, cell_state, finish_attempt, start_attempt
    from benchmarks.suite.spec import load_suite
    suite = load_suite(SPEC)
    shutil.copytree(done, scratch)
    dirs = SuiteDirs(scratch)
    start = time.perf_counter()
    for cell in suite.cells:
        attempt = start_attempt(cell, dirs)
        os.rename(dirs.records(cell), dirs.staging(cell))  # what the CLI would have written
        if finish_attempt(cell, dirs, attempt, 0).state != "done" or cell_state(cell, dirs).state != "done":
            raise RuntimeError(f"{cell.id}: not done after its records were taken in")
    return (time.perf_counter() - start) / len(suite.cells)


def _slurm_answers() -> bool:
    try:
        return subprocess.run(["sinfo", "--noheader"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _start_local_cluster(folder: Path) -> dict[str, str]:
    env = {**os.environ, "SLURM_LOCAL_DIR": str(folder), "SLURM_LOCAL_PORT": os.environ.get("SLURM_LOCAL_PORT",
                                                                                            "16917")}
    proc = subprocess.run(["bash", str(REPO_ROOT / "tools" / "slurm_local.sh"), "start"], env=env,
                          capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"tools/slurm_local.sh start: {proc.stderr.strip()}")
    os.environ["SLURM_CONF"] = proc.stdout.strip().splitlines()[-1].removeprefix("export SLURM_CONF=")
    return env


def slurm_latency(folder: Path, local_wall: float) -> dict[str, Any]:
    """The grid on SLURM: per cell, submission → SLURM start and → the cell's command starting; the wall time."""
    out = folder / "slurm"
    wall, _ = _timed(_runner(out, "--launcher", "slurm"))
    jobs = json.loads((out / "slurm" / "jobs.json").read_text())
    listing = subprocess.run(["squeue", "--noheader", "--array", "--states=all", "--format=%i|%V|%S"],
                             capture_output=True, text=True, check=True).stdout
    times = {line.split("|")[0]: line.split("|")[1:] for line in listing.splitlines() if "|" in line}
    to_slurm_start, to_command = [], []
    for cell_id, entry in jobs.items():
        submit, begin = (dt.datetime.fromisoformat(t).timestamp() for t in times[entry["job"]])
        to_slurm_start.append(begin - submit)  # SLURM's clock: whole seconds
        to_command.append((out / "cells" / cell_id / "cell.json").stat().st_mtime - entry["submitted"])
    return {"wall_s": wall, "local_wall_s": local_wall, "submit_to_slurm_start_s": to_slurm_start,
            "submit_to_command_s": to_command, "median_submit_to_command_s": statistics.median(to_command)}


def _alive(pid: int) -> bool:
    try:
        return "\tZ" not in Path(f"/proc/{pid}/status").read_text().split("State:", 1)[1].splitlines()[0]
    except FileNotFoundError:
        return False


def _children(pid: int) -> list[int]:
    return [int(p) for p in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()]


def random_kills(folder: Path, reference: dict, kills: int, seed: int) -> dict[str, Any]:
    """Kill the runner or a running cell at random moments until `kills` kills; each grid is then completed and its
    records compared with the uninterrupted run's."""
    rng = random.Random(seed)
    done_kills, grids, log = 0, [], []
    while done_kills < kills:
        out = folder / f"killed{len(grids)}"
        grid_kills = 0
        while True:
            runner = subprocess.Popen(_runner(out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      env=_env())
            if done_kills >= kills:  # enough: let this run finish the grid
                runner.wait()
                break
            target, moment = rng.choice(("runner", "cell")), rng.uniform(0.3, 12.0)
            try:
                runner.wait(moment)
                break  # the grid finished before the kill
            except subprocess.TimeoutExpired:
                pass
            cells = _children(runner.pid)
            if target == "cell":  # a moment inside a running cell: wait for one to start, then up to 3 s more
                deadline = time.monotonic() + 30
                while not cells and runner.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.05)
                    cells = _children(runner.pid)
                time.sleep(rng.uniform(0.0, 3.0))
                cells = _children(runner.pid)
                if not cells:
                    target = "runner"
            if runner.poll() is not None:
                break
            os.kill(rng.choice(cells) if target == "cell" else runner.pid, signal.SIGKILL)
            if target == "runner":
                runner.wait()
                time.sleep(0.5)
                orphans = [pid for pid in cells if _alive(pid)]
                if orphans:
                    raise RuntimeError(f"cells {orphans} outlived the killed runner")
            else:
                runner.wait()  # the runner goes on with the other cells; the killed one stays pending
            done_kills, grid_kills = done_kills + 1, grid_kills + 1
            log.append({"grid": len(grids), "at_s": round(moment, 2), "killed": target})
        leftovers = [str(p) for p in out.rglob("*") if p.name == "staging" or p.name.endswith(".tmp")]
        grids.append({"kills": grid_kills, "equal_to_uninterrupted": _metrics(out) == reference,
                      "leftovers": leftovers})
    return {"kills": done_kills, "grids": grids, "log": log,
            "all_equal": all(g["equal_to_uninterrupted"] and not g["leftovers"] for g in grids)}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.suite_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="where the figures go (suite_bench.json; default a temp folder)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the rerun and overhead timings")
    parser.add_argument("--kills", type=int, default=10, help="random kills (≥ 10 for the issue's figure)")
    parser.add_argument("--slurm", choices=["auto", "on", "off"], default="auto",
                        help="auto: when `sinfo` answers or the local cluster can be started (root)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill moments and targets")
    parser.add_argument("--quick", action="store_true", help="1 round, 2 kills, no SLURM (benchmarks.run --quick)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.kills, args.slurm = 1, 2, "off"
    folder = Path(args.out or tempfile.mkdtemp(prefix="suite_bench_"))
    work = folder / "work"
    shutil.rmtree(work, ignore_errors=True)
    figures: dict[str, Any] = {"machine": machine_description(), "date": dt.date.today().isoformat(),
                               "load_1min": os.getloadavg()[0], "spec": str(SPEC.relative_to(REPO_ROOT))}
    print(f"[suite_bench] {figures['machine']}, {figures['date']}, load {figures['load_1min']:.1f}", flush=True)
    local_wall, _ = _timed(_runner(work / "reference"))
    reference = _metrics(work / "reference")
    figures["reference_wall_s"] = local_wall
    figures["rerun"] = rerun_times(work / "reference", args.rounds)
    print(f"rerun of the completed grid: {figures['rerun']['cells_started']} cells started, "
          f"{figures['rerun']['median_s']:.2f} s median (rounds {[round(s, 2) for s in figures['rerun']['seconds']]}"
          f"; target ≤ 5 s)", flush=True)
    figures["local_overhead"] = local_overhead(work, args.rounds)
    overhead = figures["local_overhead"]
    print(f"local runner overhead per cell: {overhead['median_overhead_per_cell_s']:+.2f} s median over "
          f"{overhead['cells']} cells × {overhead['rounds']} rounds (target ≤ 1 s; each: the cell's span in the "
          f"runner − its command run directly: {[round(d, 2) for d in overhead['per_cell_differences_s']]} s; the "
          f"runner's own work in process {1000 * overhead['bookkeeping_per_cell_s']:.1f} ms per cell + ≤ 50 ms "
          f"polling); once per run: start-up {[round(x, 2) for x in overhead['startup_s']]} s, tables "
          f"{[round(x, 2) for x in overhead['end_s']]} s", flush=True)
    cluster = None
    if args.slurm != "off":
        if not _slurm_answers() and (args.slurm == "on" or (os.geteuid() == 0 and shutil.which("slurmctld"))):
            cluster = _start_local_cluster(folder / "cluster")
        if _slurm_answers():
            figures["slurm"] = slurm_latency(work, local_wall)
            s = figures["slurm"]
            print(f"SLURM: submit → SLURM start {s['submit_to_slurm_start_s']} s; submit → cell command "
                  f"{[round(x, 2) for x in s['submit_to_command_s']]} s (the first cells: free CPUs; the later ones "
                  f"waited for them); grid {s['wall_s']:.1f} s vs local {local_wall:.1f} s", flush=True)
        else:
            print("SLURM: not measured (no cluster answers `sinfo`; run as root for tools/slurm_local.sh)")
    try:
        figures["kills"] = random_kills(work, reference, args.kills, args.seed)
    finally:
        if cluster is not None:
            subprocess.run(["bash", str(REPO_ROOT / "tools" / "slurm_local.sh"), "stop"], env=cluster)
    k = figures["kills"]
    print(f"random kills: {k['kills']} ({sum(e['killed'] == 'runner' for e in k['log'])} runner, "
          f"{sum(e['killed'] == 'cell' for e in k['log'])} cell) over {len(k['grids'])} grids; records equal to "
          f"the uninterrupted run's in every grid: {k['all_equal']}", flush=True)
    atomic_write_text(folder / "suite_bench.json", json.dumps(figures, indent=2) + "\n")
    print(f"figures: {folder / 'suite_bench.json'}")
    return figures


if __name__ == "__main__":
    main()
