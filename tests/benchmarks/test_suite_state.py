"""The suite runner's own state files under the resume contract (docs/suite.md, "State files and resume"), each
written by its real writer, then damaged: cell.json, status.json, product.json and records that are empty,
truncated, not JSON or another cell's leave the cell pending with the file and the cause printed, and the rerun
recovers; temp files of writes killed mid-way are removed before the next cells start; OUT/slurm/jobs.json that is
damaged, of the old format or another run's is refused naming the file and the field, and `--resume-anyway`
accepts another run's (on the one-node SLURM cluster)."""
from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.suite import SuiteFailure, run_suite
from benchmarks.suite.__main__ import main
from benchmarks.suite.cells import CellState, SuiteDirs, cell_state, finish_attempt, start_attempt
from benchmarks.suite.slurm import Jobs, cluster_name
from benchmarks.suite.spec import Cell, load_suite
from contracts.resume import ResumeError

REPO = Path(__file__).resolve().parents[2]
NOTE = "with none of them queued (squeue --me), removing it loses nothing"


def _damaged(good: bytes, name: str, keys: str) -> list[tuple[bytes, str]]:
    """(content, the cause the runner must name) for each kind of damage to a file whose whole content is `good`."""
    return [(b"", "empty file"), (good[:len(good) // 2], "truncated or not JSON ("),
            (b"\xff\xfe\x00garbage", "truncated or not JSON ('utf-8' codec can't decode byte 0xff in position 0"),
            (b"[1, 2]", f"not a suite {name} (no valid {keys})")]


def _killed_write(path: Path) -> Path:
    """The temp file that `contracts.fileio.atomic_write` leaves when SIGKILL hits it in the middle of writing
    `path`."""
    code = ("import sys, time\nfrom contracts.fileio import atomic_write\n"
            "def write(f):\n    f.write(b'{\"half')\n    f.flush()\n    print('writing', flush=True)\n"
            "    time.sleep(60)\n"
            "atomic_write(sys.argv[1], write)\n")
    writer = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    assert writer.stdout.readline() == "writing\n"
    writer.kill()
    writer.wait()
    (temp,) = path.parent.glob(f".{path.name}.*.tmp")
    return temp


def _files(root: Path) -> dict[str, bytes]:
    """Every file under `root` (the runner's lock file aside) and its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != ".runner.lock"}


def _failed_copy(grid_run: tuple, folder: Path) -> tuple[SuiteDirs, Cell, Cell, CellState]:
    """A copy of the completed grid whose first cell has no records and a failed last attempt (status.json written
    by its writer): (the copy, that cell, the second cell, the failed state)."""
    _, out, _, result = grid_run
    shutil.copytree(out, folder)
    dirs = SuiteDirs(folder)
    cell, other = result.suite.cells[:2]
    shutil.rmtree(dirs.records(cell))
    failed = finish_attempt(cell, dirs, start_attempt(cell, dirs), 1)
    assert failed.state == "failed" and cell_state(cell, dirs) == failed
    return dirs, cell, other, failed


def test_damaged_or_foreign_cell_files_leave_the_cell_pending_naming_the_file(grid_run, tmp_path):
    dirs, cell, other, failed = _failed_copy(grid_run, tmp_path / "out")
    status, stamp = dirs.cell(cell) / "status.json", dirs.cell(cell) / "cell.json"
    good_status, good_stamp = status.read_bytes(), stamp.read_bytes()
    for content, cause in _damaged(good_status, "status.json", "attempt, reason, log"):
        status.write_bytes(content)
        state = cell_state(cell, dirs)
        assert state.state == "pending" and state.unusable, (cause, state)
        assert state.detail.startswith(f"{status}: {cause}") and state.detail.endswith(
            "; not used: the cell counts as pending"), (cause, state.detail)
    status.write_bytes(good_status)
    # the folder's cell.json says whose status.json it is: another cell's, damaged or missing, it does not count
    shutil.copy(dirs.cell(other) / "cell.json", stamp)
    state = cell_state(cell, dirs)
    assert state.state == "pending" and state.unusable
    assert state.detail.startswith(f"{stamp} names another cell (id: saved {other.id!r}, requested {cell.id!r}; "
                                   "identity.") and "its status.json is not this cell's" in state.detail
    for content, cause in _damaged(good_stamp, "cell.json", "id, identity"):
        stamp.write_bytes(content)
        state = cell_state(cell, dirs)
        assert state.state == "pending" and state.detail.startswith(f"{stamp}: {cause}"), (cause, state.detail)
    stamp.unlink()
    assert cell_state(cell, dirs).detail.startswith(f"{stamp}: no such file")
    stamp.write_bytes(good_stamp)
    assert cell_state(cell, dirs) == failed
    # a done cell's record, damaged: pending, the record named; its rerun sets the folder aside
    (record,) = dirs.records(other).glob("*.json")
    record.write_bytes(b"\xff\xfe\x00garbage")
    state = cell_state(other, dirs)
    assert state.state == "pending" and state.unusable and state.detail.startswith(
        f"{dirs.records(other)} holds no result of this cell ({record.name}: 'utf-8' codec can't decode")


def test_a_stage_product_counts_only_as_its_own_cells_files_say(tmp_path):
    """product.json's writer is the end of a stage cell's attempt; the trainer's checkpoint is stood in for by a
    file (the stage itself is tested in test_suite_slurm)."""
    spec = tmp_path / "stage.py"
    spec.write_text(f'"""python -m benchmarks.suite {spec}"""\n'
                    f"tasks = dict(student=dict(type='distill', config="
                    f"'{REPO / 'configs/distill/tinyvit_5m_fmnist_tiny_cpu.py'}'))\n")
    (cell,) = load_suite(spec).cells
    dirs = SuiteDirs(tmp_path / "out")
    attempt = start_attempt(cell, dirs)
    product = dirs.work(cell) / cell.type.product
    product.parent.mkdir(parents=True)
    product.write_bytes(b"weights")
    assert finish_attempt(cell, dirs, attempt, 0).state == "done"
    marker = dirs.cell(cell) / "product.json"
    good = marker.read_bytes()
    for content, cause in _damaged(good, "product.json", "path, size, mtime_ns"):
        marker.write_bytes(content)
        state = cell_state(cell, dirs)
        assert state.state == "pending" and state.detail.startswith(f"{marker}: {cause}"), (cause, state.detail)
    marker.write_bytes(good)
    # a copied output root: same file sizes and times, but its product.json names the original's product
    copy = SuiteDirs(tmp_path / "copy")
    shutil.copytree(dirs.out, copy.out)
    state = cell_state(cell, copy)
    assert state.state == "pending" and state.detail.startswith(
        f"{copy.cell(cell) / 'product.json'} names {product}, not this cell's product {copy.work(cell) / product.name}")
    # another seed's cell.json in its folder
    stamp = json.loads((dirs.cell(cell) / "cell.json").read_text())
    (dirs.cell(cell) / "cell.json").write_text(json.dumps({**stamp, "identity": {**stamp["identity"], "seed": 1}}))
    state = cell_state(cell, dirs)
    assert state.state == "pending" and "names another cell (identity.seed: saved 1, requested 0): its product.json " \
                                       "is not this cell's" in state.detail
    start_attempt(cell, copy)  # the next attempt drops the product.json that no longer counts
    assert not (copy.cell(cell) / "product.json").exists()


def test_rerun_recovers_a_damaged_status_and_removes_the_temps_of_killed_writes(grid_run, tmp_path, metrics_of):
    spec, out, _, _ = grid_run
    work = tmp_path / "out"
    dirs, cell, other, _ = _failed_copy(grid_run, work)
    status = dirs.cell(cell) / "status.json"
    status.write_bytes(status.read_bytes()[:30])
    temps = [_killed_write(path) for path in (status, dirs.cell(other) / "cell.json", work / "slurm" / "jobs.json",
                                              dirs.shared / "features" / "cache.npz",
                                              work / "tables_tiny_grid.md")]
    stream = io.StringIO()
    rerun = run_suite(spec, work, stream=stream)
    text = stream.getvalue()
    assert rerun.complete and "3 done, 1 to run" in text, text
    assert f"[suite] {cell.id}: {status}: truncated or not JSON (" in text
    assert "; not used: the cell counts as pending\n" in text
    (removed,) = [line for line in text.splitlines() if line.startswith("[suite] removed 4 temp files")]
    assert sorted(removed.split(": ", 1)[1].split(", ")) == sorted(str(t.relative_to(work)) for t in temps[:4])
    assert f"[suite] removed 1 temp files of interrupted writes: {temps[4].name}\n" in text
    assert not list(work.rglob("*.tmp")) and not status.exists()
    assert metrics_of(work) == metrics_of(out)


def test_jobs_json_names_its_run_and_refuses_bad_files(tmp_path):
    """`Jobs` is jobs.json's one reader and writer; the run is the output root and the cluster."""
    dirs = SuiteDirs(tmp_path / "out")
    jobs = Jobs(dirs, "cluster-a")
    assert jobs.entries == {} and not jobs.path.exists()
    jobs.entries["probe__x__seed0__0123456789"] = {"job": "12_0", "submissions": 1, "submitted": 1.5,
                                                  "slurm_log": "x.out"}
    jobs.save()
    assert Jobs(dirs, "cluster-a").entries == jobs.entries
    with pytest.raises(ResumeError) as refused:
        Jobs(dirs, "cluster-b")
    assert str(refused.value).startswith(
        f"cannot resume from {jobs.path}: it belongs to another run: cluster: saved 'cluster-a', requested "
        "'cluster-b'; to continue anyway with the requested values, rerun with --resume-anyway cluster")
    copy = SuiteDirs(tmp_path / "copy")
    shutil.copytree(dirs.out, copy.out)
    with pytest.raises(ResumeError, match=f"it belongs to another run: out: saved '{dirs.out}', requested "
                                          f"'{copy.out}'; .*--resume-anyway out"):
        Jobs(copy, "cluster-a")
    with pytest.raises(ResumeError, match="out: saved"):
        Jobs(copy, "cluster-a", accept=["cluster"])
    moved = Jobs(copy, "cluster-a", accept=["out"])
    assert [str(c) for c in moved.accepted] == [f"out: saved '{dirs.out}', requested '{copy.out}'"]
    assert moved.entries == jobs.entries
    moved.save()
    again = Jobs(copy, "cluster-a")  # it names the new run now; the accepted change stays recorded
    assert again.accepted == [] and again.history == [{"file": str(moved.path),
                                                       "changes": {"out": [str(dirs.out), str(copy.out)]}}]
    good = jobs.path.read_bytes()
    doc = json.loads(good)
    bad = [(b"", "cannot resume: {}: empty file"),
           (good[:len(good) // 2], "cannot resume: {}: truncated or not JSON ("),
           (b"\xff\xfe\x00garbage", "cannot resume: {}: truncated or not JSON ('utf-8' codec can't decode"),
           (json.dumps(doc["state"]).encode(),  # the format before the contract: the bare map
            "cannot resume from {}: not a tinyvit-bench/json-resume/v1 resume state (format None)"),
           (json.dumps({**doc, "run": None}).encode(),
            "cannot resume from {}: a damaged tinyvit-bench/json-resume/v1 resume state"),
           (json.dumps({**doc, "state": ["12_0"]}).encode(),
            "cannot resume from {}: damaged (its state is not a map cell id → job entry)")]
    for content, message in bad:
        jobs.path.write_bytes(content)
        with pytest.raises(ResumeError) as refused:
            Jobs(dirs, "cluster-a", accept=True)  # no override makes a damaged file usable
        assert str(refused.value).startswith(message.format(jobs.path)) and NOTE in str(refused.value), message


def test_slurm_refuses_another_runs_jobs_json_then_resumes_anyway(slurm_cluster, grid_run, tmp_path, metrics_of,
                                                                  capsys):
    """jobs.json of another output root (a copied folder): the runner stops before writing anything, with exit
    status 2 and the field; `--resume-anyway out` runs the missing cell on SLURM and records the change."""
    spec, out, _, result = grid_run
    work = tmp_path / "out"
    shutil.copytree(out, work)
    dirs = SuiteDirs(work)
    cell = result.suite.cells[0]
    shutil.rmtree(dirs.records(cell))
    elsewhere = tmp_path / "elsewhere"
    Jobs(SuiteDirs(elsewhere), cluster_name()).save()
    jobs = dirs.out / "slurm" / "jobs.json"
    jobs.parent.mkdir()
    shutil.copy(elsewhere / "slurm" / "jobs.json", jobs)
    temp = _killed_write(jobs)
    before = _files(work)
    argv = [str(spec), "--out", str(work), "--launcher", "slurm"]
    assert main(argv) == 2
    assert (f"error: cannot resume from {jobs}: it belongs to another run: out: saved '{elsewhere}', requested "
            f"'{work}'; to continue anyway with the requested values, rerun with --resume-anyway out") \
        in capsys.readouterr().err
    good = jobs.read_bytes()
    jobs.write_bytes(good[:20])
    with pytest.raises(SuiteFailure, match="cannot resume: .*jobs.json: truncated or not JSON"):
        run_suite(spec, work, launcher="slurm", accept=True, stream=io.StringIO())
    jobs.write_bytes(good)
    assert _files(work) == before  # refused: nothing written, not even the temp file removed
    stream = io.StringIO()
    resumed = run_suite(spec, work, launcher="slurm", accept=["out"], stream=stream)
    text = stream.getvalue()
    assert resumed.complete, text
    assert f"[suite] resumed from {jobs}; accepted changes: out: saved '{elsewhere}', requested '{work}'\n" in text
    assert f"[suite] removed 1 temp files of interrupted writes: slurm/{temp.name}\n" in text
    doc = json.loads(jobs.read_text())
    assert doc["run"]["identity"] == {"cluster": cluster_name(), "out": str(work)}
    assert doc["accepted_changes"] == [{"file": str(jobs), "changes": {"out": [str(elsewhere), str(work)]}}]
    assert list(doc["state"]) == [cell.id] and doc["state"][cell.id]["submissions"] == 1
    assert metrics_of(work) == metrics_of(out) and not list(work.rglob("*.tmp"))
