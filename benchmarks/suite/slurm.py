"""The SLURM launcher: cells go out as job arrays through submitit, one array per resource group; the runner polls
`squeue` and resubmits the cells whose job failed, timed out, ran out of memory or lost its node, up to
`slurm.max_retries` times. A cell whose job was scancel-ed is left alone (pending on the next run); a job still
queued when the runner stops keeps running, and the next run waits for it instead of submitting it again.

Resources, per task type or task label (the label wins), over `default`:

    slurm = dict(max_retries=2, poll_s=10,
                 default=dict(partition=None, time=60, cpus=1, gpus=0, mem=None, nodes=1, tasks=1),
                 distill=dict(partition='gpu', time=4320, cpus=10, gpus=8, mem='400G', nodes=4, tasks=8))

`time` is minutes; `cpus` per task; `gpus` per node; `nodes` × `tasks` (per node) processes run the cell's command,
each with SLURM's variables (SLURM_PROCID, SLURM_NTASKS, SLURM_STEP_NODELIST, ...): the distillation trainer and
save_logits take their torch.distributed set-up from them (`distill_pretrain.dist`), detection and segmentation
get `--launcher slurm` (MMEngine's SLURM launcher, which needs a GPU per task). Rank 0 writes the cell's log and
result; the other ranks log to `rank-<R>.log` in the cell folder.

Nothing is written before SLURM accepted a submission: an unreachable controller or a refused submission stops the
runner with the command and SLURM's answer, and the submission's scratch folder is removed. OUT/slurm/jobs.json maps
each submitted cell to its job id, a JSON resume state (`contracts.resume`) naming the run it belongs to: the output
root the jobs write into and the cluster that numbered them. A damaged one or another run's stops the runner before
anything is written (`--resume-anyway` accepts another run's); entries of cells not in this run (another
`--cells`, another spec's cells in the same output root) are kept and not used. OUT/slurm/<batch>/ holds
submitit's files and SLURM's own logs.
"""
from __future__ import annotations

import getpass
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, TextIO

from contracts.provenance import REPO_ROOT
from contracts.resume import Change, ResumeError, describe, load_json_state, save_json_state

from .cells import (CellState, SuiteDirs, cell_env, cell_state, command, finish_attempt, remove_temps,
                    start_attempt)
from .report import removed_temps
from .spec import Cell, Suite

RESOURCE_KEYS = {"partition", "time", "cpus", "gpus", "mem", "nodes", "tasks"}
DEFAULT_RESOURCES = dict(partition=None, time=60, cpus=1, gpus=0, mem=None, nodes=1, tasks=1)
ACTIVE = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED",
          "RESIZING", "SUSPENDED", "STAGE_OUT", "SIGNALING", "PREEMPTED"}


class SlurmError(RuntimeError):
    """SLURM not reachable or a submission refused: the command and SLURM's message."""


def _run(cmd: list[str], timeout: float = 120) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise SlurmError(f"`{' '.join(cmd)}`: {cmd[0]} not found (install slurm-client; see docs/suite.md)") from None
    except subprocess.TimeoutExpired:
        raise SlurmError(f"`{' '.join(cmd)}` did not answer in {timeout:.0f} s") from None
    if proc.returncode:
        message = (proc.stderr or proc.stdout).strip() or f"exit code {proc.returncode}"
        raise SlurmError(f"`{' '.join(cmd)}` failed: {message}")
    return proc.stdout


def resources(suite: Suite, cell: Cell) -> dict[str, Any]:
    """The cell's resources: `default`, then its task type's entry, then its task label's."""
    out = dict(DEFAULT_RESOURCES)
    for key in ("default", cell.kind, cell.task):
        entry = suite.slurm.get(key) or {}
        unknown = set(entry) - RESOURCE_KEYS
        if unknown:
            raise SlurmError(f"{suite.path}: slurm.{key}: unknown key(s) {sorted(unknown)}; known: "
                             f"{sorted(RESOURCE_KEYS)}")
        out.update(entry)
    return out


def check_reachable(partitions: set[str]) -> None:
    """`sinfo` answers and lists every partition the spec names; else `SlurmError` with the command and answer."""
    cmd = ["sinfo", "--noheader", "--format=%P"]
    known = {line.strip().rstrip("*") for line in _run(cmd).splitlines() if line.strip()}
    missing = sorted(p for p in partitions if p not in known)
    if missing:
        raise SlurmError(f"partition(s) {missing} named in the spec are not in `{' '.join(cmd)}`: {sorted(known)}")


def cluster_name() -> str:
    """The cluster's name (`scontrol show config`): job ids mean something only on the cluster that gave them."""
    cmd = ["scontrol", "show", "config"]
    for line in _run(cmd).splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "ClusterName":
            return value.strip()
    raise SlurmError(f"`{' '.join(cmd)}` names no ClusterName")


