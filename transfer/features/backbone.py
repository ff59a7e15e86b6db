"""`Backbone`: a frozen feature extractor with its record block, its weights' digest and its pooled features."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .transforms import IMAGENET_MEAN, IMAGENET_STD


@dataclass
class Backbone:
    """A frozen feature extractor in eval mode, with the `backbone` block of the records it produces."""

    model: nn.Module
    name: str
    record: dict[str, Any]  # contracts.records.backbone_block(...): source, pretrain, checkpoint_sha256, ...
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    _weights_sha256: str | None = field(default=None, repr=False)

    @property
    def source(self) -> str:
        return self.record["source"]

    def record_info(self) -> dict[str, Any]:
        """The `backbone` field of a result record (a copy)."""
        return dict(self.record)

    def weights_sha256(self) -> str:
        """sha256 over the weights (names, shapes, bytes): the backbone part of the feature-cache key."""
        if self._weights_sha256 is None:
            self._weights_sha256 = module_sha256(self.model)
        return self._weights_sha256

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised images → (B, D) pooled pre-logits features."""
        return pooled_features(self.model, images)


def module_sha256(model: nn.Module) -> str:
    """sha256 of a module's state dict (names, dtypes, shapes and values)."""
    h = hashlib.sha256()
    for key, value in model.state_dict().items():
        h.update(f"{key}:{value.dtype}:{tuple(value.shape)}".encode())
        h.update(value.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes()
                 if value.numel() else b"")
    return h.hexdigest()


def pooled_features(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Pre-logits features of TinyViT / timm models (`forward_features` + `forward_head(pre_logits=True)`), or the
    output of any other module (4-D outputs are average-pooled)."""
    if hasattr(model, "forward_features") and hasattr(model, "forward_head") and getattr(model, "head", 1) is not None:
        out = model.forward_head(model.forward_features(images), pre_logits=True)
    elif hasattr(model, "forward_features"):
        out = model.forward_features(images)
    else:
        out = model(images)
    if isinstance(out, (tuple, list)):
        out = out[-1]
    if out.ndim == 4:
        out = out.mean(dim=(2, 3))
    return out.flatten(1).float()


def freeze(model: nn.Module) -> nn.Module:
    """The module in eval mode with every parameter's gradient off (in place)."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model
