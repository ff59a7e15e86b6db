"""SIGKILL a real distillation run at random moments, rerun it with --resume each time, and compare the end with the
uninterrupted run: the resume contract (docs/resume.md) checked under kills, on the machine at hand.

    python -m benchmarks.resume_kills [--out results/resume_kills] [--images 880] [--epochs 6] [--kills 9]
        [--save-interval 7] [--seed 0] [--quick]

1. store      MobileNetV2 top-10 logits over the first --images Fashion-MNIST training images at 64 px, 2 epochs
              (`distill_pretrain.save_logits`; the student cycles them over --epochs)
2. reference  TinyViT-5M at 64 px distilled from it (configs/distill/tinyvit_5m_fmnist_tiny_cpu.py, batch 32, EMA
              0.99, a resume state every --save-interval steps), `python -m distill_pretrain.train`, uninterrupted
3. killed     the same command SIGKILLed at a random moment of its training: a seeded delay after its first log
              line, U(0.1, 1) x r T / (k + 1) (T = the reference's training time, r = the share of steps left after
              the last resume state, k = kills left: the run does not end before its --kills kills), rerun with
              --resume each time, then run to its end
4. compare    checkpoint.pth, checkpoint_ema.pth and resume.pth tensor by tensor (the step history without its
              timings), every log.jsonl row of the killed run against the reference's row of its step; the temp files
              left in the work dir
5. refusals   the finished work dir, resumed from bad files and other runs' states by the CLI: a truncated resume.pth
              (as WORK_DIR/resume.pth and as --resume FILE), an empty one, checkpoint.pth as --resume FILE, the state
              of a student.arch=11m run, the run resumed with optim.lr=2e-3: each refusal's message and whether the
              work dir changed
Prints the report and writes it with the machine and date to OUT/resume_kills.md and OUT/resume_kills.json.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any, Sequence

from contracts.fileio import atomic_write_text
from contracts.provenance import REPO_ROOT, git_commit, machine_description

STUDENT_CONFIG = REPO_ROOT / "configs/distill/tinyvit_5m_fmnist_tiny_cpu.py"
STORE_CONFIG = REPO_ROOT / "configs/distill/save_logits_mobilenetv2_fmnist.py"
CHECKPOINTS = ("checkpoint.pth", "checkpoint_ema.pth", "resume.pth")
TIMING = ("step_s", "train/img_per_s")  # wall-clock values: the only ones a resume may change


def _run(args: Sequence[str], kill_after: float | None = None, log: Path | None = None) -> tuple[int, str]:
    """A `python -m ...` subprocess (one thread, like the reference; its stderr to a file); SIGKILLed `kill_after`
    seconds after `log` grew (the run's first line: it started training) unless it ended first. Returns (exit
    status, stderr's last line)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}
    size = log.stat().st_size if log is not None and log.is_file() else 0
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([sys.executable, "-m", *args], cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=err, text=True)
        if kill_after is not None:
            while proc.poll() is None and log is not None and not (log.is_file() and log.stat().st_size > size):
                time.sleep(0.05)
            time.sleep(kill_after)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
        proc.wait()
        err.seek(0)
        lines = [line for line in err.read().splitlines() if line.strip()]
    return proc.returncode, lines[-1] if lines else ""


def _train_args(out: Path, work: Path, a: argparse.Namespace, *flags: str, options: Sequence[str] = ()) -> list[str]:
    """The run's `python -m distill_pretrain.train` arguments; `options`: more --cfg-options."""
    return ["distill_pretrain.train", str(STUDENT_CONFIG), "--work-dir", str(work), *flags, "--cfg-options",
            f"store.path={out / 'store'}", f"data.train.limit={a.images}", f"epochs={a.epochs}", "ema.decay=0.99",
            f"save_interval={a.save_interval}", "log_interval=1", "record=False", "data.val=None", *options]


def _same(a: Any, b: Any) -> tuple[int, list[str]]:
    """(tensors compared, the paths that differ), wall-clock timings aside."""
    import torch
    if isinstance(a, dict) and isinstance(b, dict):
        n, bad = 0, [] if set(a) == set(b) else [f"keys {sorted(set(a) ^ set(b))}"]
        for key in set(a) & set(b) - set(TIMING):
            m, diff = _same(a[key], b[key])
            n, bad = n + m, bad + [f"{key}.{d}" if d else str(key) for d in diff]
        return n, bad
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b):
        n, bad = 0, []
        for i, (x, y) in enumerate(zip(a, b)):
            m, diff = _same(x, y)
            n, bad = n + m, bad + [f"[{i}]{d}" for d in diff]
        return n, bad
    if torch.is_tensor(a) and torch.is_tensor(b):
        return 1, [] if torch.equal(a, b) else [""]
    return 0, [] if a == b else [""]


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _state_step(work: Path) -> int | None:
    import torch
    path = work / "resume.pth"
    return int(torch.load(path, weights_only=True)["step"]) if path.is_file() else None


