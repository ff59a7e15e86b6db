"""The suite runner on a real one-node SLURM cluster (tools/slurm_local.sh, started once per session): the tiny grid
gives the local launcher's metrics; a job array scancel-ed mid-run leaves its cells pending and the rerun completes
only those; a failing cell is resubmitted, then reported; a 2-task job runs the distillation trainer as 2 processes
(gloo) with the weights of the 2-process torchrun run; an unreachable controller or a refused submission stops the
runner with the command and SLURM's message, and nothing written. These tests run in CI: they fail, never skip,
where SLURM is missing."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from benchmarks.suite import SuiteFailure, run_suite

REPO = Path(__file__).resolve().parents[2]
ONE_AT_A_TIME = "slurm = dict(poll_s=0.5, max_retries=1, default=dict(time=10, cpus=2, mem='2G'))\n"


def _jobs(out: Path) -> dict[str, dict]:
    return json.loads((out / "slurm" / "jobs.json").read_text())["state"]


def test_tiny_grid_on_slurm_gives_the_local_metrics(slurm_cluster, tiny_grid, metrics_of, tmp_path):
    spec = tiny_grid(tmp_path / "tiny_grid.py")
    local = run_suite(spec, tmp_path / "local", max_parallel=2, stream=io.StringIO())
    stream = io.StringIO()
    slurm = run_suite(spec, tmp_path / "slurm", launcher="slurm", stream=stream)
    assert local.complete and slurm.complete, stream.getvalue()
    assert metrics_of(tmp_path / "slurm") == metrics_of(tmp_path / "local")
    jobs = _jobs(tmp_path / "slurm")
    assert len({entry["job"].split("_")[0] for entry in jobs.values()}) == 1  # one job array
    for cell_id, entry in jobs.items():
        assert entry["submissions"] == 1 and Path(entry["slurm_log"]).is_file()
        log = (tmp_path / "slurm" / "cells" / cell_id / "attempt-1.log").read_text()
        assert log.startswith(f"[suite] SLURM job {entry['job']} (id ") and "record:" in log


def test_scancel_mid_run_then_rerun_completes_only_the_missing_cells(slurm_cluster, tiny_grid, tmp_path):
    """One cell at a time (2 CPUs each on the 2-CPU node): once the first is done the array is cancelled."""
    spec = tiny_grid(tmp_path / "grid.py", seeds=(1,), extra=ONE_AT_A_TIME)
    out = tmp_path / "out"
    stream = io.StringIO()
    result = {}
    runner = threading.Thread(target=lambda: result.update(first=run_suite(spec, out, launcher="slurm",
                                                                           stream=stream)))
    runner.start()
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and not list((out / "records").glob("*")):
        time.sleep(0.1)
    array = next(iter(_jobs(out).values()))["job"].split("_")[0]
    subprocess.run(["scancel", array], check=True)
    runner.join(180)
    first = result["first"]
    done = {cell_id for cell_id, state in first.states.items() if state.state == "done"}
    assert 1 <= len(done) < 4 and not first.complete, stream.getvalue()
    assert all(state.state == "pending" for cell_id, state in first.states.items() if cell_id not in done)
    assert "was cancelled: pending on the next run" in stream.getvalue()
    logs = {cell_id: sorted((out / "cells" / cell_id).glob("attempt-*.log")) for cell_id in done}
    stream = io.StringIO()
    second = run_suite(spec, out, launcher="slurm", stream=stream)
    assert second.complete and f"4 cells, {len(done)} done, {4 - len(done)} to run" in stream.getvalue()
    assert {cell_id: sorted((out / "cells" / cell_id).glob("attempt-*.log")) for cell_id in done} == logs


def test_a_failing_cell_is_resubmitted_then_reported(slurm_cluster, tiny_grid, tmp_path):
    """max_retries=1: the cell's job runs twice, then the cell is failed with its log."""
    empty = tmp_path / "empty_root"
    empty.mkdir()
    spec = tiny_grid(tmp_path / "broken.py", extra=f"datasets = dict(fmnist=dict(root='{empty}'))\n"
                                                   "tasks = dict(_delete_=True, probe=dict(type='linear_probe', "
                                                   "datasets=['fmnist'], backbones=['random'], modes=['fast']))\n")
    stream = io.StringIO()
    result = run_suite(spec, tmp_path / "out", launcher="slurm", stream=stream)
    ((cell_id, state),) = result.states.items()
    assert state.state == "failed" and "resubmitting (1/1)" in stream.getvalue()
    assert _jobs(tmp_path / "out")[cell_id]["submissions"] == 2
    assert state.log == tmp_path / "out" / "cells" / cell_id / "attempt-2.log"
    assert "Fashion-MNIST (train) not found or incomplete" in state.log.read_text()


