"""Frozen backbones from a spec string, and cached feature extraction — shared by linear probe, few-shot and
fine-tuning.

Backbone specs (`load_backbone`):
- `tinyvit-5m|11m|21m` + optional checkpoint (ours/distill, official, timm, mmpretrain; `backbones.load_pretrained`);
- `vit-tiny|vit-small|vit-base` with optional `/patchN` and `@SIZE` (`vit-tiny/patch4@32`; or dict keys
  `patch_size`, `img_size`, `depth`, `pool`) + optional checkpoint: a timm ViT (`backbones.vit.build_vit`), from
  our checkpoints (any objective: built as the meta records — img_size, patch_size, depth, heads), an official MAE
  file or a timm file (`backbones.vit.load_vit_pretrained`); it runs at any resolution the patch divides
  (position embeddings interpolated, timm's `dynamic_img_size`);
- `timm:<model name>` + optional checkpoint (a timm state dict; a file whose names differ but whose tensors match
  the model's in order and shape, such as the EfficientNet-Lite0 asset, loads by position);
- `torchvision:<model name>` + optional checkpoint (a torchvision state dict, loaded strictly);
- no checkpoint → random initialisation from `seed` (source 'random').
A checkpoint may be `asset:mobilenet_v2` / `asset:efficientnet_lite0` (the offline files of `contracts.assets`).
An in-memory `nn.Module` is accepted too (source 'checkpoint', identified by the sha256 of its weights).
Loads are strict (see `load_backbone`); each `Backbone` carries its record block (`Backbone.record`).

Features are the backbone's pooled pre-logits vector (a ViT: timm's pre-logits — the final-norm class token for
`pool='token'`, these ViTs' default, or the mean of the final-norm patch tokens for `pool='avg'`).
`extract_features` caches them on disk under a key of backbone weights + data set fingerprint + transform, written
atomically.

Modules, one job each: `load` (`load_backbone`: spec forms → the family's loader), `loaders` (one registered
loader per model family: `BACKBONE_LOADERS`, `register_loader`), `checkpoints` (checkpoint paths and assets,
strict partial-load checks), `backbone` (`Backbone`, weights digest, pooled features), `transforms` (MoCo v3
train / evaluation transforms), `data` (labels, location-independent fingerprints, setting a data set's transform),
`extraction` (`extract_features` and its cache; `prepare_for_inference`).
"""
from .backbone import Backbone, freeze, module_sha256, pooled_features
from .checkpoints import check_load, resolve_checkpoint
from .data import dataset_fingerprint, dataset_targets, with_transform
from .extraction import default_cache_dir, extract_features, feature_cache_key, prepare_for_inference
from .load import load_backbone
from .loaders import (BACKBONE_LOADERS, TINYVIT_ARCHS, TINYVIT_HEAD_KEYS, VIT_HEAD_KEYS, VIT_POOLS, VIT_SIZES,
                      LoadRequest, register_loader)
from .transforms import IMAGENET_MEAN, IMAGENET_STD, ToRGB, eval_transform, train_transform

__all__ = ["Backbone", "freeze", "module_sha256", "pooled_features", "check_load", "resolve_checkpoint",
           "dataset_fingerprint", "dataset_targets", "with_transform", "default_cache_dir", "extract_features",
           "feature_cache_key", "prepare_for_inference", "load_backbone", "BACKBONE_LOADERS", "LoadRequest",
           "register_loader", "TINYVIT_ARCHS", "TINYVIT_HEAD_KEYS", "VIT_HEAD_KEYS", "VIT_POOLS", "VIT_SIZES",
           "IMAGENET_MEAN", "IMAGENET_STD", "ToRGB", "eval_transform", "train_transform"]
