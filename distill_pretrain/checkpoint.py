"""What a student run keeps beside its weights: the store identity its checkpoint meta names, and the RNG state
its resume state carries. The checkpoint file itself (contract 2) is `contracts.checkpoint`'s."""
from __future__ import annotations

from typing import Any, Mapping

import torch

from contracts.checkpoint import plain

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
