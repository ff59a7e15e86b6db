"""`tinymim`: relation distillation from a MIM-pretrained teacher (TinyMIM, Ren et al. 2023).

The student and the frozen teacher both see the whole (unmasked) image. From one student block (default the
last) and one teacher block (default the last), the q, k, v of all tokens are regrouped into `heads` heads
(default: the teacher's count; a ViT-T student's 192 channels become 12 heads of 16 for a 12-head teacher, as
TinyMIM does) and the relations R_qk = softmax(q·kᵀ/√d), R_vv = softmax(v·vᵀ/√d) are formed per head (d = that
side's head dim). The loss is KL(R_T ‖ R_S), summed over each relation row, averaged over batch, heads and rows,
for both relations (weights `qk_weight`, `vv_weight`). It is 0 when the student is the teacher.

Only the two tapped blocks record q/k/v; both networks run only up to their tapped block.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from backbones.vit import layer_index, attention_taps, forward_tokens, vit_from_spec

from ..replay import teacher_view
from .base import OBJECTIVES
from .mae import ViTObjective, resolve_student


def regroup_heads(x: torch.Tensor, heads: int, key: str) -> torch.Tensor:
    """(B, h, N, d) → (B, heads, N, h·d / heads); the channel order (head-major) is kept."""
    B, h, N, d = x.shape
    if (h * d) % heads:
        raise ValueError(f"objective 'tinymim': {key} has {h} heads x {d} = {h * d} channels, which cannot be split "
                         f"into heads={heads} (key 'heads')")
    return x.transpose(1, 2).reshape(B, N, heads, h * d // heads).transpose(1, 2)


def relation_log_probs(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """log softmax(a·bᵀ / √d) over the last axis, in float32."""
    a, b = a.float(), b.float()
    return F.log_softmax(a @ b.transpose(-2, -1) / a.shape[-1] ** 0.5, dim=-1)


def relation_kl(log_teacher: torch.Tensor, log_student: torch.Tensor) -> torch.Tensor:
    """KL(teacher ‖ student) per relation row, averaged over every other axis."""
    return (log_teacher.exp() * (log_teacher - log_student)).sum(dim=-1).mean()


@OBJECTIVES.register_module(name="tinymim")
class TinyMIMObjective(ViTObjective):
    """Q-K and V-V relation distillation; `teacher` as `backbones.vit.vit_from_spec` accepts it."""

    def __init__(self, student: nn.Module | Mapping[str, Any], teacher: nn.Module | str | Mapping[str, Any],
                 student_layer: int = -1, teacher_layer: int = -1, heads: int | None = None, qk_weight: float = 1.0,
                 vv_weight: float = 1.0) -> None:
        student = resolve_student(student, "tinymim")
        super().__init__(student, "tinymim")
        teacher = vit_from_spec(teacher, key="objective.teacher")
        self.student_layer = layer_index(student, student_layer, "student_layer")
        self.teacher_layer = layer_index(teacher, teacher_layer, "teacher_layer")
        self.heads = int(heads or teacher.blocks[self.teacher_layer].attn.num_heads)
        for side, model, layer in (("student", student, self.student_layer), ("teacher", teacher, self.teacher_layer)):
            attn = model.blocks[layer].attn
            regroup_heads(torch.empty(0, attn.num_heads, 0, attn.head_dim), self.heads, side)
        self.qk_weight, self.vv_weight = float(qk_weight), float(vv_weight)
        self.set_teacher(teacher)

    def _relations(self, model: nn.Module, layer: int, images: torch.Tensor, side: str
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        with attention_taps(model, {layer: ("q", "k", "v")}, f"{side}_layer") as taps:
            forward_tokens(model, images, depth=layer + 1)
        q, k, v = (regroup_heads(taps[layer][n], self.heads, side) for n in ("q", "k", "v"))
        return relation_log_probs(q, k), relation_log_probs(v, v)

    def forward(self, student: nn.Module, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        self.check_student(student)
        s_qk, s_vv = self._relations(student, self.student_layer, batch["image"], "student")
        with torch.no_grad():
            t_qk, t_vv = self._relations(self.teacher, self.teacher_layer, teacher_view(batch), "teacher")
        if t_qk.shape[-1] != s_qk.shape[-1]:
            raise ValueError(f"objective 'tinymim': teacher sees {t_qk.shape[-1]} tokens, student {s_qk.shape[-1]}; "
                             "use the same patch size and img_size (key 'objective.teacher.patch_size')")
        loss_qk, loss_vv = relation_kl(t_qk, s_qk), relation_kl(t_vv, s_vv)
        loss = self.qk_weight * loss_qk + self.vv_weight * loss_vv
        return {"loss": loss, "loss_qk": loss_qk.detach(), "loss_vv": loss_vv.detach()}
