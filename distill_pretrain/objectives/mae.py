"""`mae`: masked autoencoding (He et al. 2022) for a plain-ViT student — the MAE baseline of the D-MAE table.

Per image, `mask_ratio` of the patches are dropped at random (uniform noise, argsort, as MAE); the student encodes
only the visible ones; a light decoder (timm `Block`s) gets the encoded tokens plus a shared mask token at every
dropped position, with fixed 2-D sin-cos position embeddings, and predicts the pixels of every patch. The loss is
the MSE on the masked patches only, against per-patch normalised pixels (`norm_pix_loss`, MAE's default).

Choices: the decoder's position embedding is fixed sin-cos (MAE's), the student's stays timm's learnable one; the
decoder is sized by the config (MAE-Base uses 512-d x 8 blocks; ViT-Tiny recipes use smaller ones).
"""
from __future__ import annotations

from typing import Mapping

import torch
from timm.layers import build_sincos2d_pos_embed
from timm.models.vision_transformer import Block
from torch import nn

from backbones.vit import forward_tokens

from .base import OBJECTIVES, Objective


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
class MAEObjective(Objective):
    """Masked autoencoding; the decoder's parameters belong to the objective (trained, checkpointed with it).

    `student` is the plain timm ViT being trained (only its shape is read here).
    """

    def __init__(self, student: nn.Module, mask_ratio: float = 0.75, norm_pix_loss: bool = True,
                 decoder_dim: int = 128, decoder_depth: int = 2, decoder_heads: int = 4) -> None:
        super().__init__()
        if not 0.0 < mask_ratio < 1.0:
            raise ValueError(f"objective 'mae': mask_ratio={mask_ratio} must be in (0, 1)")
        if decoder_dim % decoder_heads:
            raise ValueError(f"objective 'mae': decoder_dim={decoder_dim} is not divisible by "
                             f"decoder_heads={decoder_heads}")
        for attr in ("patch_embed", "blocks", "embed_dim"):
            if not hasattr(student, attr):
                raise ValueError(f"objective 'mae': student {type(student).__name__} is not a timm ViT (no {attr!r})")
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
        images = batch["image"]
        keep, mask, restore = self.mask(images)
        loss = self.reconstruction_loss(student, images, forward_tokens(student, images, keep), mask, restore)
        return {"loss": loss, "loss_rec": loss.detach()}
