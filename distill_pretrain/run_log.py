"""What a training run writes about itself: `train.log` (text), `log.jsonl` (scalars by step), TensorBoard `tb/`,
and the progress lines (rate, ETA) built from the step values the loop reads from the device in one copy.

Nothing is written until the first line: a run logs only after its resume state was read and accepted, so a
refused resume leaves the work dir as it was. The first line opens the logs: the temp files that killed atomic
writes left in the work dir are removed (`contracts.fileio` policy), and every log is appended to, never
truncated, so the logs of every attempt of a run stay, each resume marked by a line (`mark_resume`).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Mapping

import torch

from contracts.fileio import remove_orphaned_temps

# the folders of a work dir that the trainer writes atomically into
SWEPT = (".", "records")


class RunLog:
    """The logs of one work dir; on other ranks than the main one, lines go to the console only.

    `train.log` is appended to line by line (opened and closed per line), not held by a logging handler: a run in
    a process that lives on (a benchmark, a test, the demo) leaves no handler on MMEngine's loggers pointing into
    its work dir."""

    def __init__(self, work_dir: str | Path, main: bool = True) -> None:
        self.work_dir = Path(work_dir)
        self.main = main
        self.console: Any = None
        self.removed: list[Path] = []  # temp files of killed writes, removed when the logs opened
        self._tb: Any = None

    def open(self) -> None:
        """Create the work dir and remove orphaned temp files (main rank), once; the console logger."""
        if self.console is not None:
            return
        from mmengine.logging import MMLogger
        self.console = MMLogger.get_instance("distill_pretrain")  # console only, shared by the process's runs
        if self.main:
            self.work_dir.mkdir(parents=True, exist_ok=True)
            for folder in SWEPT:
                self.removed += remove_orphaned_temps(self.work_dir / folder)
        if self.removed:
            self.info(f"removed {len(self.removed)} temp files of interrupted writes: "
                      f"{', '.join(p.name for p in self.removed)}")

    def info(self, msg: str) -> None:
        """One line on the console and appended to `train.log` (main rank)."""
        if self.main:
            self.open()
            self.console.info(msg)
            with open(self.work_dir / "train.log", "a") as f:
                f.write(f"{time.strftime('%Y/%m/%d %H:%M:%S')} - distill_pretrain - INFO - {msg}\n")

    def scalars(self, values: Mapping[str, Any], step: int) -> None:
        """One `log.jsonl` row (one write) and the TensorBoard scalars (numbers only)."""
        if not self.main:
            return
        self.open()
        with open(self.work_dir / "log.jsonl", "a") as f:
            f.write(json.dumps({"step": step, **values}) + "\n")
        if self._tb is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self._tb = SummaryWriter(str(self.work_dir / "tb"))
            except ImportError:
                self._tb = False
        if self._tb:
            for k, v in values.items():
                if isinstance(v, (int, float)):
                    self._tb.add_scalar(k, v, step)

    def flush(self) -> None:
        """Close the TensorBoard writer (its thread flushes on its own clock otherwise); the next scalars reopen it."""
        if self._tb:
            self._tb.close()
            self._tb = None

    def mark_resume(self, path: Path, epoch: int, batch: int, step: int, changes: str) -> None:
        """The line (and `log.jsonl` row) that marks where a resumed attempt starts."""
        self.info(f"resumed from {path}: epoch {epoch}, batch {batch}, step {step}"
                  + (f"; accepted changes: {changes}" if changes else ""))
        self.scalars({"resumed_from": str(path), **({"accepted_changes": changes} if changes else {})}, step)


class StepStats:
    """The objective's outputs over the micro-batches of one optimizer step, summed on the device (not read)."""

    def __init__(self) -> None:
        self.sums: dict[str, Any] = {}
        self.counts: dict[str, int] = {}

    def add(self, out: Mapping[str, Any]) -> None:
        for key, value in out.items():
            value = value.detach().float() if isinstance(value, torch.Tensor) else float(value)
            self.sums[key] = self.sums[key] + value if key in self.sums else value
            self.counts[key] = self.counts.get(key, 0) + 1

    def row(self, lr: float, grad_norm: torch.Tensor | float, skipped: int) -> dict[str, Any]:
        """The step's history row in `read_rows`' form: means as (sum, count), read later."""
        rates = {k: (self.sums[k], self.counts[k]) for k in self.sums if k != "loss"}
        return {"loss": (self.sums.get("loss", 0.0), max(self.counts.get("loss", 0), 1)), "lr": lr,
                "grad_norm": (grad_norm, 1), **rates, "skipped": skipped}


