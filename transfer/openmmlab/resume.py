"""`--resume` of the dense harness under the project's resume contract (`contracts.resume`, docs/resume.md).

MMEngine's Runner resumes from the checkpoint `<work_dir>/last_checkpoint` names (or `--resume CKPT`): `iter_N.pth`
/ `epoch_N.pth` with the model, optimizer, schedulers and message hub. The harness's checkpoint hook
(`PlainCheckpointHook`) adds to that checkpoint's meta the identity of the run (`run_identity`: the config without
the keys that only log, save or place the run, plus the world size), the torch RNG states and the changes accepted
at earlier resumes. Before the Runner is built, so before anything in the work dir changes, `check_resume_file`
reads the file the Runner would resume from with the checkpoint reader (`backbones.read_checkpoint`: a bad file is
named in one line) and compares its identity with the requested run's: a difference is refused naming the file,
the field and both values, unless `--resume-anyway [FIELD ...]` accepts it; the accepted changes go into the config
(`RESUME_CHANGES`, hence into the logs, every later checkpoint's meta and the result record).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

from mmengine.config import Config

from contracts.resume import ResumeError, changes_record, check_resume, describe, run_identity

RESUME_CHANGES = "resume_changes"  # config key: the changes accepted at every resume of the run, in order
NEUTRAL = ("work_dir", "resume", "load_from", "launcher", "default_hooks.logger", "default_hooks.checkpoint",
           "default_hooks.timer", "default_hooks.visualization", "log_processor", "log_level", "visualizer",
           "env_cfg", RESUME_CHANGES)


def harness_identity(cfg: Config, world_size: int) -> dict[str, Any]:
    """The run identity of a dense-harness config (`NEUTRAL` keys left out) at `world_size` processes."""
    return {**run_identity(cfg.to_dict(), NEUTRAL), "world_size": int(world_size)}


def requested_world_size(cfg: Config) -> int:
    """The world size a Runner built from `cfg` will have (torchrun sets WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1")) if cfg.get("launcher", "none") != "none" else 1


def resume_file(cfg: Config) -> Path | None:
    """The checkpoint the Runner will resume from: `load_from` (--resume CKPT), else the one
    `<work_dir>/last_checkpoint` names; None when there is none (the Runner then starts afresh)."""
    if cfg.get("load_from"):
        return Path(cfg.load_from)
    marker = Path(cfg.work_dir) / "last_checkpoint"
    if not marker.is_file():
        return None
    named = marker.read_text().strip()
    if not named:
        raise ResumeError(f"cannot resume: {marker} is empty (a kill while MMEngine wrote it); name the checkpoint "
                          "to resume from: --resume CKPT")
    if not Path(named).is_file():
        raise ResumeError(f"cannot resume: {marker} names {named}, which does not exist; name the checkpoint to "
                          "resume from: --resume CKPT")
    return Path(named)


def check_resume_file(cfg: Config, accept: bool | Iterable[str] = False) -> str:
    """Refuse to resume from a bad checkpoint or another run's (see the module doc); with accepted changes, add
    them to `cfg[RESUME_CHANGES]`. Returns a line for the log ('' when there is nothing to resume from)."""
    from backbones import read_checkpoint
    path = resume_file(cfg)
    if path is None:
        return ""
    try:
        checkpoint = read_checkpoint(path)
    except ValueError as err:
        raise ResumeError(f"cannot resume: {err}") from None
    meta = checkpoint.get("meta")
    if not isinstance(meta, dict) or "iter" not in meta or "state_dict" not in checkpoint:
        raise ResumeError(f"cannot resume from {path}: not an MMEngine training checkpoint (no meta.iter / "
                          "state_dict)")
    requested = harness_identity(cfg, requested_world_size(cfg))
    saved = meta.get("run_identity")
    if saved is None and accept is not True:
        raise ResumeError(f"cannot resume from {path}: it holds no run identity (written without "
                          "tinyvit_bench.PlainCheckpointHook), so it cannot be checked against this run; rerun with "
                          "--resume-anyway to resume from it unchecked")
    changes = check_resume(path, saved, requested, accept=accept) if saved is not None else []
    cfg[RESUME_CHANGES] = list(meta.get("accepted_resume_changes", []))
    if changes:
        cfg[RESUME_CHANGES].append({"iter": int(meta["iter"]), "file": str(path), "changes": changes_record(changes)})
    return (f"resuming from {path} (iter {meta['iter']})"
            + (f"; accepted changes: {describe(changes)}" if changes else "")
            + ("; unchecked: it holds no run identity" if saved is None else ""))
