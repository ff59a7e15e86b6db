"""Where a suite's cells leave their traces, what that makes each cell (done / failed / pending), and one attempt
at a cell: its command, its log, and the move of its records into place.

    OUT/records/<cell id>/*.json    a done cell's records, moved in whole (one directory rename) when its CLI
                                    succeeded and every record it wrote is this cell's
    OUT/cells/<cell id>/            cell.json (identity, command), attempt-N.log, status.json (the last failure),
                                    staging/ (where the running attempt's CLI writes its records),
                                    product.json (a stage's product: path, size, sha256)
    OUT/work/<cell id>/             the cell's own work folder (trainer checkpoints and resume files, stores)
    OUT/work/features/, episodes/   what the cells share: the feature cache, the few-shot episodes
    OUT/tables_<spec name>.md       the spec's tables (benchmarks.suite.report)

A cell is done when its records folder holds records that carry its task, data set name (where the CLI's naming is
known), backbone checkpoint sha256 (random weights: source 'random') and seed — records of another checkpoint or
setting never count — or, for a stage, when its product file is the one product.json names. It is failed when
its last attempt left status.json, otherwise pending (never run, or its attempt was killed or interrupted). A
killed attempt leaves at most a staging folder, which the next attempt removes: nothing half-written is ever read
as a result.

A cell folder is the cell's that its cell.json names (id and identity): status.json and product.json count only
there, and only whole. A damaged file (empty, truncated, not JSON, keys missing), another cell's folder or a
product.json naming another product is not used: the cell counts as pending (`CellState.unusable`, which the runner
prints) and its next attempt rewrites the folder's files. Temp files of interrupted writes are removed by
`remove_temps` before the next cells start.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Collection, Mapping, Sequence

from contracts.fileio import atomic_write_text, file_sha256, fsync_dir, remove_orphaned_temps
from contracts.provenance import REPO_ROOT
from contracts.records import validate_record
from contracts.resume import ResumeError, compare, describe, flatten, read_json_file

from .spec import Cell
from .tasks import cell_arguments


@dataclass(frozen=True)
class SuiteDirs:
    """The folders of one suite output root (see the module doc)."""

    out: Path

    @property
    def records_root(self) -> Path:
        return self.out / "records"

    @property
    def shared(self) -> Path:
        return self.out / "work"

    def records(self, cell: Cell) -> Path:
        return self.records_root / cell.id

    def cell(self, cell: Cell) -> Path:
        return self.out / "cells" / cell.id

    def staging(self, cell: Cell) -> Path:
        return self.cell(cell) / "staging"

    def work(self, cell: Cell) -> Path:
        return self.shared / cell.id


STAMP_KEYS = {"id": str, "identity": dict}  # cell.json: whose folder it is
STATUS_KEYS = {"attempt": int, "reason": str, "log": str}  # status.json: how the last attempt failed
PRODUCT_KEYS = {"path": str, "size": int, "mtime_ns": int}  # product.json: a stage's product


@dataclass(frozen=True)
class CellState:
    """done | failed | pending | running | blocked, a one-line detail (where a done cell's result is, why another
    is not done), and the log of its last attempt. `unusable`: the detail names a file under OUT that could not be
    used for this cell (damaged, or another cell's), which is why the cell is pending."""

    state: str
    detail: str = ""
    log: Path | None = None
    unusable: bool = False


def command(cell: Cell, dirs: SuiteDirs) -> list[str]:
    """The exact command of a cell's attempt."""
    kind = cell.type
    return [sys.executable, "-m", kind.module, *cell_arguments(
        kind, config=cell.config, settings=cell.settings, variant=cell.variant, dataset=cell.dataset,
        backbone=cell.backbone, seed=cell.seed, records=dirs.staging(cell), work=dirs.work(cell),
        shared=dirs.shared)]


def cell_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The environment a cell runs in: this one, the spec's `env`, and this checkout first on PYTHONPATH."""
    env = {**os.environ, **extra}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def records_mismatch(cell: Cell, records: Sequence[Mapping[str, Any]]) -> str | None:
    """Why `records` are not this cell's (None when they are): see the module doc."""
    if not records:
        return "no record"
    want = cell.expect
    for rec in records:
        backbone = rec.get("backbone") or {}
        sha = backbone.get("checkpoint_sha256")
        checks = (("task", rec.get("task"), want["task"]),
                  ("dataset", rec.get("dataset"), _dataset_name(cell, rec.get("dataset"))),
                  ("backbone.checkpoint_sha256", sha, want["checkpoint_sha256"]),
                  ("setting.seed", (rec.get("setting") or {}).get("seed"), want["seed"]))
        for name, got, expected in checks:
            if got != expected:
                return f"a record has {name}={got!r}, this cell {expected!r}"
        if want["checkpoint_sha256"] is None and backbone.get("source") != "random":
            return f"a record's backbone is {backbone.get('source')!r}, this cell's random weights"
    return None


def _dataset_name(cell: Cell, got: Any) -> Any:
    """The data set name this cell's records must carry: `got` when it is the spec's name or its CLI's canonical
    form of it (looked up only when they differ: it imports the CLI's data set table), else the expected name."""
    expected = cell.expect["dataset"]
    if expected is None or got == expected:
        return got
    if cell.dataset.get("record_name"):
        return expected
    from .spec import canonical_dataset
    try:
        canonical = canonical_dataset(cell.kind, expected)
    except ValueError:
        return expected
    return got if got == canonical else canonical


def _read(folder: Path) -> tuple[list[dict], str | None]:
    """The records in a folder, and why they cannot be read (None when all are valid)."""
    records = []
    for path in sorted(folder.glob("*.json")):
        try:
            record = json.loads(path.read_text())
            validate_record(record)
        except (OSError, ValueError) as err:  # unreadable, not UTF-8, not JSON, not a valid record
            return records, f"{path.name}: {err}"
        records.append(record)
    return records, None


def _cell_file(cell: Cell, dirs: SuiteDirs, name: str, keys: Mapping[str, type]) -> dict | None:
    """cells/<id>/<name> (None: no such file) if it is a whole JSON object with `keys` in a folder whose cell.json
    names this cell; else `ResumeError` naming the file and the cause."""
    path = dirs.cell(cell) / name
    if not path.is_file():
        return None
    stamp = _json_object(dirs.cell(cell) / "cell.json", STAMP_KEYS)
    changes = compare(flatten({"id": stamp["id"], "identity": stamp["identity"]}),
                      flatten({"id": cell.id, "identity": cell.identity}))
    if changes:
        raise ResumeError(f"{path.parent / 'cell.json'} names another cell ({describe(changes)}): its {name} is "
                          "not this cell's")
    return _json_object(path, keys)


def _json_object(path: Path, keys: Mapping[str, type]) -> dict:
    if not path.is_file():
        raise ResumeError(f"{path}: no such file")
    doc = read_json_file(path)
    bad = [key for key, kind in keys.items() if not isinstance(doc, dict) or not isinstance(doc.get(key), kind)]
    if bad:
        raise ResumeError(f"{path}: not a suite {path.name} (no valid {', '.join(bad)})")
    return doc


def _product_state(cell: Cell, dirs: SuiteDirs) -> str | None:
    """None when a stage's product is in place as product.json says, else why not; `ResumeError` when product.json
    cannot be used (see `_cell_file`) or names another product than this cell's."""
    product = _cell_file(cell, dirs, "product.json", PRODUCT_KEYS)
    if product is None:
        return "no product yet"
    path, own = Path(product["path"]), dirs.work(cell) / cell.type.product
    if path != own:
        raise ResumeError(f"{dirs.cell(cell) / 'product.json'} names {path}, not this cell's product {own}")
    if not path.is_file():
        return f"product {path} is gone"
    stat = path.stat()
    if (stat.st_size, stat.st_mtime_ns) != (product["size"], product["mtime_ns"]):
        return f"product {path} changed since the cell finished"
    return None


def cell_state(cell: Cell, dirs: SuiteDirs) -> CellState:
    """What the files under OUT say about a cell (see the module doc)."""
    if cell.blocked:
        return CellState("blocked", cell.blocked)
    try:
        return _files_state(cell, dirs)
    except ResumeError as err:
        return CellState("pending", f"{err}; not used: the cell counts as pending", unusable=True)


def _files_state(cell: Cell, dirs: SuiteDirs) -> CellState:
    why, unusable = "no record", False
    if cell.type.record_task is None:
        why = _product_state(cell, dirs)
        if why is None:
            return CellState("done", str(dirs.work(cell) / cell.type.product))
    elif dirs.records(cell).is_dir():
        records, unreadable = _read(dirs.records(cell))
        why = unreadable or records_mismatch(cell, records)
        if why is None:
            return CellState("done", str(dirs.records(cell)))
        why, unusable = f"{dirs.records(cell)} holds no result of this cell ({why})", True
    failure = _cell_file(cell, dirs, "status.json", STATUS_KEYS)
    if failure:
        return CellState("failed", f"attempt {failure['attempt']}: {failure['reason']}", Path(failure["log"]))
    return CellState("pending", why, unusable=unusable)


@dataclass(frozen=True)
class Attempt:
    """One run of a cell's command: its number (1, 2, ...), the command and the log it writes."""

    number: int
    command: list[str]
    log: Path


def start_attempt(cell: Cell, dirs: SuiteDirs) -> Attempt:
    """Clear what an earlier attempt left, number this one, write cell.json; the caller runs `attempt.command`."""
    folder = dirs.cell(cell)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(dirs.staging(cell), ignore_errors=True)
    for stale in ("status.json", "product.json"):  # how the last attempt failed; a product that no longer counts
        (folder / stale).unlink(missing_ok=True)
    numbers = [int(p.stem.split("-")[1]) for p in folder.glob("attempt-*.log") if p.stem.split("-")[1].isdigit()]
    number = max(numbers, default=0) + 1
    attempt = Attempt(number, command(cell, dirs), folder / f"attempt-{number}.log")
    atomic_write_text(folder / "cell.json", json.dumps(
        {"id": cell.id, "task": cell.task, "type": cell.kind, "seed": cell.seed, "variant": cell.variant,
         "identity": cell.identity, "command": attempt.command, "attempt": attempt.number}, indent=2,
        default=str) + "\n")
    return attempt


def finish_attempt(cell: Cell, dirs: SuiteDirs, attempt: Attempt, returncode: int) -> CellState:
    """After the command exited: move the records (or mark the product) into place, or record the failure. A
    command killed by a signal (a scancel, a preemption, a kill) was interrupted, not failed: its cell stays
    pending."""
    status = dirs.cell(cell) / "status.json"
    if returncode < 0:
        shutil.rmtree(dirs.staging(cell), ignore_errors=True)
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return CellState("pending", f"attempt {attempt.number} interrupted by {name}", attempt.log)
    why = f"exit code {returncode}" if returncode else _collect(cell, dirs)
    if why is None:
        status.unlink(missing_ok=True)
        return cell_state(cell, dirs)
    atomic_write_text(status, json.dumps({"attempt": attempt.number, "returncode": returncode, "reason": why,
                                          "log": str(attempt.log), "date": time.strftime("%Y-%m-%dT%H:%M:%S")},
                                         indent=2) + "\n")
    shutil.rmtree(dirs.staging(cell), ignore_errors=True)
    return CellState("failed", f"attempt {attempt.number}: {why}", attempt.log)


def _collect(cell: Cell, dirs: SuiteDirs) -> str | None:
    """Put a successful attempt's result in place (None), or say why it is not this cell's result."""
    if cell.type.record_task is None:
        product = dirs.work(cell) / cell.type.product
        if not product.is_file():
            return f"the command succeeded but left no {product}"
        stat = product.stat()
        atomic_write_text(dirs.cell(cell) / "product.json", json.dumps(
            {"path": str(product), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
             "sha256": file_sha256(product)}, indent=2) + "\n")
        return None
    staging = dirs.staging(cell)
    records, unreadable = _read(staging) if staging.is_dir() else ([], None)
    why = unreadable or records_mismatch(cell, records)
    if why:
        return f"the command succeeded but its records are not this cell's: {why}"
    target = dirs.records(cell)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():  # someone else's records under this cell's name: set aside, outside the records tree
        os.rename(target, dirs.cell(cell) / f"replaced-{uuid.uuid4().hex[:8]}")
    os.rename(staging, target)
    fsync_dir(target.parent)
    return None


def remove_temps(dirs: SuiteDirs, busy: Collection[str] = ()) -> list[Path]:
    """Remove the temp files that interrupted atomic writes left in the folders the runner owns: OUT/slurm/
    (jobs.json), the cell folders (cell.json, status.json, product.json) and the shared feature cache and episodes
    — only where no writer can be live: not in the folders of the cells in `busy` (their SLURM job from an earlier
    run still runs), and with a busy cell not in the shared folders. Called after the checks, before this run's
    cells start (contracts.fileio's policy); the cells' work folders are their trainers' to sweep."""
    folders = [dirs.out / "slurm", *(f for f in sorted((dirs.out / "cells").glob("*"))
                                     if f.is_dir() and f.name not in busy)]
    if not busy:
        folders += [dirs.shared / "features", dirs.shared / "episodes"]
    return [tmp for folder in folders for tmp in remove_orphaned_temps(folder)]
