"""Runner hooks of the segmentation harness: the validation curve (plain checkpoints: `transfer.runner_hooks`)."""
from __future__ import annotations

from typing import Any

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
