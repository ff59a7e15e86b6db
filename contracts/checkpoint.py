"""Contract 2 — the checkpoint file a student run leaves: its format and its writer.

Checkpoint (one `torch.save` file of plain types; `torch.load(weights_only=True)` reads it)::

    {"format": "tinyvit-bench/checkpoint/v1",
     "state_dict": {<TinyViT / timm parameter names>: tensor},
     "meta": {"arch": "5m", "img_size": 224, "window_sizes": [7, 7, 14, 7], "num_classes": 21841,
              "objective": "stored", "pretrain": "in21k-distill", "teacher": {...},
              "store": {"topk": 100, "transform_hash": "...", "base_seed": 0, ...}, "config_sha256": "...",
              "epoch": 89, "step": 123, "git_commit": "..."}}

`objective` (the registered objective that trained it) and `pretrain` (config `pretrain_name`) are what
`backbones.provenance.describe_checkpoint` turns into a record's `backbone.source` / `backbone.pretrain`;
`checkpoint_ema.pth` carries the same meta plus `"ema": true`.

Written by `distill_pretrain` (trainer, export); read by `backbones.load_pretrained` (any layout, by name),
`backbones.load_checkpoint` (this format only) and `init_cfg=dict(type='Pretrained', checkpoint=...)` unchanged.
Every file is written to a temp file, fsynced and renamed (atomic).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch

from .fileio import atomic_write

CHECKPOINT_FORMAT = "tinyvit-bench/checkpoint/v1"
_PLAIN = (str, int, float, bool, type(None))


def plain(obj: Any, where: str = "meta") -> Any:
    """`obj` with tuples turned into lists and numpy scalars into Python numbers; anything else non-plain raises."""
    if isinstance(obj, Mapping):
        return {str(k): plain(v, f"{where}.{k}") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, _PLAIN):
        return obj
    item = getattr(obj, "item", None)  # numpy scalars
    if callable(item):
        return item()
    raise TypeError(f"{where}: {type(obj).__name__} is not a plain type (str/int/float/bool/None/list/dict/tensor)")


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """`torch.save` via temp file + fsync + rename: a crash leaves the old file or the new one, never half."""
    return atomic_write(path, lambda f: torch.save(obj, f))


def build_checkpoint(state_dict: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> dict[str, Any]:
    """The contract-2 dict (tensors moved to CPU, metadata checked to be plain)."""
    required = ("arch", "img_size", "window_sizes", "num_classes", "epoch")
    missing = [k for k in required if k not in meta]
    if missing:
        raise ValueError(f"checkpoint meta lacks {missing}")
    return {"format": CHECKPOINT_FORMAT,
            "state_dict": {k: v.detach().cpu().clone() for k, v in state_dict.items()},
            "meta": plain(dict(meta))}


def save_checkpoint(path: str | Path, state_dict: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> Path:
    """Write a contract-2 checkpoint atomically; returns its path."""
    return atomic_torch_save(build_checkpoint(state_dict, meta), path)
