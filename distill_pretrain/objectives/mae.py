"""`mae`: masked autoencoding (He et al. 2022) for a plain-ViT student — the MAE baseline of the D-MAE table.

Per image, `mask_ratio` of the patches are dropped at random (uniform noise, argsort, as MAE); the student encodes
only the visible ones; a light decoder (timm `Block`s) gets the encoded tokens plus a shared mask token at every
dropped position, with fixed 2-D sin-cos position embeddings, and predicts the pixels of every patch. The loss is
the MSE on the masked patches only, against per-patch normalised pixels (`norm_pix_loss`, MAE's default).

Choices: the decoder's position embedding is fixed sin-cos (MAE's), the student's stays timm's learnable one; the
decoder is sized by the config (MAE-Base uses 512-d x 8 blocks; ViT-Tiny recipes use smaller ones).
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
from timm.layers import build_sincos2d_pos_embed
from timm.models.vision_transformer import Block
from torch import nn

from backbones.vit import forward_tokens

from .base import OBJECTIVES, Objective


def resolve_student(student: nn.Module | Mapping[str, Any], objective: str) -> nn.Module:
    """The student module, or (given the trainer's `student` config, as configs pass it) a shape-only build of it
    on the meta device (no memory, no init cost) to size the objective's parts."""
    if not isinstance(student, nn.Module):
        if not isinstance(student, Mapping):
            raise TypeError(f"objective '{objective}': student must be the student module or its config dict, got "
                            f"{type(student).__name__} (key 'objective.student')")
        from ..student import build_student
        with torch.device("meta"):
            student = build_student({k: v for k, v in student.items() if k != "init"}, num_classes=0)
    for attr in ("patch_embed", "blocks", "embed_dim", "num_prefix_tokens"):
        if not hasattr(student, attr):
            raise ValueError(f"objective '{objective}': student {type(student).__name__} is not a timm ViT (no "
                             f"{attr!r}; key 'student.type')")
    return student


def vit_signature(model: nn.Module) -> tuple[int, int, int, tuple[int, ...]]:
    """(embed dim, patch size, prefix tokens, heads per block): what an objective sized for a student relies on."""
    return (int(model.embed_dim), int(model.patch_embed.patch_size[0]), int(model.num_prefix_tokens),
            tuple(int(b.attn.num_heads) for b in model.blocks))


class ViTObjective(Objective):
    """An objective sized for one plain-ViT student shape; refuses to run on a student of another shape."""

    find_unused_parameters = True  # the classifier (and blocks after a tapped one) get no gradient

    def __init__(self, student: nn.Module, name: str) -> None:
        super().__init__()
        self._signature, self._name = vit_signature(student), name

    def check_student(self, student: nn.Module) -> None:
        if vit_signature(student) != self._signature:
            raise ValueError(f"objective '{self._name}': the student (dim, patch, prefix, heads) "
                             f"{vit_signature(student)[:3]} is not the one it was built for {self._signature[:3]} "
                             "(key 'objective.student')")


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, C, H, W) → (B, H/p · W/p, p · p · C), row-major patches, pixels (p, p, C) within a patch."""
    B, C, H, W = images.shape
    x = images.reshape(B, C, H // patch, patch, W // patch, patch)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(B, (H // patch) * (W // patch), patch * patch * C)


def random_masking(batch: int, num_patches: int, mask_ratio: float, device: torch.device
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(keep (B, L) visible patch indices, mask (B, N) 1 = dropped, restore (B, N) unshuffle indices)."""
    keep_len = max(1, int(round(num_patches * (1 - mask_ratio))))
    noise = torch.rand(batch, num_patches, device=device)
    shuffle = noise.argsort(dim=1)
    restore = shuffle.argsort(dim=1)
    mask = torch.ones(batch, num_patches, device=device)
    mask[:, :keep_len] = 0
    return shuffle[:, :keep_len], torch.gather(mask, 1, restore), restore


@OBJECTIVES.register_module(name="mae")
class MAEObjective(ViTObjective):
    """Masked autoencoding; the decoder's parameters belong to the objective (trained, checkpointed with it).

    `student`: the plain timm ViT being trained, or its config dict (`objective = dict(type='mae',
    student=student)` in a trainer config); only its shape is read.
    """

    def __init__(self, student: nn.Module | Mapping[str, Any], mask_ratio: float = 0.75, norm_pix_loss: bool = True,
                 decoder_dim: int = 128, decoder_depth: int = 2, decoder_heads: int = 4) -> None:
        student = resolve_student(student, "mae")
        super().__init__(student, "mae")
        if not 0.0 < mask_ratio < 1.0:
            raise ValueError(f"objective 'mae': mask_ratio={mask_ratio} must be in (0, 1)")
        if decoder_dim % decoder_heads:
            raise ValueError(f"objective 'mae': decoder_dim={decoder_dim} is not divisible by "
                             f"decoder_heads={decoder_heads}")
        self.mask_ratio, self.norm_pix_loss = float(mask_ratio), bool(norm_pix_loss)
        self.patch = int(student.patch_embed.patch_size[0])
        in_chans = student.patch_embed.proj.in_channels
        self.decoder_embed = nn.Linear(student.embed_dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        self.decoder_blocks = nn.Sequential(*[Block(decoder_dim, decoder_heads, qkv_bias=True)
                                              for _ in range(decoder_depth)])
        self.decoder_norm = nn.LayerNorm(decoder_dim)
        self.decoder_pred = nn.Linear(decoder_dim, self.patch * self.patch * in_chans)
        nn.init.normal_(self.mask_token, std=0.02)

    def mask(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A fresh random mask for this batch: (keep, mask, restore), see `random_masking`."""
        grid = (images.shape[-2] // self.patch) * (images.shape[-1] // self.patch)
        return random_masking(images.shape[0], grid, self.mask_ratio, images.device)

    def reconstruction_loss(self, student: nn.Module, images: torch.Tensor, latent: torch.Tensor,
                            mask: torch.Tensor, restore: torch.Tensor) -> torch.Tensor:
        """Decode `latent` (B, prefix + L, C) and return the normalised-pixel MSE over the masked patches."""
        prefix = student.num_prefix_tokens
        x = self.decoder_embed(latent)
        B, N = restore.shape
        patches = torch.cat([x[:, prefix:], self.mask_token.expand(B, N - (x.shape[1] - prefix), -1)], dim=1)
        patches = torch.gather(patches, 1, restore.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
        grid = [images.shape[-2] // self.patch, images.shape[-1] // self.patch]
        pos = build_sincos2d_pos_embed(grid, x.shape[-1], device=x.device, dtype=x.dtype)
        x = torch.cat([x[:, :prefix], patches + pos.unsqueeze(0)], dim=1)
        pred = self.decoder_pred(self.decoder_norm(self.decoder_blocks(x)))[:, prefix:]
        target = patchify(images, self.patch)
        if self.norm_pix_loss:
            mean, var = target.mean(dim=-1, keepdim=True), target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1e-6).sqrt()
        per_patch = (pred.float() - target.float()).pow(2).mean(dim=-1)
        return (per_patch * mask).sum() / mask.sum()

    def forward(self, student: nn.Module, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        self.check_student(student)
        images = batch["image"]
        keep, mask, restore = self.mask(images)
        loss = self.reconstruction_loss(student, images, forward_tokens(student, images, keep), mask, restore)
        return {"loss": loss, "loss_rec": loss.detach()}
