"""The trainer's resume contract with the real writers (`python -m distill_pretrain.train`): SIGKILLs during steps,
during a resume-state write and right after its rename end bitwise equal to the uninterrupted run with no temp
file left; bad resume files and states of other runs are refused in one line naming the file (and every differing
field) before anything in the work dir changes; `--resume-anyway` accepts a deliberate change, logged and
recorded; logs are appended to across resumes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from contracts.resume import ResumeError
from distill_pretrain import train
from distill_pretrain.trainer import Trainer

REPO = Path(__file__).resolve().parents[2]
KILL = Path(__file__).parent / "kill_train.py"
TIMING = ("step_s", "train/img_per_s")  # wall-clock values: the only ones a resume may change


def _run(config: Path, work: Path, *args: str, kill: str | None = None) -> subprocess.CompletedProcess:
    """`python -m distill_pretrain.train` in a subprocess (through `kill_train.py` when `kill` is given)."""
    entry = [str(KILL), kill] if kill else ["-m", "distill_pretrain.train"]
    return subprocess.run([sys.executable, *entry, str(config), "--work-dir", str(work), *args],
                          capture_output=True, text=True, timeout=600, cwd=REPO,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def _assert_same(a: Any, b: Any, where: str = "") -> None:
    """Equal bit for bit (tensors) and by value (the rest), wall-clock timings aside."""
    if isinstance(a, dict):
        assert set(a) == set(b), where
        for key in a:
            if key not in TIMING:
                _assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]")
    elif torch.is_tensor(a):
        assert torch.equal(a, b), where
    else:
        assert a == b, where


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _temp_files(work: Path) -> list[Path]:
    return sorted(work.rglob("*.tmp"))


def _snapshot(work: Path) -> dict[str, bytes]:
    return {str(p.relative_to(work)): p.read_bytes() for p in sorted(work.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_kill_matrix_ends_bitwise_equal_to_the_uninterrupted_run(store, slim_config_file, tmp_path):
    """Killed inside step 3, then during the first resume-state write of the next attempt (half its temp file
    written), then right after the second rename of the next; each time rerun with --resume; the last attempt
    finishes. Resume state every 2 steps and at each epoch's end (8 steps, 2 epochs)."""
    config = slim_config_file(store, save_interval=2, keep_interval=1)
    reference = _run(config, tmp_path / "reference")
    assert reference.returncode == 0, reference.stderr[-3000:]
    work = tmp_path / "killed"
    for kill, args in (("step=3", ()), ("save=1", ("--resume",)), ("rename=2", ("--resume",))):
        proc = _run(config, work, *args, kill=kill)
        assert proc.returncode == -9, (kill, proc.stderr[-3000:])
        if kill == "save=1":
            assert len(_temp_files(work)) == 1  # the half-written state, left by the kill
    done = _run(config, work, "--resume")
    assert done.returncode == 0, done.stderr[-3000:]

    assert _temp_files(work) == []  # removed when the next attempt opened its logs
    names = ("checkpoint.pth", "checkpoint_ema.pth", "checkpoint_epoch1.pth", "checkpoint_epoch2.pth", "resume.pth")
    for name in names:
        _assert_same(torch.load(tmp_path / "reference" / name, weights_only=True),
                     torch.load(work / name, weights_only=True), name)
    expected = {row["step"]: row for row in _rows(tmp_path / "reference/log.jsonl")}
    rows = _rows(work / "log.jsonl")
    redone = [row for row in rows if "resumed_from" not in row]
    assert {row["step"] for row in redone} == set(expected) and len(redone) > len(expected)  # steps done twice
    for row in redone:
        _assert_same(row, expected[row["step"]], f"log.jsonl step {row['step']}")
    marks = [row for row in rows if "resumed_from" in row]
    assert [row["step"] for row in marks] == [2, 2, 4]  # where each of the 3 resumes started
    log = (work / "train.log").read_text()  # every attempt's lines, appended
    assert log.count("objective=stored") == 4 and log.count(f"resumed from {work / 'resume.pth'}") == 3
    assert "removed 1 temp files of interrupted writes: .resume.pth." in log


@pytest.fixture(scope="module")
def started(store, slim_config_file, tmp_path_factory) -> tuple[Path, Path]:
    """(config, work dir) of a run stopped after 2 of its 8 steps by the real CLI (resume state at step 2)."""
    config = slim_config_file(store)
    work = tmp_path_factory.mktemp("started") / "work"
    train.main([str(config), "--work-dir", str(work), "--cfg-options", "stop_after_steps=2"])
    return config, work


def _refused(config: Path, work: Path, *args: str) -> str:
    """Resume with the real CLI; returns the refusal's message after checking the work dir did not change."""
    before = _snapshot(work)
    with pytest.raises(ResumeError) as err:
        train.main([str(config), "--work-dir", str(work), "--resume", *args])
    assert _snapshot(work) == before, "a refused resume changed the work dir"
    message = str(err.value)
    assert "\n" not in message
    return message


