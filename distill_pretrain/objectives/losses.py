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
    """Mixup/CutMix-aware smoothed one-hot targets: lam·y(label) + (1 − lam)·y(partner) (labels checked)."""
    _check_labels(label, partner, num_classes)
    return _mixed_one_hot(label, partner, lam, num_classes, smoothing)


def _mixed_one_hot(label: torch.Tensor, partner: torch.Tensor, lam: torch.Tensor, num_classes: int,
                   smoothing: float) -> torch.Tensor:
    off, on = smoothing / num_classes, 1.0 - smoothing + smoothing / num_classes
    y1 = torch.full((len(label), num_classes), off, device=label.device).scatter_(1, label[:, None], on)
    y2 = torch.full((len(label), num_classes), off, device=label.device).scatter_(1, partner[:, None], on)
    lam = lam.to(y1.device, non_blocking=True)[:, None]
    return lam * y1 + (1 - lam) * y2


@torch.compiler.disable  # host checks on the values: in a compiled step, one graph break, not a recompile per value
def _check_labels(label: torch.Tensor, partner: torch.Tensor, num_classes: int) -> None:
    if (label < 0).any():
        raise ValueError("ground-truth loss needs labelled data, but the batch has unlabeled samples (label -1)")
    if int(label.max()) >= num_classes or int(partner.max()) >= num_classes:
        raise ValueError(f"label {int(max(label.max(), partner.max()))} ≥ the student's {num_classes} classes")


@torch.compiler.disable  # as _check_labels
def _labels_index_classes(label: torch.Tensor, labelled: torch.Tensor, num_classes: int) -> bool:
    return bool(labelled.any()) and int(label[labelled].max()) < num_classes


def batch_label_loss(logits: torch.Tensor, batch: Mapping[str, Any], smoothing: float) -> torch.Tensor:
    """Soft cross-entropy against the batch's (Mixup/CutMix-aware, smoothed) ground-truth labels."""
    label, mix_index, mix_label = batch["label"], batch["mix_index"], batch["mix_label"]
    # checked on the loader's CPU tensors, the targets built on the device: no wait for the GPU
    _check_labels(label, torch.where(mix_index >= 0, mix_label, label), logits.shape[1])
    label, mix_index, mix_label, lam = (batch[k].to(logits.device, non_blocking=True)
                                        for k in ("label", "mix_index", "mix_label", "mix_lam"))
    partner = torch.where(mix_index >= 0, mix_label, label)
    return soft_cross_entropy(logits, _mixed_one_hot(label, partner, lam, logits.shape[1], smoothing))


def accuracy_logs(logits: torch.Tensor, batch: Mapping[str, Any],
                  teacher_top1: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Batch rates to log (0-d tensors on the logits' device, so logging forces no GPU sync): `acc` (student vs
    label), `agree` (student vs teacher top-1), `teacher_acc` (teacher vs label).

    Label rates only over labelled samples, and only when `batch['labels_index_classes']` says the labels are
    the student's classes.
    """
    pred = logits.detach().argmax(-1)
    label = batch["label"]
    index_classes = bool(batch.get("labels_index_classes", True))
    with_labels = index_classes and _labels_index_classes(label, label >= 0, logits.shape[1])  # CPU tensors
    label = label.to(pred.device, non_blocking=True)
    weight = ((label >= 0) & index_classes).float()  # the labelled samples, computed on the device
    logs: dict[str, torch.Tensor] = {}
    if teacher_top1 is not None:
        t = teacher_top1.detach().to(pred.device)
        logs["agree"] = (pred == t).float().mean()
        if with_labels:
            logs["teacher_acc"] = ((t == label).float() * weight).sum() / weight.sum()
    if with_labels:
        logs["acc"] = ((pred == label).float() * weight).sum() / weight.sum()
    return logs
