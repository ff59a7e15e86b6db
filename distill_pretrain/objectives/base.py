"""The objective interface and its registry."""
from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
from mmengine.registry import Registry
from torch import nn

OBJECTIVES = Registry("objective", scope="distill_pretrain", locations=["distill_pretrain.objectives"])


class Objective(nn.Module):
    """One training objective.

    - `forward(student, batch)` → `{"loss": scalar tensor, **scalars to log}`; `batch` is the data loader's dict
      (`image` (B, 3, H, W) on the device, `label` (-1 = none), `index`, `seed`, `epoch`, `mix_index` / `mix_lam`
      / `mix_label`, `labels_index_classes` (bool: labels are the student's classes, so accuracies are
      meaningful), and what the objective's data needs: with `needs_store`, `teacher_index` / `teacher_value`
      (B, K) — the stored sparse teacher targets of exactly these augmented images).
    - `needs_labels` / `needs_store` / `needs_teacher`: what the trainer must provide; checked before training.
      `needs_init`: the student must start from a checkpoint (`student.init`).
    - A frozen teacher is set with `set_teacher`: it follows `.to()` / `.cuda()` but is no submodule, so it is in
      neither `parameters()` nor `state_dict()`.
    - Trainable parameters (a decoder, a projection) are optimised with the student's and saved in the resume
      state; the exported checkpoint holds the student only.
    """

    needs_labels: bool = False
    needs_store: bool = False
    needs_teacher: bool = False
    needs_init: bool = False

    def __init__(self) -> None:
        super().__init__()
        self._teacher: list[nn.Module] = []

    @property
    def teacher(self) -> nn.Module | None:
        return self._teacher[0] if self._teacher else None

    def set_teacher(self, teacher: nn.Module) -> None:
        """Hold `teacher` frozen and in eval mode, outside this module's parameters and state dict."""
        teacher.eval().requires_grad_(False)
        self._teacher[:] = [teacher]

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], *args: Any, **kwargs: Any) -> "Objective":
        super()._apply(fn, *args, **kwargs)
        for teacher in self._teacher:
            teacher._apply(fn, *args, **kwargs)
        return self

    def train(self, mode: bool = True) -> "Objective":
        super().train(mode)
        for teacher in self._teacher:
            teacher.eval()
        return self

    def forward(self, student: nn.Module, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        raise NotImplementedError


def build_objective(cfg: Mapping[str, Any]) -> Objective:
    """`OBJECTIVES.build(cfg)`, with the objective's name in the error when its arguments do not fit."""
    cfg = dict(cfg)
    cls = objective_class(cfg.get("type"))
    try:
        return cls(**{k: v for k, v in cfg.items() if k != "type"})
    except TypeError as exc:
        raise TypeError(f"config: objective={cfg}: {exc}") from exc


def objective_class(name: Any) -> type[Objective]:
    """The registered class called `name`; an unknown name raises with the known ones."""
    cls = OBJECTIVES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(f"config: objective type {name!r} is not registered; known: {sorted(OBJECTIVES.module_dict)}")
    return cls
