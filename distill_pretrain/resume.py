"""The trainer's resume state, `resume.pth`, under the project's resume contract (`contracts.resume`, docs/resume.md):
what it holds (`trainer_state`), the run it names (`trainer_identity`), how it is read (`read_resume_state`) and
loaded after the comparison (`restore_trainer`). `Trainer.state_dict` / `load_state_dict` / `resume` call these.

The state (plain types and tensors, `torch.load(weights_only=True)` reads it) holds the student, objective,
optimizer, EMA, AMP scaler, every rank's RNG, the step and the position inside the epoch, the step history, the
changes accepted at earlier resumes, and `run`: the identity of the run that wrote it and its hash.

The identity (`trainer_identity`) is the resolved config without the keys that do not change what is computed
(`NEUTRAL`: logging, saving, evaluation, stopping, workers, device), with what the config only points at replaced by
its content: the training set's identity (type, length, sha256 of its samples), the store's (manifest: format,
teacher, top-K, transform hash, data set, ...), the init checkpoint's sha256, so a moved file is the same run and an
edited one is not; plus the world size and the batches per epoch (`FIXED`: the saved position inside the data has a
meaning only for these, no override accepts another value).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

import torch.distributed as dist

from contracts.resume import Change, ResumeError, changes_record, check_resume, flatten, identity_sha256, run_identity

from contracts.checkpoint import plain

from .checkpoint import rng_state, set_rng_state, store_identity

RESUME_FORMAT = "tinyvit-bench/resume/v3"
STATE_FILE = "resume.pth"
NEUTRAL = ("work_dir", "log_interval", "save_interval", "keep_interval", "eval_interval", "eval_before_train",
           "eval_teacher_agreement", "record", "stop_after_steps", "device", "cudnn_benchmark", "data.num_workers",
           "data.prefetch_factor", "data.val",
           "data.train", "store.path", "store.expect", "student.init")  # these four: by content below
FIXED = ("world_size", "batches_per_epoch")


def trainer_identity(trainer: Any) -> dict[str, Any]:
    """The run identity of a `Trainer` (see the module doc)."""
    from contracts.fileio import file_sha256
    cfg, data = trainer.cfg, trainer.replay.dataset.dataset
    manifest = trainer.store.manifest if trainer.store is not None else None
    init = cfg.student.get("init")
    content = {"world_size": trainer.dist.world_size, "batches_per_epoch": trainer.batches_per_epoch,
               # a data set built by a caller without an identity is named by its class and length
               "train_data": getattr(data, "identity", None) or {"type": type(data).__name__, "length": len(data)},
               "store_identity": {**store_identity(manifest), "teacher": plain(manifest.get("teacher"))}
               if manifest else None,
               "teacher_identity": trainer.teacher_identity if trainer.objective.needs_teacher else None,
               "student": {"init_sha256": file_sha256(init) if init else None}}
    return {**run_identity(cfg.to_dict(), NEUTRAL), **flatten(content)}


def trainer_state(trainer: Any) -> dict[str, Any]:
    """The resume state of a `Trainer` whose step values are all read (every rank's RNG: collective under DDP)."""
    rngs = [rng_state()]
    if trainer.dist.world_size > 1:
        rngs = [None] * trainer.dist.world_size
        dist.all_gather_object(rngs, rng_state())
    return {"format": RESUME_FORMAT,
            "run": {"identity": trainer.run_identity, "sha256": identity_sha256(trainer.run_identity)},
            "model": trainer.model.state_dict(), "objective": trainer.objective.state_dict(),
            "optimizer": trainer.optimizer.state_dict(), "scaler": trainer.scaler.state_dict(),
            "ema": trainer.ema.module.state_dict() if trainer.ema else None,
            "rng": rngs, "step": trainer.step, "epoch": trainer.epoch, "batch_in_epoch": trainer.batch_in_epoch,
            "history": trainer.history, "accepted_changes": trainer.accepted_changes}


def restore_trainer(trainer: Any, state: Mapping[str, Any], accept: bool | Iterable[str] = False,
                    source: str | Path = "resume state") -> list[Change]:
    """Load `state` into a `Trainer` after `check_resume` of its run against the trainer's (`FIXED` fields are
    never accepted); returns the accepted changes, also appended to the trainer's `accepted_changes`. A state
    that still does not fit (an accepted change of shape) raises `ResumeError` naming `source` and the part."""
    if state.get("format") != RESUME_FORMAT:
        raise ResumeError(f"{source}: not a resume state ({state.get('format')!r} != {RESUME_FORMAT!r})")
    changes = check_resume(source, state["run"]["identity"], trainer.run_identity, accept=accept, fixed=FIXED)
    parts = {"model": trainer.model, "objective": trainer.objective, "optimizer": trainer.optimizer,
             "scaler": trainer.scaler}
    if trainer.ema is not None and state["ema"] is not None:
        parts["ema"] = trainer.ema.module
    for key, part in parts.items():
        try:
            part.load_state_dict(state[key])
        except (RuntimeError, ValueError, KeyError) as err:
            raise ResumeError(f"cannot resume from {source}: its {key} state does not fit this run "
                              f"({str(err).strip().splitlines()[0][:300]})") from None
    set_rng_state(state["rng"][trainer.dist.rank])
    trainer.step, trainer.epoch, trainer.batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
    trainer.history = list(state["history"])
    trainer.accepted_changes = list(state["accepted_changes"])
    if changes:
        trainer.accepted_changes.append({"step": trainer.step, "file": str(source),
                                         "changes": changes_record(changes)})
    return changes


def read_resume_state(path: str | Path) -> dict[str, Any]:
    """A resume state read with the checkpoint reader (`backbones.read_checkpoint`); a file that cannot be one
    raises `ResumeError` in one line naming it and the cause (empty, truncated, not a resume state)."""
    from backbones import CHECKPOINT_FORMAT, read_checkpoint
    try:
        state = read_checkpoint(path)
    except ValueError as err:
        raise ResumeError(f"cannot resume: {err}") from None
    found = state.get("format")
    if found != RESUME_FORMAT:
        what = ("a student checkpoint: to start from its weights, set student.init" if found == CHECKPOINT_FORMAT
                else "written by an older version, without the run identity: start a new work dir"
                if str(found).startswith(RESUME_FORMAT.rsplit("/", 1)[0]) else f"format {found!r}")
        raise ResumeError(f"cannot resume from {path}: not a {RESUME_FORMAT} resume state ({what})")
    return state
