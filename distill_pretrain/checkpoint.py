"""Contract 2 — the checkpoint a student run leaves, and the resume state kept beside it.

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

`backbones.load_pretrained` and `init_cfg=dict(type='Pretrained', checkpoint=...)` read it unchanged.

The resume state beside it (`resume.pth`) is `distill_pretrain.resume`'s. Every file is written to a temp file,
fsynced and renamed (atomic).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch

from backbones import CHECKPOINT_FORMAT
from contracts.fileio import atomic_write

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


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a contract-2 checkpoint with `weights_only=True`; refuses other formats with the file's name."""
    obj = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(obj, dict) or obj.get("format") != CHECKPOINT_FORMAT:
        found = obj.get("format") if isinstance(obj, dict) else type(obj).__name__
        raise ValueError(f"{path}: not a {CHECKPOINT_FORMAT} checkpoint (format={found!r})")
    return obj


STORE_META = ("format", "num_classes", "topk", "value_format", "index_dtype", "value_dtype", "transform_hash",
              "base_seed", "seed_policy", "chunk_size", "dataset", "pipeline")


def store_identity(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """What a checkpoint's meta `store` keeps of the store's manifest (`STORE_META`, plain types)."""
    return plain({k: manifest[k] for k in STORE_META if k in manifest})


def rng_state() -> dict[str, Any]:
    """Global torch RNG states (CPU + every CUDA device) as tensors."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = [s for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what `rng_state` captured."""
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(state["cuda"]))