SLIM = dict(embed_dims=[16, 32, 32, 64], depths=[1, 1, 1, 1], head_dim=16)


def _store_and_config(tmp_path: Path) -> Path:
    """The distillation tests' tiny recipe (tests/distill_pretrain): a real store (MobileNetV2 over 32 Fashion-MNIST
    images, 2 epochs) and a config training the slim 32 px TinyViT on it for one epoch, batch 4 per process."""
    from distill_pretrain import save_logits
    store = tmp_path / "store"
    save_logits.main([str(REPO / "configs/distill/save_logits_mobilenetv2_fmnist.py"), "--cfg-options",
                      f"store.path={store}", "dataset.limit=32", "epochs=2", "num_workers=0", "batch_size=32",
                      "store.chunk_size=16", "augment.img_size=32", "augment.auto_augment=None",
                      "augment.re_prob=0.25", "augment.scale=(0.35,1.0)", "pipeline=pil"])
    config = tmp_path / "ddp_cfg.py"
    config.write_text(
        f"_base_ = ['{REPO / 'configs/distill/tinyvit_5m_fmnist_tiny_cpu.py'}']\n"
        f"student = dict(_delete_=True, type='TinyViT', arch={SLIM!r}, img_size=32, drop_path_rate=0.1)\n"
        f"store = dict(path='{store}', cycle_epochs=False)\n"
        "data = dict(train=dict(limit=32), val=dict(limit=8), batch_size=4)\n"
        "epochs = 1\neval_teacher_agreement = False\nlog_interval = 1\nrecord = False\n"
        "labels_index_classes = True\neval_interval = 0\n")
    return config


def test_two_task_slurm_job_trains_like_torchrun(slurm_cluster, tmp_path):
    config = _store_and_config(tmp_path)
    torchrun_work = tmp_path / "torchrun"
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                           str(29500 + os.getpid() % 1000), "-m", "distill_pretrain.train", str(config),
                           "--work-dir", str(torchrun_work)], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    spec = tmp_path / "distill.py"
    spec.write_text(f'''"""python -m benchmarks.suite {spec}"""
tasks = dict(student=dict(type='distill', config='{config}'))
env = dict(OMP_NUM_THREADS='1')
slurm = dict(poll_s=0.5, default=dict(time=10, cpus=1, mem='2G', nodes=1, tasks=2))
''')
    stream = io.StringIO()
    result = run_suite(spec, tmp_path / "out", launcher="slurm", stream=stream)
    assert result.complete, stream.getvalue()
    (cell,) = result.suite.cells
    work = result.dirs.work(cell)
    for folder in (work, torchrun_work):
        log = (folder / "train.log").read_text()
        assert "world=2" in log and "total_batch=8" in log and "step 4/4" in log, folder
    assert (result.dirs.cell(cell) / "rank-1.log").is_file()  # the second task ran the trainer too
    ours = torch.load(work / "checkpoint.pth", weights_only=True)["state_dict"]
    theirs = torch.load(torchrun_work / "checkpoint.pth", weights_only=True)["state_dict"]
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_unreachable_slurm_and_a_refused_submission_stop_with_the_command(slurm_cluster, tiny_grid, tmp_path,
                                                                          monkeypatch):
    spec = tiny_grid(tmp_path / "grid.py")
    refused = tiny_grid(tmp_path / "huge.py", extra="slurm = dict(default=dict(mem='100000G'))\n")
    out = tmp_path / "out"
    with pytest.raises(SuiteFailure, match=r"`sbatch` \(submitit, 4 cell\(s\).* was refused: .*"
                                           r"(Requested node configuration is not available|Memory)"):
        run_suite(refused, out, launcher="slurm", stream=io.StringIO())
    assert not (out / "cells").exists() and not (out / "slurm" / "jobs.json").exists()
    assert not [p for p in (out / "slurm").glob("*") if p.is_dir()]  # submitit's scratch folder removed
    conf = Path(slurm_cluster).read_text()
    dead = tmp_path / "dead.conf"  # the same cluster on a port where nothing listens
    dead.write_text("\n".join("SlurmctldPort=9" if line.startswith("SlurmctldPort=") else line
                              for line in conf.splitlines()) + "\n")
    monkeypatch.setenv("SLURM_CONF", str(dead))
    with pytest.raises(SuiteFailure, match=r"`sinfo --noheader --format=%P` failed: .*Unable to contact slurm "
                                           r"controller"):
        run_suite(spec, out, launcher="slurm", stream=io.StringIO())
    assert not (out / "cells").exists() and not (out / "slurm" / "jobs.json").exists()
