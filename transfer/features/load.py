"""`load_backbone`: a spec string, a dict or a module → a frozen `Backbone`, through its family's registered loader."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from .backbone import Backbone, freeze, module_sha256
from .checkpoints import asset_pretrain, resolve_checkpoint
from .loaders import BACKBONE_LOADERS, LoadRequest

DICT_KEYS = ("spec", "checkpoint", "seed", "img_size", "pretrain")
VIT_KEYS = ("patch_size", "depth", "pool")  # dict keys only `vit-*` specs take


def spec_family(spec: str) -> tuple[str, str]:
    """(family, name within it) of a spec: `family:<name>`, `vit-*` (family vit) or a TinyViT name (tinyvit)."""
    if ":" in spec:
        family, _, arch = spec.partition(":")
        return family, arch
    return ("vit" if spec.startswith("vit-") else "tinyvit"), spec


def parse_dict_spec(spec: Mapping[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(spec string, the `DICT_KEYS` options it sets, its ViT shape keys incl. img_size) of a dict spec such as
    ``dict(spec='vit-tiny', checkpoint=..., patch_size=4)``; unknown keys and ViT keys on other specs raise."""
    options = dict(spec)
    name = options.pop("spec", None) or options.pop("name", None)
    if name is None:
        raise ValueError(f"backbone dict needs a 'spec' key, got {sorted(options)}")
    given = {k: options.pop(k) for k in DICT_KEYS[1:] if k in options}
    vit_shape = {k: options.pop(k) for k in VIT_KEYS if k in options}
    if options:
        raise ValueError(f"unknown backbone keys {sorted(options)} (known: {', '.join(DICT_KEYS)}; ViTs also "
                         f"{', '.join(VIT_KEYS)})")
    if vit_shape and not str(name).startswith("vit-"):
        raise ValueError(f"backbone keys {sorted(vit_shape)} apply to vit-* specs only, not {name!r}")
    if "img_size" in given:
        vit_shape["img_size"] = given["img_size"]
    return name, given, vit_shape


def load_backbone(spec: str | Mapping[str, Any] | nn.Module | Backbone, checkpoint: str | Path | None = None,
                  *, seed: int = 0, img_size: int = 224, allow_pickle: bool = False, pretrain: str | None = None,
                  allow_keys: Sequence[str] = ()) -> Backbone:
    """Build a frozen, eval-mode `Backbone` from a spec (see the package doc), a dict with the same keys, or a module.

    The record block comes from `backbones.provenance.describe_checkpoint` (our TinyViT / ViT files: source and
    pretraining from the checkpoint meta) or `contracts.records.backbone_block` (official MAE / timm / torchvision
    files; a ViT block adds pool, img_size, patch_size, depth); `pretrain` names the
    pretraining of a file that does not say (default 'unknown'; offline assets know theirs). Loading is strict:
    keys missing or unexpected beyond the classifier the feature extractor drops and `allow_keys` raise; the keys
    a load left out go into the block's `load_report`.
    """
    from contracts.records import backbone_block
    if isinstance(spec, Backbone):
        return spec
    if isinstance(spec, nn.Module):
        model = freeze(spec)
        name = type(spec).__name__
        return Backbone(model, name=name, record=backbone_block(
            name, "checkpoint", pretrain=pretrain or "unknown", checkpoint_sha256=module_sha256(model),
            checkpoint="in-memory module"))
    vit_shape: dict[str, Any] = {}
    if isinstance(spec, Mapping):
        spec, given, vit_shape = parse_dict_spec(spec)
        checkpoint, seed = given.get("checkpoint", checkpoint), given.get("seed", seed)
        img_size, pretrain = given.get("img_size", img_size), given.get("pretrain", pretrain)
    path = resolve_checkpoint(checkpoint)
    if path is None and pretrain not in (None, "none"):
        raise ValueError(f"pretrain={pretrain!r} names the pretraining of a checkpoint, but backbone {spec!r} has "
                         f"none (random initialisation)")
    if pretrain is None:
        pretrain = asset_pretrain(checkpoint)
    torch.manual_seed(seed)
    family, arch = spec_family(spec)
    if family not in BACKBONE_LOADERS:
        raise ValueError(f"unknown backbone kind {family!r} in spec {spec!r}; use tinyvit-*, vit-*, timm:<name>, "
                         f"torchvision:<name>")
    request = LoadRequest(spec, arch, path, seed=seed, img_size=img_size, pretrain=pretrain,
                          allow_pickle=allow_pickle, allow_keys=tuple(allow_keys), vit_shape=vit_shape)
    backbone = BACKBONE_LOADERS[family](request)
    freeze(backbone.model)
    return backbone
