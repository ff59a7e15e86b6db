"""Runner hooks of the segmentation harness: validation curve, checkpoints of plain types."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from .metrics import SUMMARY_KEYS


@HOOKS.register_module()
class MetricHistoryHook(Hook):
    """Keeps (iteration, aAcc, mIoU, mAcc) after every validation, and the last full metrics."""

    priority = "LOWEST"

    def __init__(self) -> None:
        self.history: list[dict[str, Any]] = []
        self.last: dict[str, Any] = {}

    def after_val_epoch(self, runner, metrics: dict[str, float] | None = None) -> None:  # noqa: ANN001
        if metrics:
            self.last = dict(metrics)
            self.history.append({"iter": runner.iter, **{k: metrics[k] for k in SUMMARY_KEYS if k in metrics}})


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
class PlainCheckpointHook(Hook):
    """Makes MMEngine checkpoints loadable with `torch.load(weights_only=True)` (torch ≥ 2.6's default).

    MMEngine stores its logging buffers (`HistoryBuffer`) and numpy scalars; the buffers only smooth logged
    values, so they are dropped, and numpy values become Python values. Resuming restores everything else.
    """

    priority = "VERY_LOW"

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:  # noqa: ANN001
        hub = checkpoint.get("message_hub")
        if isinstance(hub, dict):
            hub["log_scalars"] = {}
            hub["resumed_keys"] = {k: v for k, v in hub.get("resumed_keys", {}).items()
                                   if k in hub.get("runtime_info", {})}
        for key in list(checkpoint):
            checkpoint[key] = to_plain(checkpoint[key])
