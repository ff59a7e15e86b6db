"""`online`: the teacher runs on every batch (the conventional distillation baseline of supp. §D)."""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from ..replay import teacher_view
from .base import OBJECTIVES, Objective
from .losses import accuracy_logs, batch_label_loss, soft_cross_entropy


@OBJECTIVES.register_module("online")
class OnlineDistillation(Objective):
    """Soft cross-entropy at `temperature` against the teacher's probabilities on the same augmented batch
    (optionally sparsified to its top-`topk` and recovered as Eq. 2, to mimic a store); `gt_weight` adds the
    smoothed ground-truth term. The teacher (`set_teacher`) maps images normalised for the student to
    probabilities (`distill_pretrain.teachers.TeacherProbs`)."""

    needs_teacher = True

    def __init__(self, temperature: float = 1.0, gt_weight: float = 0.0, label_smoothing: float = 0.1,
                 topk: int | None = None) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"config: objective.temperature must be > 0, got {temperature}")
        self.temperature, self.gt_weight, self.label_smoothing = float(temperature), float(gt_weight), \
            float(label_smoothing)
        self.topk = int(topk) if topk else None
        self.needs_labels = self.gt_weight > 0

    def forward(self, student: nn.Module, batch: Mapping[str, Any]) -> dict[str, Any]:
        if self.teacher is None:
            raise RuntimeError("objective 'online' has no teacher: call set_teacher(...) first")
        with torch.no_grad():
            probs = self.teacher(teacher_view(batch)).float()
            if self.topk:
                from ..store import recover_dense
                val, idx = probs.topk(self.topk, dim=-1)
                probs = recover_dense(idx, val, probs.shape[1])
        logits = student(batch["image"])
        loss = soft_cross_entropy(logits, probs, self.temperature)
        if self.gt_weight > 0:
            loss = loss + self.gt_weight * batch_label_loss(logits, batch, self.label_smoothing)
        return {"loss": loss, **accuracy_logs(logits, batch, probs.argmax(-1))}
