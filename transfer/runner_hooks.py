"""MMEngine runner hooks shared by the detection and segmentation harnesses.

Registered in MMEngine's root HOOKS registry, which mmdet's and mmseg's registries search as their parent.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


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

    MMEngine 0.10 stores its logging buffers (`HistoryBuffer`) and numpy scalars, so with torch ≥ 2.6 neither
    `--resume` nor `load_from` can read the files it wrote. The buffers only smooth logged values, so they are
    dropped (resuming warns and continues); numpy values become Python values; weights, optimizer and scheduler
    states are kept as they are.
    """

    priority = "VERY_LOW"

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:  # noqa: ANN001 - mmengine's signature
        hub = checkpoint.get("message_hub")
        if isinstance(hub, dict):
            hub["log_scalars"] = {}
            hub["resumed_keys"] = {k: v for k, v in hub.get("resumed_keys", {}).items()
                                   if k in hub.get("runtime_info", {})}
        for key in list(checkpoint):
            checkpoint[key] = to_plain(checkpoint[key])
