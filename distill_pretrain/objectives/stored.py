"""`stored`: the paper's fast pretraining distillation from the sparse logit store (§3.1, Eq. 2)."""
from __future__ import annotations

from typing import Any, Mapping

from torch import nn

from .base import OBJECTIVES, Objective
from .losses import accuracy_logs, batch_label_loss, soft_cross_entropy


@OBJECTIVES.register_module("stored")
class StoredDistillation(Objective):
    """Soft cross-entropy at `temperature` against the dense recovery (Eq. 2) of the stored top-K teacher
    probabilities of exactly this augmented image; label-free unless `gt_weight > 0` (supp. Tab. 2 "w/ GT",
    ground truth smoothed by `label_smoothing`)."""

    needs_store = True

    def __init__(self, temperature: float = 1.0, gt_weight: float = 0.0, label_smoothing: float = 0.1) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"config: objective.temperature must be > 0, got {temperature}")
        self.temperature, self.gt_weight, self.label_smoothing = float(temperature), float(gt_weight), \
            float(label_smoothing)
        self.needs_labels = self.gt_weight > 0

    def forward(self, student: nn.Module, batch: Mapping[str, Any]) -> dict[str, Any]:
        from ..store import recover_dense
        logits = student(batch["image"])
        idx, val = batch["teacher_index"], batch["teacher_value"]
        target = recover_dense(idx, val, logits.shape[1]).to(logits.device)
        loss = soft_cross_entropy(logits, target, self.temperature)
        if self.gt_weight > 0:
            loss = loss + self.gt_weight * batch_label_loss(logits, batch, self.label_smoothing)
        top1 = idx.gather(1, val.argmax(1, keepdim=True))[:, 0]
        return {"loss": loss, **accuracy_logs(logits, batch, top1)}
