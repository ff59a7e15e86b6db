"""The harness's MMEngine hooks, registered under the project scope `tinyvit_bench` (configs name them
`tinyvit_bench.PlainCheckpointHook` / `tinyvit_bench.MetricHistoryHook`, so they cannot clash with a library's).

- `PlainCheckpointHook`: MMEngine's `CheckpointHook` whose files `torch.load(weights_only=True)` reads (the default
  of torch ≥ 2.6, hence of mmdet's / mmseg's own `tools/test.py` and of `--resume`), written atomically
  (`AtomicLocalBackend`), and which makes `--resume` checked and exact (the run's identity and the RNG states in
  the meta, `transfer.openmmlab.resume`).
- `MetricHistoryHook`: every validation's metrics (record names, fractions) with its iteration/epoch, in
  `<work_dir>/metric_history.json`, kept across `--resume`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import CheckpointHook, Hook
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import Registry

from contracts.fileio import atomic_write, atomic_write_text
from distill_pretrain.checkpoint import rng_state, set_rng_state
from .resume import RESUME_CHANGES, harness_identity
from .task import get_task

SCOPE = "tinyvit_bench"
HOOKS = Registry("hook", parent=MMENGINE_HOOKS, scope=SCOPE)
HISTORY_FILE = "metric_history.json"
ATOMIC_BACKEND = f"{SCOPE}_atomic_local"


class AtomicLocalBackend(LocalBackend):
    """MMEngine's local file backend whose `put` (how `Runner.save_checkpoint` writes) is atomic: a temp file beside
    the target, fsynced and renamed (`contracts.fileio.atomic_write`), so a kill leaves the old file or the new one
    (and a temp file the harness removes at its next start), never a truncated checkpoint."""

    def put(self, obj: bytes, filepath: str | Path) -> None:
        atomic_write(filepath, lambda f: f.write(obj))


register_backend(ATOMIC_BACKEND, AtomicLocalBackend, force=True)


class _RemoveLater:
    """A file backend whose `remove` only notes the path (see `PlainCheckpointHook._save_checkpoint_with_step`)."""

    def __init__(self, backend: Any, removed: list) -> None:
        self._backend, self._removed = backend, removed

    def remove(self, path: str) -> None:
        self._removed.append(path)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)


def to_plain(obj: Any) -> Any:
    """Tensors stay; numpy values become Python numbers / lists; containers are converted recursively."""
    if isinstance(obj, np.generic):  # before the builtins: np.float64 is a float subclass
        return obj.item()
    if isinstance(obj, torch.Tensor) or obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, dict):
        return {to_plain(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_plain(v) for v in obj)
    raise TypeError(f"checkpoint holds a {type(obj).__name__}, which torch.load(weights_only=True) cannot read")


@HOOKS.register_module()
class PlainCheckpointHook(CheckpointHook):
    """MMEngine's `CheckpointHook` (same arguments) writing checkpoints `torch.load(weights_only=True)` reads, and
    resumable under the project's resume contract.

    MMEngine 0.10 stores its logging buffers (`HistoryBuffer`) and numpy scalars, so with torch ≥ 2.6 neither
    `--resume`, `load_from` nor mmdet's / mmseg's `tools/test.py` can read the files it wrote. The buffers only
    smooth logged values, so they are dropped (resuming warns and continues); numpy values become Python values;
    weights, optimizer and scheduler states are kept as they are. Runs after every other hook's
    `before_save_checkpoint` (priority VERY_LOW, as CheckpointHook).

    The meta also gets `run_identity` (what `--resume` compares, `transfer.openmmlab.resume`), the changes accepted
    at resumes, and `rng`: the torch RNG states, restored when a run resumes (MMEngine does not save them: the
    RoI samplers' draws would differ). The data pipeline's numpy draws need no state: an iteration-based loop
    replays the batches it skips on resume, so they come out as in the uninterrupted run.

    Kill-safe saving: files go through `AtomicLocalBackend` unless `backend_args` / `file_client_args` name
    another (a remote `out_dir` needs its own), and with `max_keep_ckpts` the oldest checkpoint is removed after
    the new one and `last_checkpoint` are written (MMEngine 0.10 removes it first: a kill in between left no
    checkpoint to resume from).
    """

    _resumed_rng: dict | None = None

    def __init__(self, *args: Any, backend_args: dict | None = None, **kwargs: Any) -> None:
        if backend_args is None and kwargs.get("file_client_args") is None:
            backend_args = {"backend": ATOMIC_BACKEND}
        super().__init__(*args, backend_args=backend_args, **kwargs)

    def _save_checkpoint_with_step(self, runner, step: int, meta: dict) -> None:  # noqa: ANN001 - mmengine's
        backend, removed = self.file_backend, []
        self.file_backend = _RemoveLater(backend, removed)
        try:
            super()._save_checkpoint_with_step(runner, step, meta)  # saves, writes last_checkpoint; notes removals
        finally:
            self.file_backend = backend
        for path in removed:
            backend.remove(path)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:  # noqa: ANN001 - mmengine's signature
        meta = checkpoint.setdefault("meta", {})
        meta["run_identity"] = harness_identity(runner.cfg, runner.world_size)
        meta["accepted_resume_changes"] = list(runner.cfg.get(RESUME_CHANGES) or [])
        meta["rng"] = rng_state()
        hub = checkpoint.get("message_hub")
        if isinstance(hub, dict):
            hub["log_scalars"] = {}
            hub["resumed_keys"] = {k: v for k, v in hub.get("resumed_keys", {}).items()
                                   if k in hub.get("runtime_info", {})}
        for key in list(checkpoint):
            checkpoint[key] = to_plain(checkpoint[key])

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:  # noqa: ANN001 - mmengine's signature
        self._resumed_rng = (checkpoint.get("meta") or {}).get("rng")

    def before_train(self, runner) -> None:  # noqa: ANN001 - mmengine's signature
        super().before_train(runner)
        if self._resumed_rng is not None and runner.iter > 0:  # resumed (a plain load_from leaves iter at 0)
            set_rng_state(self._resumed_rng)


@HOOKS.register_module()
class MetricHistoryHook(Hook):
    """Appends `{iter, epoch, <record metrics>}` after every validation to `<work_dir>/metric_history.json`.

    `task` names a registered `DenseTask` ('detection' | 'segmentation'), whose converter turns the library's
    metric names and units into the record's (fractions); per-class maps are left out of the curve. On resume the
    entries up to the resumed iteration are kept.
    """

    priority = "LOW"

    def __init__(self, task: str) -> None:
        self.convert = get_task(task).record_metrics
        self.history: list[dict[str, Any]] = []
        self.last: dict[str, Any] = {}

    def before_train(self, runner) -> None:  # noqa: ANN001 - mmengine's signature
        path = Path(runner.work_dir) / HISTORY_FILE
        if path.is_file() and runner.iter > 0:
            self.history = [h for h in json.loads(path.read_text()) if h["iter"] <= runner.iter]

    def after_val_epoch(self, runner, metrics: dict[str, float] | None = None) -> None:  # noqa: ANN001
        self.last = self.convert(metrics or {})
        self.history.append({"iter": runner.iter, "epoch": runner.epoch,
                             **{k: v for k, v in self.last.items() if not isinstance(v, dict)}})
        if runner.rank == 0:
            atomic_write_text(Path(runner.work_dir) / HISTORY_FILE, json.dumps(self.history, indent=1) + "\n")
