"""`dmae`: MAE + attention-map distillation from a frozen (MAE-pretrained) teacher, the D-MAE poster's method.

`L = L_mae + attn_weight · Σ_pairs MSE(A_T, M·A_S)`: for each (student layer, teacher layer) pair (default the
last block of each: "the corresponding higher layers"), A_S (B, H_s, L, L) and A_T (B, H_t, L, L) are the
post-softmax attention maps over the prefix + visible tokens, the teacher is fed the same visible patches as the
student, and M is a learnable linear map over the head axis (H_s → H_t, no bias), one per pair.

Choices the poster leaves open: post-softmax maps, the cls token kept in the maps, one M per layer pair, M
initialised by PyTorch's default `Linear` init, MSE averaged over all entries, `attn_weight` 1. Only the tapped
blocks build attention maps; the teacher runs only up to its deepest tapped block.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from backbones.vit import layer_index, attention_taps, forward_tokens, vit_from_spec

from ..replay import teacher_view
from .base import OBJECTIVES
from .mae import MAEObjective, resolve_student


@OBJECTIVES.register_module(name="dmae")
class DMAEObjective(MAEObjective):
    """MAE plus attention-map distillation; `teacher` is a ViT module, timm name, checkpoint path or dict
    (`backbones.vit.vit_from_spec`)."""

    def __init__(self, student: nn.Module | Mapping[str, Any], teacher: nn.Module | str | Mapping[str, Any],
                 student_layers: Sequence[int] = (-1,), teacher_layers: Sequence[int] = (-1,),
                 attn_weight: float = 1.0, **mae_kwargs: Any) -> None:
        student = resolve_student(student, "dmae")
        super().__init__(student, **mae_kwargs)
        self._name = "dmae"
        teacher = vit_from_spec(teacher, key="objective.teacher")
        if len(student_layers) != len(teacher_layers) or not student_layers:
            raise ValueError(f"objective 'dmae': student_layers={list(student_layers)} and teacher_layers="
                             f"{list(teacher_layers)} must pair up (same non-zero length)")
        t_patch = int(teacher.patch_embed.patch_size[0])
        if t_patch != self.patch or teacher.num_prefix_tokens != student.num_prefix_tokens:
            raise ValueError(f"objective 'dmae': teacher patch size {t_patch} / prefix tokens "
                             f"{teacher.num_prefix_tokens} differ from the student's {self.patch} / "
                             f"{student.num_prefix_tokens} (key 'objective.teacher.patch_size'); the attention maps "
                             "must cover the same tokens")
        self.student_layers = [layer_index(student, i, "student_layers") for i in student_layers]
        self.teacher_layers = [layer_index(teacher, i, "teacher_layers") for i in teacher_layers]
        self.attn_weight = float(attn_weight)
        self.head_maps = nn.ModuleList(
            nn.Linear(student.blocks[s].attn.num_heads, teacher.blocks[t].attn.num_heads, bias=False)
            for s, t in zip(self.student_layers, self.teacher_layers))
        self.set_teacher(teacher)

    def forward(self, student: nn.Module, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        self.check_student(student)
        images = batch["image"]
        keep, mask, restore = self.mask(images)
        with attention_taps(student, {i: ("attn",) for i in self.student_layers}, "student_layers") as s_taps:
            latent = forward_tokens(student, images, keep)
        loss_rec = self.reconstruction_loss(student, images, latent, mask, restore)
        with torch.no_grad(), attention_taps(self.teacher, {i: ("attn",) for i in self.teacher_layers},
                                             "teacher_layers") as t_taps:
            forward_tokens(self.teacher, teacher_view(batch), keep, depth=max(self.teacher_layers) + 1)
        loss_attn = images.new_zeros((), dtype=torch.float32)
        for s, t, head_map in zip(self.student_layers, self.teacher_layers, self.head_maps):
            mapped = torch.einsum("bhij,gh->bgij", s_taps[s]["attn"], head_map.weight)
            loss_attn = loss_attn + F.mse_loss(mapped.float(), t_taps[t]["attn"].float())
        loss = loss_rec + self.attn_weight * loss_attn
        return {"loss": loss, "loss_rec": loss_rec.detach(), "loss_attn": loss_attn.detach()}