def queue_states() -> dict[str, str]:
    """Job (array task) id → state of this user's jobs SLURM still knows, finished ones included."""
    out = _run(["squeue", "--noheader", "--array", "--states=all", "--format=%i|%T", f"--user={getpass.getuser()}"])
    return dict(line.strip().split("|", 1) for line in out.splitlines() if "|" in line)


def run_on_node(cell: Cell, out: str, env: Mapping[str, str]) -> int:
    """What a SLURM task runs (pickled by submitit): the cell's command; rank 0 owns the attempt and its result."""
    dirs = SuiteDirs(Path(out))
    rank = int(os.environ.get("SLURM_PROCID", "0"))
    ntasks = int(os.environ.get("SLURM_STEP_NUM_TASKS", os.environ.get("SLURM_NTASKS", "1")))
    launcher = ["--launcher", "slurm"] if ntasks > 1 and cell.kind in ("detection", "segmentation") else []
    if rank != 0:
        with open(dirs.cell(cell) / f"rank-{rank}.log", "ab") as log:
            return subprocess.run(command(cell, dirs) + launcher, stdout=log, stderr=subprocess.STDOUT,
                                  env=cell_env(env)).returncode
    attempt = start_attempt(cell, dirs)
    with open(attempt.log, "wb") as log:
        job = os.environ.get("SLURM_JOB_ID")
        if os.environ.get("SLURM_ARRAY_JOB_ID"):
            job = f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ.get('SLURM_ARRAY_TASK_ID')} (id {job})"
        log.write(f"[suite] SLURM job {job}, task {rank} of {ntasks}, on {os.environ.get('SLURMD_NODENAME')}\n"
                  .encode())
        log.flush()
        returncode = subprocess.run(attempt.command + launcher, stdout=log, stderr=subprocess.STDOUT,
                                    env=cell_env(env)).returncode
    return 0 if finish_attempt(cell, dirs, attempt, returncode).state == "done" else 1


class Jobs:
    """OUT/slurm/jobs.json: cell id → {job, submissions, submitted (epoch s), slurm_log}, a JSON resume state of the
    run {out, cluster} (see the module doc), written atomically after each submission. `accepted`: the differences
    accepted at this load (`accept`: as `contracts.resume.check_resume`'s)."""

    NOTE = ("jobs.json names the SLURM jobs of earlier runs so that a rerun waits for those still queued: with none "
            "of them queued (squeue --me), removing it loses nothing")

    def __init__(self, dirs: SuiteDirs, cluster: str, accept: bool | Sequence[str] = False) -> None:
        self.path = dirs.out / "slurm" / "jobs.json"
        self.identity = {"out": str(dirs.out), "cluster": cluster}
        try:
            self.entries, self.history, self.accepted = self._load(accept)
        except ResumeError as err:
            raise ResumeError(f"{err} ({self.NOTE})") from None

    def _load(self, accept: bool | Sequence[str]) -> tuple[dict[str, dict[str, Any]], list, list[Change]]:
        """(entries, the changes accepted at every resume, those accepted now)."""
        accepted: list[Change] = []
        try:
            loaded = load_json_state(self.path, self.identity)
        except ResumeError:
            if accept is False:
                raise
            loaded = load_json_state(self.path, self.identity, accept=accept)  # another run's, if accepted
            accepted = [Change(field, *values) for field, values in loaded[1][-1]["changes"].items()]
        if loaded is None:
            return {}, [], []
        entries, history = loaded
        if not (isinstance(entries, dict) and all(isinstance(entry, dict) and isinstance(entry.get("job"), str)
                                                  for entry in entries.values())):
            raise ResumeError(f"cannot resume from {self.path}: damaged (its state is not a map cell id → job entry)")
        return entries, history, accepted

    def save(self) -> None:
        save_json_state(self.path, self.identity, self.entries, self.history)