def test_bad_resume_files_are_named_and_change_nothing(started, slim_cfg, store, tmp_path):
    config, work = started
    state = work / "resume.pth"
    good = state.read_bytes()
    other = slim_cfg(store, stop_after_steps=1)  # another architecture
    other.student.arch = {**other.student.arch, "embed_dims": [16, 32, 32, 48]}
    Trainer(other, tmp_path / "other").train()
    torch.save([1, 2, 3], tmp_path / "list.pth")
    old = torch.load(state, weights_only=True)  # as the previous version wrote it: no run identity
    torch.save({**{k: v for k, v in old.items() if k not in ("run", "accepted_changes")},
                "format": "tinyvit-bench/resume/v2"}, tmp_path / "v2.pth")
    cases = {
        b"": f"cannot resume: {state}: empty checkpoint file (0 bytes)",
        good[:len(good) // 2]: f"cannot resume: {state}: truncated or corrupted checkpoint",
        (work / "checkpoint.pth").read_bytes(): f"cannot resume from {state}: not a tinyvit-bench/resume/v3 resume "
                                                "state (a student checkpoint: to start from its weights, set "
                                                "student.init)",
        (tmp_path / "list.pth").read_bytes(): f"cannot resume: {state}: not a TinyViT checkpoint (a list",
        (tmp_path / "v2.pth").read_bytes(): f"cannot resume from {state}: not a tinyvit-bench/resume/v3 resume state "
                                            "(written by an older version, without the run identity: start a new "
                                            "work dir)",
        (tmp_path / "other/resume.pth").read_bytes(): f"cannot resume from {state}: it belongs to another run: "
                                                      "student.arch.embed_dims: saved [16, 32, 32, 48], requested "
                                                      "[16, 32, 32, 64]",
    }
    try:
        for content, message in cases.items():
            state.write_bytes(content)
            assert _refused(config, work).startswith(message)
            bad = tmp_path / "bad.pth"  # the same file named on the command line
            bad.write_bytes(content)
            assert _refused(config, work, str(bad)).startswith(message.replace(str(state), str(bad)))
    finally:
        state.write_bytes(good)
    with pytest.raises(FileNotFoundError, match="--resume .*missing.pth: no such resume file"):
        train.main([str(config), "--work-dir", str(work), "--resume", str(tmp_path / "missing.pth")])


def test_another_runs_state_is_refused_until_accepted(started, tensor_store, tmp_path):
    config, work = started
    lr = _refused(config, work, "--cfg-options", "optim.lr=0.002")
    assert lr == (f"cannot resume from {work / 'resume.pth'}: it belongs to another run: optim.lr: saved 0.001, "
                  "requested 0.002; to continue anyway with the requested values, rerun with --resume-anyway "
                  "optim.lr (or start a new work dir)")
    # another store: its identity differs field by field (pipeline, seeds' base, ...)
    assert "store_identity.pipeline: saved 'pil', requested 'tensor'" in _refused(
        config, work, "--cfg-options", f"store.path={tensor_store}")
    # another batch size moves every position in the data: refused even with --resume-anyway
    assert _refused(config, work, "--resume-anyway", "--cfg-options", "data.batch_size=8").endswith(
        "it belongs to another run: batches_per_epoch: saved 8, requested 4; these cannot change within a run "
        "(the data position would not carry over): start a new work dir")
    # a field not named in --resume-anyway stays refused
    assert "optim.lr" in _refused(config, work, "--resume-anyway", "optim.weight_decay", "--cfg-options",
                                  "optim.lr=0.002")

    copy = tmp_path / "accepted"  # the started run, resumed with a deliberate change of lr
    copy.mkdir()
    for name, content in _snapshot(work).items():
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        (copy / name).write_bytes(content)
    log_before = (copy / "train.log").read_text()
    trainer = train.main([str(config), "--work-dir", str(copy), "--resume", "--resume-anyway", "optim",
                          "--cfg-options", "optim.lr=0.002", "stop_after_steps=2"])
    assert trainer.step == 4
    change = {"step": 2, "file": str(copy / "resume.pth"), "changes": {"optim.lr": [0.001, 0.002]}}
    assert torch.load(copy / "resume.pth", weights_only=True)["accepted_changes"] == [change]
    assert torch.load(copy / "checkpoint.pth", weights_only=True)["meta"]["accepted_resume_changes"] == [change]
    log = (copy / "train.log").read_text()
    assert log.startswith(log_before)  # appended to, never truncated
    assert (f"resumed from {copy / 'resume.pth'}: epoch 0, batch 4, step 2; accepted changes: optim.lr: saved "
            "0.001, requested 0.002") in log
    marks = [row for row in _rows(copy / "log.jsonl") if "resumed_from" in row]
    assert marks == [{"step": 2, "resumed_from": str(copy / "resume.pth"),
                      "accepted_changes": "optim.lr: saved 0.001, requested 0.002"}]
    # the state now names the run with the new lr: resuming it again needs no override, the old lr is refused
    assert train.main([str(config), "--work-dir", str(copy), "--resume", "--cfg-options", "optim.lr=0.002",
                       "stop_after_steps=1"]).step == 5
    assert "optim.lr: saved 0.002, requested 0.001" in _refused(config, copy)
