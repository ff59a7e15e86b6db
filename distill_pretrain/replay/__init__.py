"""Replay pipelines: the seeded augmentation of a sample, rebuilt from its store seed, in one of two ways.

* ``pil``: `augment.ReplayDataset` — timm's PIL transform per image in the DataLoader workers (CPU).
* ``tensor``: `replay.tensor` — random parameters and the crop on the CPU, pixel ops batched on the device.

Both draw the same random parameters from a seed; their pixels differ (see `replay.tensor`), so a store records
the pipeline that made it and `replay_for_store` refuses another one unless approximate replay is accepted.

    replay = build_replay("tensor", dataset, aug_cfg, base_seed)       # or replay_for_store(store, dataset)
    loader = DataLoader(replay.dataset, ..., collate_fn=replay.collate)
    for batch in loader:
        batch = replay.finish(batch, device)   # batch["image"]: float B×3×H×W on device; batch["valid"]: readable
        teacher_input = teacher_view(batch)      # batch["teacher_image"] with a student-only jitter, else "image"
        batch, skipped = drop_unreadable(batch)  # training: leave out images a dataset with on_error='skip' replaced
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
from torch.utils.data import Dataset

from ..augment import TEACHER_IMAGE, AugmentConfig, ReplayDataset, collate_replay
from ..augment import PIPELINE as PIL_PIPELINE
from .tensor import PIPELINE as TENSOR_PIPELINE
from .tensor import TensorAugment, TensorReplayDataset, collate_tensor_replay

PIPELINES = (PIL_PIPELINE, TENSOR_PIPELINE)


def _to_device(batch: Mapping[str, Any], device: torch.device | str) -> dict[str, Any]:
    return {**batch, **{k: batch[k].to(device, non_blocking=True) for k in ("image", TEACHER_IMAGE) if k in batch}}


def teacher_view(batch: Mapping[str, Any]) -> torch.Tensor:
    """The images a teacher sees: ``teacher_image`` when the student's view is jittered for it alone, else
    ``image`` (one view for both)."""
    return batch[TEACHER_IMAGE] if TEACHER_IMAGE in batch else batch["image"]


@dataclass
class Replay:
    """A replay pipeline bound to a data set: ``dataset`` (has ``set_epoch``), ``collate`` (the DataLoader's
    collate_fn) and ``finish(batch, device)`` → the batch with its final float ``image`` on ``device``."""

    pipeline: str
    dataset: ReplayDataset
    collate: Callable[[list], dict[str, Any]]
    finish: Callable[[Mapping[str, Any], torch.device | str], dict[str, Any]]


def drop_unreadable(batch: Mapping[str, Any]) -> tuple[dict[str, Any], int]:
    """The batch without its samples whose image (or Mixup/CutMix partner) was unreadable, and how many those were.

    Every per-sample tensor (first dimension = batch size) is filtered; the list ``errors`` is kept for logging.
    """
    valid = batch["valid"]
    n, bad = len(valid), int((~valid).sum())
    if not bad:
        return dict(batch), 0
    out = {}
    for key, value in batch.items():
        if torch.is_tensor(value) and value.dim() and value.shape[0] == n:
            value = value[valid.to(value.device)]
        out[key] = value
    return out, bad


def build_replay(pipeline: str, dataset: Dataset, aug_cfg: AugmentConfig | Mapping[str, Any] | None = None,
                 base_seed: int = 0) -> Replay:
    """The replay of ``dataset`` through ``pipeline`` (one of `PIPELINES`)."""
    if pipeline == PIL_PIPELINE:
        return Replay(pipeline, ReplayDataset(dataset, aug_cfg, base_seed), collate_replay, _to_device)
    if pipeline == TENSOR_PIPELINE:
        replay = TensorReplayDataset(dataset, aug_cfg, base_seed)
        return Replay(pipeline, replay, collate_tensor_replay, TensorAugment(replay.cfg))
    raise ValueError(f"replay pipeline must be one of {PIPELINES}, got {pipeline!r}")


def replay_for_store(store: Any, dataset: Dataset, pipeline: str | None = None,
                     approximate: bool = False) -> Replay:
    """The replay a `LogitStore` was saved with (transform, base seed, and by default its pipeline).

    Refuses another data set, and a ``pipeline`` other than the store's (StoreError naming both) unless
    ``approximate`` — then it warns: same random parameters, slightly different pixels than the teacher saw.
    """
    ident = getattr(dataset, "identity", None)
    if ident is not None:
        store.check(dataset=ident)
    made_by = store.manifest["pipeline"]
    pipeline = pipeline or made_by
    if pipeline != made_by:
        if not approximate:
            store.check(pipeline=pipeline)
        warnings.warn(f"{store.path}: replaying a store made by the {made_by!r} pipeline with {pipeline!r} "
                      f"(approximate replay: same augmentation parameters, not the same pixels)", stacklevel=2)
    return build_replay(pipeline, dataset, store.manifest["transform"], store.manifest["base_seed"])