def kill_and_resume(out: Path, a: argparse.Namespace) -> dict[str, Any]:
    """Step 3: the kills, then the run to its end; where each kill landed."""
    import torch
    history = torch.load(out / "reference/resume.pth", weights_only=True)["history"]
    steps_s = sum(h["step_s"] for h in history)
    work, rng, kills = out / "killed", random.Random(a.seed), []
    while len(kills) < a.kills:
        before = _state_step(work)
        left = 1 - (before or 0) / len(history)
        delay = rng.uniform(0.1, 1) * left * steps_s / (a.kills - len(kills) + 1)
        status, _ = _run(_train_args(out, work, a, *(["--resume"] if before is not None else [])), delay,
                         work / "train.log")
        if status != -signal.SIGKILL:
            break  # it finished before the kill
        temps = sorted(p.name for p in work.glob(".*.tmp"))
        kills.append({"after_s": round(delay, 1), "state_step_before": before, "state_step_after": _state_step(work),
                      "temp_files_left_by_the_kill": temps})
    status, last = _run(_train_args(out, work, a, "--resume"))
    if status != 0:
        raise RuntimeError(f"the last resume of {work} failed: {last}")
    return {"kills": kills, "during_a_save": sum(bool(k["temp_files_left_by_the_kill"]) for k in kills)}


def compare(out: Path) -> dict[str, Any]:
    """Step 4."""
    import torch
    result: dict[str, Any] = {}
    for name in CHECKPOINTS:
        n, diff = _same(torch.load(out / "reference" / name, weights_only=True),
                        torch.load(out / "killed" / name, weights_only=True))
        result[name] = {"tensors": n, "differ": diff}
    expected = {row["step"]: row for row in _rows(out / "reference/log.jsonl")}
    rows = [row for row in _rows(out / "killed/log.jsonl") if "resumed_from" not in row]
    result["log_rows"] = {"rows": len(rows), "reference_rows": len(expected),
                          "differ": [row["step"] for row in rows if _same(row, expected.get(row["step"]))[1]]}
    result["temp_files_left"] = sorted(str(p.relative_to(out)) for p in (out / "killed").rglob("*.tmp"))
    result["resume_lines"] = (out / "killed/train.log").read_text().count("resumed from ")
    return result


def _snapshot(work: Path) -> dict[str, bytes]:
    return {str(p.relative_to(work)): p.read_bytes() for p in sorted(work.rglob("*")) if p.is_file()}


