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
      (`image` (B, 3, H, W) on the device, `label` (-1 = none), `index`, `epoch`, and whatever the objective's
      data needs, e.g. the stored sparse teacher targets).
    - `needs_labels` / `needs_store`: what the trainer must provide; checked before training starts.
    - A frozen teacher is set with `set_teacher`: it follows `.to()` / `.cuda()` but is no submodule, so it is in
      neither `parameters()` nor `state_dict()`.
    """

    needs_labels: bool = False
    needs_store: bool = False

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

    def forward(self, student: nn.Module, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        raise NotImplementedError