def run_slurm(suite: Suite, cells: Sequence[Cell], dirs: SuiteDirs,
              on_change: Callable[[Mapping[str, CellState], int], None], stream: TextIO = sys.stdout, *,
              accept: bool | Sequence[str] = False) -> None:
    """Submit `cells` (adopting those whose job from an earlier run is still queued), poll until each is done,
    failed for good or cancelled. `accept`: the differences of jobs.json's run to accept (`--resume-anyway`)."""
    plans = {cell.id: resources(suite, cell) for cell in cells}
    check_reachable({p["partition"] for p in plans.values() if p["partition"]})
    max_retries = int(suite.slurm.get("max_retries", 2))
    poll_s = float(suite.slurm.get("poll_s", 10))
    jobs = Jobs(dirs, cluster_name(), accept)
    if jobs.accepted:
        stream.write(f"[suite] resumed from {jobs.path}; accepted changes: {describe(jobs.accepted)}\n")
        jobs.save()  # it names this run from now on
    queued = queue_states()
    live = {cell_id for cell_id, entry in jobs.entries.items() if _job_state(queued, entry["job"]) in ACTIVE}
    removed_temps(remove_temps(dirs, busy=live), dirs, stream)
    by_id = {cell.id: cell for cell in cells}
    active = live & set(by_id)
    if active:
        stream.write(f"[suite] {len(active)} cell(s) still queued from an earlier run: waiting for them\n")
    submissions_here = {cell_id: 1 for cell_id in active}  # an adopted job counts as this run's first submission
    states: dict[str, CellState] = {}
    finished = 0
    to_submit = [cell for cell in cells if cell.id not in active]
    while to_submit or active:
        if to_submit:
            _submit(suite, to_submit, plans, dirs, jobs)
            for cell in to_submit:
                submissions_here[cell.id] = submissions_here.get(cell.id, 0) + 1
                states[cell.id] = CellState("pending", f"job {jobs.entries[cell.id]['job']}")
            active |= {cell.id for cell in to_submit}
            to_submit = []
            on_change(states, finished)
        time.sleep(poll_s)
        queued = queue_states()
        for cell_id in sorted(active):
            cell, entry = by_id[cell_id], jobs.entries[cell_id]
            job_state = _job_state(queued, entry["job"])
            if job_state in ACTIVE:
                states[cell_id] = CellState("running" if job_state == "RUNNING" else "pending",
                                            f"job {entry['job']} {job_state}")
                continue
            active.discard(cell_id)
            finished += 1
            state = cell_state(cell, dirs)
            if state.state == "done":
                states[cell_id] = state
            elif job_state == "CANCELLED":
                states[cell_id] = CellState("pending", f"job {entry['job']} was cancelled: pending on the next run")
            elif submissions_here[cell_id] <= max_retries:
                stream.write(f"[suite] {cell_id}: job {entry['job']} ended {job_state} "
                             f"({state.detail}); resubmitting ({submissions_here[cell_id]}/{max_retries})\n")
                to_submit.append(cell)
                finished -= 1
            else:
                states[cell_id] = state if state.state == "failed" else _mark_failed(
                    cell, dirs, f"job {entry['job']} ended {job_state}; SLURM's log: {entry['slurm_log']}")
        on_change(states, finished)


def _job_state(queued: Mapping[str, str], job: str) -> str:
    """A job's state in `queue_states()`'s answer (`GONE` when SLURM no longer lists it)."""
    return queued.get(job, "GONE").split()[0].rstrip("+")


def _mark_failed(cell: Cell, dirs: SuiteDirs, reason: str) -> CellState:
    """A job that died without its cell saying why (timeout, lost node): the runner writes the failure."""
    attempt = start_attempt(cell, dirs)
    attempt.log.write_text(f"[suite] {reason}\n")
    return finish_attempt(cell, dirs, attempt, 1)


def _submit(suite: Suite, cells: Sequence[Cell], plans: Mapping[str, Mapping[str, Any]], dirs: SuiteDirs,
            jobs: Jobs) -> None:
    """One job array per distinct resource set; jobs.json updated only after SLURM accepted each array."""
    import submitit
    groups: dict[str, list[Cell]] = {}
    for cell in cells:
        groups.setdefault(json.dumps(plans[cell.id], sort_keys=True), []).append(cell)
    for key, group in groups.items():
        plan = json.loads(key)
        folder = dirs.out / "slurm" / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        executor = submitit.SlurmExecutor(folder=folder / "%j", max_num_timeout=0)
        executor.update_parameters(
            job_name=f"suite-{suite.name}", time=int(plan["time"]), nodes=int(plan["nodes"]),
            ntasks_per_node=int(plan["tasks"]), cpus_per_task=int(plan["cpus"]),
            **({"partition": plan["partition"]} if plan["partition"] else {}),
            **({"gpus_per_node": int(plan["gpus"])} if plan["gpus"] else {}),
            **({"mem": str(plan["mem"])} if plan["mem"] else {}),
            array_parallelism=len(group), stderr_to_stdout=True,
            setup=[f"export PYTHONPATH={REPO_ROOT}${{PYTHONPATH:+:$PYTHONPATH}}"])
        submitted = time.time()
        try:
            with executor.batch():
                handles = [executor.submit(run_on_node, cell, str(dirs.out), suite.env) for cell in group]
        except Exception as err:  # noqa: BLE001 - submitit wraps sbatch's refusal in several kinds
            shutil.rmtree(folder, ignore_errors=True)
            raise SlurmError(f"`sbatch` (submitit, {len(group)} cell(s): {group[0].id}, ...) was refused: "
                             f"{str(err).strip() or type(err).__name__}") from None
        for cell, handle in zip(group, handles):
            entry = jobs.entries.get(cell.id, {})
            jobs.entries[cell.id] = {"job": handle.job_id, "submissions": entry.get("submissions", 0) + 1,
                                     "submitted": submitted, "slurm_log": str(handle.paths.stdout).replace("%t", "0")}
        jobs.save()
