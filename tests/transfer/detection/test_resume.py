"""`--resume` of the dense harness under the resume contract, with the real mmdet Runner on the real mini COCO set:
a seeded mini detection run SIGKILLed while writing a checkpoint and resumed ends with the same weights and test
metrics as the uninterrupted run, with no temp file left; a checkpoint of another run, an empty or dangling
`last_checkpoint` and a damaged checkpoint are refused in one line naming the file (and each differing field)
before the work dir changes."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from contracts.records import read_records
from contracts.resume import ResumeError
from transfer.detection import train as det_train

REPO = Path(__file__).resolve().parents[3]
MINI = "configs/detection/cascade-mask-rcnn_tinyvit-5m_fpn_mini.py"
KILL = Path(__file__).parent / "kill_train.py"
OPTIONS = ["--cfg-options", "randomness.seed=0", "train_cfg.max_iters=4", "train_cfg.val_interval=100",
           "default_hooks.checkpoint.interval=2"] + [f"{loader}.dataset.pipeline.{i}.scale=(64,64)" for loader, i in
                                                     (("train_dataloader", 2), ("val_dataloader", 1),
                                                      ("test_dataloader", 1))]


def _train(mini_coco, work: Path, *args: str, kill: str = "none") -> subprocess.CompletedProcess:
    ann_file, img_dir, _ = mini_coco
    return subprocess.run([sys.executable, str(KILL), kill, MINI, "--data", str(ann_file), str(img_dir),
                           "--work-dir", str(work), "--results-dir", str(work / "records"), *args, *OPTIONS],
                          capture_output=True, text=True, timeout=600, cwd=REPO,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def _snapshot(work: Path) -> dict[str, bytes]:
    return {str(p.relative_to(work)): p.read_bytes() for p in sorted(work.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def killed(mini_coco, tmp_path_factory) -> Path:
    """A run (checkpoints every 2 iterations, the last one kept) SIGKILLed while writing iter_4.pth, its last: the
    complete iter_2.pth is still there (MMEngine alone removes it before writing the next), with the temp file of
    iter_4.pth beside it."""
    work = tmp_path_factory.mktemp("det") / "killed"
    proc = _train(mini_coco, work, kill="save=iter_4.pth")
    assert proc.returncode == -9, proc.stderr[-3000:]
    assert (work / "last_checkpoint").read_text().strip() == str(work / "iter_2.pth")
    assert (work / "iter_2.pth").is_file() and not (work / "iter_4.pth").exists()
    assert [p.name[:len(".iter_4.pth.")] for p in work.glob(".*.tmp")] == [".iter_4.pth."]
    return work


@pytest.mark.slow
def test_killed_and_resumed_equals_the_uninterrupted_run(mini_coco, killed, tmp_path):
    reference = _train(mini_coco, tmp_path / "reference")
    assert reference.returncode == 0, reference.stderr[-3000:]
    work = tmp_path / "resumed"  # a copy: the refusal test below reads the killed work dir as it was
    for name, content in _snapshot(killed).items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_bytes(content)
    (work / "last_checkpoint").write_text(str(work / "iter_2.pth"))
    resumed = _train(mini_coco, work, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from {work / 'iter_2.pth'} (iter 2)" in resumed.stdout + resumed.stderr
    assert list(work.rglob("*.tmp")) == []  # the killed write's temp file, removed at the start
    assert sorted(p.name for p in work.glob("iter_*.pth")) == ["iter_4.pth"]  # max_keep_ckpts=1 still holds
    a = torch.load(tmp_path / "reference/iter_4.pth", weights_only=True)
    b = torch.load(work / "iter_4.pth", weights_only=True)
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    (want,), (got,) = read_records(tmp_path / "reference/records"), read_records(work / "records")
    assert got["metrics"] == want["metrics"] and got["task"] == "detection"


def test_another_run_and_bad_files_are_refused_before_the_work_dir_changes(mini_coco, killed, tmp_path):
    ann_file, img_dir, _ = mini_coco
    args = [MINI, "--data", str(ann_file), str(img_dir), "--work-dir", str(killed), "--resume"]

    def refused(*extra: str, options: tuple[str, ...] = ()) -> str:
        before = _snapshot(killed)
        with pytest.raises(ResumeError) as err:
            det_train.main([*args, *extra, *OPTIONS, *options])
        assert _snapshot(killed) == before, "a refused resume changed the work dir"
        assert "\n" not in str(err.value)
        return str(err.value)

    checkpoint = killed / "iter_2.pth"
    assert refused(options=("optim_wrapper.optimizer.lr=0.001",)) == (
        f"cannot resume from {checkpoint}: it belongs to another run: optim_wrapper.optimizer.lr: saved 0.0004, "
        "requested 0.001; to continue anyway with the requested values, rerun with --resume-anyway "
        "optim_wrapper.optimizer.lr (or start a new work dir)")
    assert "randomness.seed: saved 0, requested 1" in refused(options=("randomness.seed=1",))
    assert "train_cfg.max_iters: saved 4, requested 6" in refused(
        "--resume-anyway", "optim_wrapper", options=("train_cfg.max_iters=6",))

    marker, good = killed / "last_checkpoint", checkpoint.read_bytes()
    content = marker.read_text()
    try:
        marker.write_text("")
        assert refused().startswith(f"cannot resume: {marker} is empty")
        marker.write_text(str(killed / "iter_9.pth"))
        assert refused().startswith(f"cannot resume: {marker} names {killed / 'iter_9.pth'}, which does not exist")
        marker.write_text(content)
        checkpoint.write_bytes(good[:len(good) // 2])
        assert refused().startswith(f"cannot resume: {checkpoint}: truncated or corrupted checkpoint")
    finally:
        marker.write_text(content)
        checkpoint.write_bytes(good)
    other = tmp_path / "weights.pth"  # a backbone checkpoint is not a training checkpoint
    torch.save({"state_dict": {"w": torch.zeros(1)}}, other)
    assert refused(str(other)) == (f"cannot resume from {other}: not an MMEngine training checkpoint (no meta.iter / "
                                   "state_dict)")
