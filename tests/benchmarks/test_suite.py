"""The suite runner with the local launcher, on the real CLIs: a tiny grid (2 backbones × fast probe + 5-shot on
Fashion-MNIST at 32 px) run, rerun (nothing runs), a foreign record refused, a failing cell reported and rerun, the
runner killed mid-run and rerun; bad specs named before anything runs; the shipped specs expand."""
from __future__ import annotations

import ast
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.suite import SuiteFailure, run_suite
from benchmarks.suite.cells import SuiteDirs, cell_state
from benchmarks.suite.spec import load_suite

REPO = Path(__file__).resolve().parents[2]
TAB5 = REPO / "configs/suites/tinyvit_21m_tab5.py"


def test_grid_runs_every_cell_through_the_clis(grid_run):
    spec, out, printed, result = grid_run
    assert result.complete and len(result.states) == 4, printed
    cells = {c.id: c for c in result.suite.cells}
    for cell_id, cell in cells.items():
        (record,) = [json.loads(p.read_text()) for p in (out / "records" / cell_id).glob("*.json")]
        assert record["task"] == cell.kind and record["dataset"] == "fashion_mnist"
        assert record["setting"]["seed"] == 0 and record["backbone"]["checkpoint_sha256"] == cell.expect[
            "checkpoint_sha256"]
        log = (out / "cells" / cell_id / "attempt-1.log").read_text()
        assert "record:" in log  # the CLI's own output
        assert json.loads((out / "cells" / cell_id / "cell.json").read_text())["command"][1:3] == [
            "-m", cell.type.module]
    assert "[suite] 4/4 done · 0 running · 0 failed · 0 pending" in printed and "cells/min" in printed
    assert "stand-in data sets" in (out / "tables_tiny_grid.md").read_text()


def test_rerun_of_a_completed_grid_starts_nothing(grid_run):
    spec, out, _, _ = grid_run
    logs = sorted(out.rglob("attempt-*.log"))
    stream = io.StringIO()
    start = time.perf_counter()
    result = run_suite(spec, out, stream=stream)
    assert result.complete and "4 cells, 4 done, 0 to run" in stream.getvalue()
    assert sorted(out.rglob("attempt-*.log")) == logs
    assert time.perf_counter() - start < 30  # the benchmark measures it (≤ 5 s target); here: nothing ran


def test_dry_run_prints_state_records_and_exact_command(grid_run):
    spec, out, _, result = grid_run
    stream = io.StringIO()
    run_suite(spec, out, dry_run=True, stream=stream)
    text = stream.getvalue()
    for cell in result.suite.cells:
        assert f"{cell.id}: done — {out / 'records' / cell.id}" in text
    assert "--backbone torchvision:mobilenet_v2 --checkpoint asset:mobilenet_v2" in text
    assert "--cfg-options 'methods=[logreg]' 'c_grid=[1.0]'" in text and "4 cells: 4 done" in text


def test_a_record_of_another_checkpoint_never_counts(grid_run, tmp_path, metrics_of):
    spec, out, _, result = grid_run
    work = tmp_path / "out"
    shutil.copytree(out, work)
    probes = [c for c in result.suite.cells if c.kind == "linear_probe"]
    random_cell = next(c for c in probes if c.backbone["label"] == "random")
    teacher_cell = next(c for c in probes if c.backbone["label"] == "teacher")
    target = work / "records" / random_cell.id
    shutil.rmtree(target)
    shutil.copytree(work / "records" / teacher_cell.id, target)  # the teacher's record in the random cell's place
    state = cell_state(random_cell, SuiteDirs(work))
    assert state.state == "pending" and "backbone.checkpoint_sha256" in state.detail
    stream = io.StringIO()
    rerun = run_suite(spec, work, stream=stream)
    assert rerun.complete and "3 done, 1 to run" in stream.getvalue()
    assert metrics_of(work) == metrics_of(out)
    assert len(list((work / "cells" / random_cell.id).glob("replaced-*"))) == 1  # set aside, not in records/


def test_a_failing_cell_is_reported_with_its_log_then_rerun(tiny_grid, tmp_path):
    empty = tmp_path / "empty_root"
    empty.mkdir()
    spec = tiny_grid(tmp_path / "broken.py", extra=f"datasets = dict(fmnist=dict(type='fashion_mnist', "
                                                   f"root='{empty}'))\ntasks = dict(_delete_=True, probe=dict("
                                                   f"type='linear_probe', datasets=['fmnist'], modes=['fast']))\n")
    stream = io.StringIO()
    result = run_suite(spec, tmp_path / "out", max_parallel=2, stream=stream)
    assert not result.complete and {s.state for s in result.states.values()} == {"failed"}
    text = stream.getvalue()
    cell_id = next(iter(result.states))
    log = tmp_path / "out" / "cells" / cell_id / "attempt-1.log"
    assert f"failed   {cell_id}: attempt 1: exit code 1\n    log: {log}" in text
    assert "Fashion-MNIST (train) not found or incomplete" in log.read_text()
    assert not (tmp_path / "out" / "records").exists()
    assert not (tmp_path / "out" / "cells" / cell_id / "staging").exists()
    again = run_suite(spec, tmp_path / "out", stream=io.StringIO())  # a failed cell is run again
    assert again.states[cell_id].state == "failed" and (log.parent / "attempt-2.log").is_file()


