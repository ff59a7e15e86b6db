"""Backbone checkpoint files for the loaders: resolving a path or `asset:<name>`, strict partial-load checks, loading
a foreign file by name or by position, and the record block of a third-party file."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import nn


def resolve_checkpoint(checkpoint: str | Path | None) -> Path | None:
    """A checkpoint path, with `asset:<name>` resolved through `contracts.assets`."""
    if checkpoint is None or checkpoint == "":
        return None
    from contracts.assets import asset_weights
    asset = asset_weights(checkpoint)
    if asset is not None:
        return asset
    path = Path(checkpoint).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"backbone checkpoint not found: {path}")
    return path


def asset_pretrain(checkpoint: str | Path | None) -> str | None:
    """The pretraining an `asset:<name>` checkpoint is known to have (None for any other checkpoint)."""
    from contracts.assets import WEIGHTS_PRETRAIN
    text = str(checkpoint)
    return WEIGHTS_PRETRAIN.get(text.split(":", 1)[1]) if text.startswith("asset:") else None


def check_load(where: str, missing: Sequence[str], unexpected: Sequence[str],
               allow_keys: Sequence[str]) -> dict[str, Any]:
    """The record's `load_report` of a partial load; raises when a key outside the `allow_keys` fnmatch patterns
    is missing from the file or unexpected in it (a partly matching checkpoint is an error, not a quiet load)."""
    from backbones.checkpoint import refused_keys
    bad_missing, bad_unexpected = refused_keys(missing, unexpected, allow_keys)
    if bad_missing or bad_unexpected:
        raise ValueError(f"{where}: checkpoint only partly matches the model: {len(bad_missing)} missing "
                         f"{bad_missing[:5]}, {len(bad_unexpected)} unexpected {bad_unexpected[:5]}; pass allow_keys "
                         f"(fnmatch patterns, --allow-keys) to accept them (allowed now: {list(allow_keys)})")
    return {"missing": list(missing), "unexpected": list(unexpected), "allowed": list(allow_keys)}


def load_by_name_or_order(model: nn.Module, state: Mapping[str, torch.Tensor], where: str,
                          allow_keys: Sequence[str]) -> dict[str, Any]:
    """Load by name; a file with foreign names but identical tensor order and shapes loads by position.
    Returns the `load_report` (with `loaded_by`)."""
    own = model.state_dict()
    named = {k: v for k, v in state.items() if k in own}
    if named:
        bad = [k for k, v in named.items() if tuple(v.shape) != tuple(own[k].shape)]
        if bad:
            raise ValueError(f"{where}: key {bad[0]!r} has shape {tuple(state[bad[0]].shape)} in the checkpoint "
                             f"but {tuple(own[bad[0]].shape)} in the model")
        report = check_load(where, [k for k in own if k not in named], [k for k in state if k not in own],
                            allow_keys)
        model.load_state_dict(named, strict=False)
        return {**report, "loaded_by": "name"}
    ours = [k for k in own if not k.endswith("num_batches_tracked")]
    theirs = [k for k in state if not k.endswith("num_batches_tracked")]
    if len(ours) != len(theirs) or any(tuple(own[a].shape) != tuple(state[b].shape) for a, b in zip(ours, theirs)):
        raise ValueError(f"{where}: no key matches the model and the tensors do not match it in order and shape "
                         f"({len(theirs)} tensors in the file, {len(ours)} in the model)")
    model.load_state_dict({a: state[b] for a, b in zip(ours, theirs)}, strict=False)
    return {"missing": [], "unexpected": [], "allowed": list(allow_keys), "loaded_by": "position"}


def file_block(name: str, source: str, path: Path, pretrain: str | None, load_report: dict) -> dict[str, Any]:
    """The record's `backbone` block of a third-party file (official, timm, torchvision): its sha256 and file name,
    the pretraining the caller names (default 'unknown') and the load report."""
    from contracts.fileio import file_sha256
    from contracts.records import backbone_block
    return backbone_block(name, source, pretrain=pretrain or "unknown", checkpoint_sha256=file_sha256(path),
                          checkpoint=path.name, load_report=load_report)
