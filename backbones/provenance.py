"""The record's `backbone` block for weights read from a checkpoint file: source, pretraining, sha256.

One function for every harness (detection, segmentation, probes, the trainer), so a checkpoint is described the
same way wherever it is used. Our checkpoints (contract 2) say what made them in `meta`; third-party files name
their layout (`timm`, `official`, `mmpretrain`) and their pretraining only through the caller (`--pretrain`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from contracts.fileio import file_sha256
from contracts.records import backbone_block

from .checkpoint import convert_state_dict, read_checkpoint

# the trainer's `mode`/`objective` → the record's backbone.source
OBJECTIVE_SOURCES = {"stored": "distill", "online": "distill", "dmae": "distill", "tinymim": "distill",
                     "scratch": "scratch", "mae": "scratch", "finetune": "finetune"}


def describe_checkpoint(path: str | Path | None, name: str, *, pretrain: str | None = None,
                        allow_pickle: bool = False, **extra: Any) -> dict[str, Any]:
    """`backbone` block of a record for a backbone called `name` initialised from `path` (None: random init).

    `pretrain` overrides what the file says; for third-party files that say nothing it defaults to 'unknown'.
    """
    if path is None:
        return backbone_block(name, "random", **extra)
    path = Path(path)
    obj = read_checkpoint(path, allow_pickle=allow_pickle)
    meta = obj.get("meta") if isinstance(obj.get("meta"), dict) else {}
    if obj.get("format"):
        objective = meta.get("objective", meta.get("mode"))
        source = OBJECTIVE_SOURCES.get(objective, "checkpoint")
        pretrain = pretrain or meta.get("pretrain") or "unknown"
    else:
        try:
            source = convert_state_dict(obj.get("state_dict", obj.get("model", obj)))[1]
        except ValueError:
            source = "checkpoint"
        pretrain = pretrain or "unknown"
    return backbone_block(name, source, pretrain=pretrain, checkpoint_sha256=file_sha256(path),
                          checkpoint=path.name, **extra)