def read_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows with every (value, count) pair → float(value) / count, all device tensors read in one copy."""
    tensors = [v[0] for row in rows for v in row.values() if isinstance(v, tuple) and torch.is_tensor(v[0])]
    read = iter(torch.stack([t.float().reshape(()).to(tensors[0].device) for t in tensors]).tolist()
                if tensors else [])

    def mean(value: Any, count: int) -> float:
        return (next(read) if torch.is_tensor(value) else float(value)) / count

    return [{k: mean(*v) if isinstance(v, tuple) else v for k, v in row.items()} for row in rows]


class Progress:
    """The loop's clock: each step's time, images per second over the last log window, the ETA, and the samples
    left out as unreadable (their number and first messages)."""

    def __init__(self, start_step: int, stop_at: int) -> None:
        self.start_step, self.stop_at = start_step, stop_at
        self.t_run = self.t_window = self.t_step = time.perf_counter()
        self.images = 0  # since the last log line
        self.steps_run = 0
        self.skipped, self.errors = 0, []

    def add_batch(self, batch: Mapping[str, Any], world_size: int) -> None:
        """Count a prepared micro-batch: its images (all ranks) and its unreadable samples."""
        self.skipped += batch["skipped"]
        if batch["skipped"] and len(self.errors) < 5:
            self.errors += batch["errors"][:5 - len(self.errors)]
        self.images += batch["image"].shape[0] * world_size

    def step_done(self) -> float:
        """Seconds since the previous step (or restart) ended: this step's time."""
        now = time.perf_counter()
        seconds, self.t_step = now - self.t_step, now
        self.steps_run += 1
        return seconds

    def add_wait(self, seconds: float) -> None:
        """A wait for the device at a log line, counted into the step just done."""
        self.t_step += seconds

    def restart(self) -> None:
        """Checkpoint and evaluation time is not the next step's."""
        self.t_step = time.perf_counter()

    def line(self, epoch: int, batch: int, steps_per_epoch: int, step: int, total_steps: int,
             record: Mapping[str, float], lr: float) -> tuple[str, float]:
        """The progress line of `step` and the rate it shows (img/s over the window since the last line)."""
        ips = self.images / max(self.t_step - self.t_window, 1e-9)
        eta = (self.t_step - self.t_run) / self.steps_run * (self.stop_at - step)
        self.t_window, self.images = self.t_step, 0
        extras = " ".join(f"{k} {v:.3f}" for k, v in record.items() if k not in ("loss", "lr", "grad_norm", "skipped"))
        text = (f"epoch {epoch} [{batch}/{steps_per_epoch}] step {step}/{total_steps} loss {record['loss']:.4f} "
                f"lr {lr:.3e} grad_norm {record['grad_norm']:.3f} {extras} {ips:.1f} img/s eta {fmt_eta(eta)}"
                + (f" | {self.skipped} unreadable images skipped" if self.skipped else ""))
        return text, ips

    def summary(self, step: int, total_steps: int) -> str:
        """The run's last line."""
        per_step = (time.perf_counter() - self.t_run) / max(self.steps_run, 1)
        return (f"stopped at step {step}/{total_steps} after {self.steps_run} steps ({per_step:.3f} s/step); from "
                f"step {self.start_step}" + (f"; skipped {self.skipped} samples with unreadable images: "
                                             f"{'; '.join(self.errors)}" if self.skipped else ""))


def fmt_eta(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600:d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
