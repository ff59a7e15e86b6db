"""`scratch` and `finetune`: ground-truth labels (Mixup/CutMix-aware, label smoothing), no teacher."""
from __future__ import annotations

from typing import Any, Mapping

from torch import nn

from .base import OBJECTIVES, Objective
from .losses import accuracy_logs, batch_label_loss


@OBJECTIVES.register_module("scratch")
class Supervised(Objective):
    """Soft cross-entropy against smoothed one-hot labels mixed as the batch was (training from random weights)."""

    needs_labels = True

    def __init__(self, label_smoothing: float = 0.1) -> None:
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"config: objective.label_smoothing must be in [0, 1), got {label_smoothing}")
        self.label_smoothing = float(label_smoothing)

    def forward(self, student: nn.Module, batch: Mapping[str, Any]) -> dict[str, Any]:
        logits = student(batch["image"])
        return {"loss": batch_label_loss(logits, batch, self.label_smoothing), **accuracy_logs(logits, batch)}


@OBJECTIVES.register_module("finetune")
class Finetune(Supervised):
    """The supervised loss from a pretrained student (`student.init` required); the paper's finetuning recipe adds
    layer-wise LR decay (`optim.layer_decay`) and frozen BatchNorm statistics (`freeze_bn_stats`)."""

    needs_init = True
