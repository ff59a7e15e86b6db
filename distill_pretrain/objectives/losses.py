"""Loss pieces shared by the built-in objectives: soft cross-entropy, Mixup-aware label targets, batch accuracies."""
from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """mean over the batch of −Σ_c target_c · log softmax(logits / T)_c, × T² (Hinton's scaling; T=1: plain).

    `target` holds probabilities at T = 1 (a stored or online teacher distribution); at T ≠ 1 they are
    re-tempered (p^(1/T), renormalised), which equals softmax(teacher_logits / T).
    """
    logp = F.log_softmax(logits.float() / temperature, dim=-1)
    if temperature != 1.0:
        target = target.clamp_min(1e-12) ** (1.0 / temperature)
        target = target / target.sum(-1, keepdim=True)
    return -(target * logp).sum(-1).mean() * temperature ** 2


def label_targets(label: torch.Tensor, partner: torch.Tensor, lam: torch.Tensor, num_classes: int,
                  smoothing: float) -> torch.Tensor:
    """Mixup/CutMix-aware smoothed one-hot targets: lam·y(label) + (1 − lam)·y(partner)."""
    if (label < 0).any():
        raise ValueError("ground-truth loss needs labelled data, but the batch has unlabeled samples (label -1)")
    if int(label.max()) >= num_classes or int(partner.max()) >= num_classes:
        raise ValueError(f"label {int(max(label.max(), partner.max()))} ≥ the student's {num_classes} classes")
    off, on = smoothing / num_classes, 1.0 - smoothing + smoothing / num_classes
    y1 = torch.full((len(label), num_classes), off, device=label.device).scatter_(1, label[:, None], on)
    y2 = torch.full((len(label), num_classes), off, device=label.device).scatter_(1, partner[:, None], on)
    lam = lam.to(y1.device)[:, None]
    return lam * y1 + (1 - lam) * y2


def batch_label_loss(logits: torch.Tensor, batch: Mapping[str, Any], smoothing: float) -> torch.Tensor:
    """Soft cross-entropy against the batch's (Mixup/CutMix-aware, smoothed) ground-truth labels."""
    label = batch["label"].to(logits.device)
    partner = torch.where(batch["mix_index"] >= 0, batch["mix_label"], batch["label"]).to(logits.device)
    return soft_cross_entropy(logits, label_targets(label, partner, batch["mix_lam"], logits.shape[1], smoothing))


def accuracy_logs(logits: torch.Tensor, batch: Mapping[str, Any],
                  teacher_top1: torch.Tensor | None = None) -> dict[str, float]:
    """Batch rates to log: `acc` (student vs label), `agree` (student vs teacher top-1), `teacher_acc`.

    Label rates only over labelled samples, and only when `batch['labels_index_classes']` says the labels are
    the student's classes.
    """
    pred = logits.detach().argmax(-1).cpu()
    label = batch["label"].cpu()
    labelled = (label >= 0) & bool(batch.get("labels_index_classes", True))
    with_labels = bool(labelled.any()) and int(label[labelled].max()) < logits.shape[1]
    logs: dict[str, float] = {}
    if teacher_top1 is not None:
        t = teacher_top1.detach().cpu()
        logs["agree"] = float((pred == t).float().mean())
        if with_labels:
            logs["teacher_acc"] = float((t[labelled] == label[labelled]).float().mean())
    if with_labels:
        logs["acc"] = float((pred[labelled] == label[labelled]).float().mean())
    return logs