def refusals(out: Path, a: argparse.Namespace) -> list[dict[str, Any]]:
    """Step 5, on a copy of the finished work dir."""
    work, bad = out / "refusals", out / "bad_files"
    for folder in (work, bad):
        shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(out / "killed", work)
    bad.mkdir()
    state = (work / "resume.pth").read_bytes()
    _run(_train_args(out, out / "other_arch", a, options=["student.arch=11m", "stop_after_steps=1"]))
    (bad / "truncated.pth").write_bytes(state[:len(state) // 2])
    cases = [("truncated WORK_DIR/resume.pth", state[:len(state) // 2], [], []),
             ("truncated, as --resume FILE", state, [str(bad / "truncated.pth")], []),
             ("empty WORK_DIR/resume.pth", b"", [], []),
             ("checkpoint.pth as --resume FILE", state, [str(work / "checkpoint.pth")], []),
             ("a student.arch=11m run's state as --resume FILE", state, [str(out / "other_arch/resume.pth")], []),
             ("resumed with optim.lr=2e-3", state, [], ["optim.lr=2e-3"])]
    found = []
    for label, content, file, options in cases:
        (work / "resume.pth").write_bytes(content)
        before = _snapshot(work)
        status, last = _run(_train_args(out, work, a, "--resume", *file, options=options))
        found.append({"case": label, "exit_status": status, "message": last,
                      "work_dir_unchanged": _snapshot(work) == before})
    return found


def report(a: argparse.Namespace, reference_s: float, killed: dict, same: dict, refused: list[dict]) -> str:
    equal = all(not same[name]["differ"] for name in CHECKPOINTS) and not same["log_rows"]["differ"]
    lines = [f"# Resume under SIGKILL ({date.today()}, {machine_description()}, commit {git_commit()})", "",
             f"TinyViT-5M at 64 px from a {a.images}-image Fashion-MNIST store (MobileNetV2 top-10), {a.epochs} epochs "
             f"at batch 32, EMA 0.99, a resume state every {a.save_interval} steps; reference run "
             f"{reference_s:.0f} s.", "",
             f"- kills: {len(killed['kills'])} (seed {a.seed}), {killed['during_a_save']} during a resume-state write "
             f"(a temp file was left by the kill); each followed by --resume; {same['resume_lines']} resume lines "
             "in train.log",
             f"- bitwise equal to the uninterrupted run: {'yes' if equal else 'NO'} ("
             + ", ".join(f"{name} {same[name]['tensors']} tensors"
                         + (f", differ: {same[name]['differ'][:5]}" if same[name]["differ"] else "")
                         for name in CHECKPOINTS)
             + f"; log.jsonl: {same['log_rows']['rows']} rows for {same['log_rows']['reference_rows']} steps, "
             f"{len(same['log_rows']['differ'])} differ)",
             f"- temp files left in the work dir: {len(same['temp_files_left'])} {same['temp_files_left'] or ''}",
             "", "| kill | s after the attempt's first log line | resume state step before → after | temp file left "
             "by the kill |",
             "|---|---|---|---|"]
    lines += [f"| {i + 1} | {k['after_s']} | {k['state_step_before']} → {k['state_step_after']} | "
              f"{', '.join(k['temp_files_left_by_the_kill']) or '-'} |" for i, k in enumerate(killed["kills"])]
    lines += ["", "| refused resume | exit status | work dir unchanged | message |", "|---|---|---|---|"]
    lines += [f"| {r['case']} | {r['exit_status']} | {'yes' if r['work_dir_unchanged'] else 'NO'} | "
              f"`{r['message']}` |" for r in refused]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.resume_kills", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(REPO_ROOT / "results/resume_kills"))
    parser.add_argument("--images", type=int, default=880, help="store and training images")
    parser.add_argument("--epochs", type=int, default=6, help="training epochs (the store's 2 cycled)")
    parser.add_argument("--kills", type=int, help="SIGKILLs, each followed by --resume (default 9; --quick 3)")
    parser.add_argument("--save-interval", type=int, default=7, help="steps between resume states")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill delays")
    parser.add_argument("--quick", action="store_true", help="96 images, 2 epochs, 3 kills, states every 2 steps")
    a = parser.parse_args(argv)
    if a.quick:
        a.images, a.epochs, a.save_interval = 96, 2, 2
    a.kills = a.kills or (3 if a.quick else 9)
    out = Path(a.out)
    for folder in ("store", "reference", "killed", "other_arch"):
        shutil.rmtree(out / folder, ignore_errors=True)
    status, last = _run(["distill_pretrain.save_logits", str(STORE_CONFIG), "--cfg-options",
                         f"store.path={out / 'store'}", f"dataset.limit={a.images}", "epochs=2", "num_workers=0"])
    if status != 0:
        raise RuntimeError(f"save_logits failed: {last}")
    start = time.perf_counter()
    status, last = _run(_train_args(out, out / "reference", a))
    if status != 0:
        raise RuntimeError(f"the reference run failed: {last}")
    reference_s = time.perf_counter() - start
    killed = kill_and_resume(out, a)
    same = compare(out)
    refused = refusals(out, a)
    text = report(a, reference_s, killed, same, refused)
    atomic_write_text(out / "resume_kills.md", text)
    atomic_write_text(out / "resume_kills.json", json.dumps(
        {"date": str(date.today()), "machine": machine_description(), "commit": git_commit(), "args": vars(a),
         "reference_s": reference_s, "killed": killed, "compare": same, "refusals": refused}, indent=1) + "\n")
    print(text, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
