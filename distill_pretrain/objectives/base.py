"""The objective interface and its registry."""
from __future__ import annotations

import inspect
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
      (B, K) — the stored sparse teacher targets of exactly these augmented images). With a student-only colour
      jitter (`data.aug.student_color_jitter`) `image` is the student's view and `teacher_image` the teacher's:
      a teacher reads `replay.teacher_view(batch)`.
    - `needs_labels` / `needs_store` / `needs_teacher`: what the trainer must provide; checked before training.
      `needs_teacher` means the trainer builds the config's `teacher` and calls `set_teacher` (an objective may
      instead build its own teacher from its arguments). `needs_init`: the student must start from a checkpoint
      (`student.init`). `find_unused_parameters`: part of the student stays out of the loss (e.g. the classifier
      under MAE), so DDP must look for unused parameters.
    - A constructor with a `student` parameter receives the built student (`build_objective`).
    - A frozen teacher is set with `set_teacher`: it follows `.to()` / `.cuda()` but is no submodule, so it is in
      neither `parameters()` nor `state_dict()`.
    - Trainable parameters (a decoder, a projection) are optimised with the student's and saved in the resume
      state; the exported checkpoint holds the student only.
    """

    needs_labels: bool = False
    needs_store: bool = False
    needs_teacher: bool = False
    needs_init: bool = False
    find_unused_parameters: bool = False

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


def build_objective(cfg: Mapping[str, Any], student: nn.Module | None = None) -> Objective:
    """Build the objective `cfg` names; a constructor with a `student` parameter (to size a decoder, pick
    layers) gets the built student. Arguments that do not fit raise with the objective's config."""
    cfg = dict(cfg)
    cls = objective_class(cfg.get("type"))
    kwargs = {k: v for k, v in cfg.items() if k != "type"}
    if "student" in inspect.signature(cls.__init__).parameters:
        if student is None:
            raise ValueError(f"objective {cfg.get('type')!r} is built from the student: pass student=")
        kwargs["student"] = student
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise TypeError(f"config: objective={cfg}: {exc}") from exc


def check_objective_cfg(cfg: Mapping[str, Any]) -> type[Objective]:
    """The class `cfg` names, after checking its arguments fit the constructor (before anything is built)."""
    cls = objective_class(cfg.get("type"))
    kwargs = {k: v for k, v in cfg.items() if k not in ("type", "student")}
    try:
        inspect.signature(cls).bind_partial(**kwargs)
    except TypeError as exc:
        raise TypeError(f"config: objective={dict(cfg)}: {exc}") from exc
    return cls


def objective_class(name: Any) -> type[Objective]:
    """The registered class called `name`; an unknown name raises with the known ones."""
    cls = OBJECTIVES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(f"config: objective type {name!r} is not registered; known: {sorted(OBJECTIVES.module_dict)}")
    return cls