def test_killed_runner_then_rerun_gives_the_uninterrupted_records(grid_run, tmp_path, metrics_of):
    """SIGKILL the runner while a cell runs: its child dies with it (no orphan), the rerun completes the grid and
    every record equals the uninterrupted run's."""
    spec, out, _, _ = grid_run
    work = tmp_path / "out"
    runner = subprocess.Popen([sys.executable, "-m", "benchmarks.suite", str(spec), "--out", str(work)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    deadline, children = time.monotonic() + 180, []
    while time.monotonic() < deadline and not (children and list((work / "records").glob("*"))):
        time.sleep(0.1)  # until a cell is done and another one runs
        children = subprocess.run(["pgrep", "-P", str(runner.pid)], capture_output=True, text=True).stdout.split()
    runner.send_signal(signal.SIGKILL)
    runner.wait()
    assert children, "a cell was running when the runner was killed"
    time.sleep(0.5)
    assert not any(_alive(pid) for pid in children), "a cell outlived the runner"
    done_before = len(list((work / "records").glob("*")))
    assert 1 <= done_before < 4
    stream = io.StringIO()
    result = run_suite(spec, work, stream=stream)
    assert result.complete and f"{done_before} done, {4 - done_before} to run" in stream.getvalue()
    assert metrics_of(work) == metrics_of(out)


def _alive(pid: str) -> bool:
    """A process that runs (a zombie waiting for a parent that does not reap it is dead)."""
    try:
        return "\tZ" not in Path(f"/proc/{pid}/status").read_text().split("State:", 1)[1].splitlines()[0]
    except FileNotFoundError:
        return False


def test_bad_specs_are_named_before_anything_runs(tmp_path, tiny_grid):
    cases = {
        "tasks = dict(t=dict(type='linear_probes'))": "tasks.t.type: unknown task type 'linear_probes'",
        "datasets = dict(fmnist=dict(type='fashion_mnst', root='asset:fashion_mnist'))":
            "datasets.fmnist.type: unknown linear-probe data set 'fashion_mnst'",
        "backbones = dict(random=dict(spec='tinyvit-7m'))": "backbones.random.spec: unknown backbone 'tinyvit-7m'",
        "tables = ['tab55']": "tables: unknown layout(s) ['tab55']",
        "datasets = dict(fmnist=dict(type='fashion_mnist', root='/no/such/root'))":
            "datasets.fmnist.root: /no/such/root: no such file or folder",
        "backbones = dict(random=dict(spec='tinyvit-5m', checkpoint='/no/such.pth'))":
            "backbones.random.checkpoint: weights '/no/such.pth': no such file",
        "backbones = dict(a=dict(spec='tinyvit-5m'), b=dict(spec='tinyvit-5m'))": "are the same cell",
        "backbones = dict(random=dict(spec='tinyvit-5m', widht=3))": "backbones.random: unknown key(s) ['widht']",
        "tasks = dict(probe=dict(type='linear_probe', datasets=['cifar'], modes=['fast']))":
            "tasks.probe.datasets: unknown label(s) ['cifar']",
    }
    for line, message in cases.items():
        spec = tiny_grid(tmp_path / "bad.py", extra=line + "\n")
        with pytest.raises(SuiteFailure, match=r"nothing was run") as err:
            run_suite(spec, tmp_path / "out", stream=io.StringIO())
        assert message in str(err.value), (line, str(err.value))
        assert not (tmp_path / "out" / "cells").exists() and not (tmp_path / "out" / "records").exists()


def test_shipped_specs_have_their_run_command_and_expand(tmp_path, monkeypatch):
    specs = sorted((REPO / "configs/suites").glob("*.py"))
    assert {p.stem for p in specs} >= {"tinyvit_21m_tab5", "demo_fmnist", "fmnist_tiny"}
    for path in specs:
        assert "python -m benchmarks.suite" in ast.get_docstring(ast.parse(path.read_text())), path
    # the paper's Tab. 5 grid, offline: roots, our checkpoints and a prepared release cache stand in
    monkeypatch.setenv("TINYVIT_BENCH_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("TINYVIT_BENCH_OFFLINE", "1")
    options = {}
    suite = load_suite(TAB5, fetch=False, strict=False)
    for problem in suite.problems:
        assert "no such file" in problem or "not in the cache" in problem, problem
    for label in ("cifar10", "cifar100", "flowers", "cars", "pets", "isic", "eurosat", "cropdisease", "chestx"):
        (tmp_path / label).mkdir()
        options[f"datasets.{label}.root"] = str(tmp_path / label)
    for label, name in (("in1k", "tiny_vit_21m_1k"), ("in21k_distill", "tiny_vit_21m_22k_distill")):
        (tmp_path / "weights" / "releases").mkdir(parents=True, exist_ok=True)
        (tmp_path / "weights" / "releases" / f"{name}.pth").write_bytes(label.encode())
    for label in ("in1k_distill", "in21k"):
        (tmp_path / f"{label}.pth").write_bytes(label.encode())
        options[f"backbones.{label}.checkpoint"] = str(tmp_path / f"{label}.pth")
    stream = io.StringIO()
    result = run_suite(TAB5, tmp_path / "out", cfg_options=options, dry_run=True, stream=stream)
    assert not result.suite.problems, result.suite.problems
    kinds = [c.kind for c in result.suite.cells]
    assert kinds.count("linear_probe") == 4 * 5 * 2 and kinds.count("few_shot") == 4 * 4 * 3  # 4 backbones
    assert {c.backbone["pretrain"] for c in result.suite.cells} == {"in1k", "in1k-distill", "in21k", "in21k-distill"}
    assert "88 cells: 88 pending" in stream.getvalue()


def test_one_runner_per_output_root(tiny_grid, tmp_path):
    import fcntl
    spec = tiny_grid(tmp_path / "grid.py")
    (tmp_path / "out").mkdir()
    with open(tmp_path / "out" / ".runner.lock", "w") as held:
        held.write("4242")
        held.flush()
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(SuiteFailure, match=r"another runner \(pid 4242\) is working on"):
            run_suite(spec, tmp_path / "out", stream=io.StringIO())
    assert not (tmp_path / "out" / "cells").exists()


def test_parallel_local_cells_share_the_cpus_unless_the_threads_are_set(monkeypatch):
    """N cells at once get CPUs // N threads each (torch reads it), unless the environment or the spec sets them."""
    from benchmarks.suite.local import local_env
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # `make test` sets both to 1; torch reads both
        monkeypatch.delenv(name, raising=False)
    cpus = len(os.sched_getaffinity(0))
    probe = [sys.executable, "-c", "import torch; print(torch.get_num_threads())"]
    cases = ((2, {}, max(1, cpus // 2)), (cpus + 1, {}, 1), (cpus + 1, {"OMP_NUM_THREADS": str(cpus)}, cpus))
    for max_parallel, spec_env, threads in cases:
        env = local_env(spec_env, max_parallel)
        assert int(subprocess.run(probe, env=env, capture_output=True, text=True, check=True).stdout) == threads
    assert "OMP_NUM_THREADS" not in local_env({}, 1)  # one cell at a time: torch's own default
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert local_env({}, 2)["OMP_NUM_THREADS"] == "1"


def test_sigterm_stops_the_running_cells_and_leaves_them_pending(tiny_grid, tmp_path):
    spec = tiny_grid(tmp_path / "grid.py")
    runner = subprocess.Popen([sys.executable, "-m", "benchmarks.suite", str(spec), "--out", str(tmp_path / "out")],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    deadline, children = time.monotonic() + 120, []
    while time.monotonic() < deadline and not children:
        time.sleep(0.1)
        children = subprocess.run(["pgrep", "-P", str(runner.pid)], capture_output=True, text=True).stdout.split()
    runner.send_signal(signal.SIGTERM)
    out, _ = runner.communicate(timeout=60)
    assert runner.returncode == 128 + signal.SIGTERM and not any(_alive(pid) for pid in children)
    assert "attempt 1 stopped (SIGTERM)" in out and "interrupted by SIGTERM" in out
    assert not list((tmp_path / "out" / "cells").glob("*/status.json"))  # stopped, not failed


def test_a_detection_cell_runs_through_the_dense_cli(tmp_path):
    """A random-init backbone: the config's pretrained file is switched off (init_cfg=None); the record carries the
    cell's seed and random weights, so it counts as the cell's."""
    from transfer.detection import build_mini_coco
    ann_file, img_dir, _ = build_mini_coco(tmp_path / "mini_coco")
    spec = tmp_path / "dense.py"
    spec.write_text(f'''"""python -m benchmarks.suite {spec}"""
backbones = dict(random=dict(spec='tinyvit-5m'))
datasets = dict(mini=dict(ann_file='{ann_file}', img_dir='{img_dir}'))
tasks = dict(det=dict(type='detection', datasets=['mini'],
                      config='{REPO / "configs/detection/cascade-mask-rcnn_tinyvit-5m_fpn_mini.py"}',
                      options=dict(train_cfg=dict(max_iters=1, val_interval=1))))
seeds = [5]
env = dict(OMP_NUM_THREADS='1')
''')
    result = run_suite(spec, tmp_path / "out", stream=io.StringIO())
    assert result.complete
    (cell,) = result.suite.cells
    (record,) = [json.loads(p.read_text()) for p in result.dirs.records(cell).glob("*.json")]
    assert record["task"] == "detection" and record["setting"]["seed"] == 5
    assert record["backbone"]["source"] == "random"
    assert "model.backbone.init_cfg=None" in json.loads((result.dirs.cell(cell) / "cell.json").read_text())["command"]
