"""One loader per model family, registered by name in `BACKBONE_LOADERS` (`register_loader`).

A loader turns a parsed `LoadRequest` into a `Backbone` (not yet frozen: `load_backbone` freezes it). Families:
`tinyvit` (ours), `vit` (timm ViTs: ours, official MAE or timm files), `timm` (`timm:<name>`) and `torchvision`
(`torchvision:<name>`). Spec syntax and record blocks: see the package doc.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from .backbone import Backbone
from .checkpoints import check_load, file_block, load_by_name_or_order

TINYVIT_ARCHS = ("5m", "11m", "21m")
TINYVIT_HEAD_KEYS = ("head.fc.*",)  # the classifier a feature extractor (num_classes=0) leaves out by design
VIT_SIZES = {"tiny": "vit_tiny_patch16_224", "small": "vit_small_patch16_224", "base": "vit_base_patch16_224"}
VIT_HEAD_KEYS = ("head.*",)  # a ViT feature extractor's dropped classifier (an MAE file's decoder is skipped too)
VIT_POOLS = ("token", "avg")
VIT_SPEC = re.compile(r"^vit-(tiny|small|base)(?:/patch(\d+))?(?:@(\d+))?$")


@dataclass(frozen=True)
class LoadRequest:
    """What `load_backbone` parsed: the spec, the model name after the family prefix (`arch`), the resolved
    checkpoint (None: random initialisation from `seed`), and the options every loader may use."""

    spec: str
    arch: str
    path: Path | None
    seed: int = 0
    img_size: int = 224
    pretrain: str | None = None
    allow_pickle: bool = False
    allow_keys: tuple[str, ...] = ()
    vit_shape: dict[str, Any] = field(default_factory=dict)  # a dict spec's img_size / patch_size / depth / pool


Loader = Callable[[LoadRequest], Backbone]
BACKBONE_LOADERS: dict[str, Loader] = {}


def register_loader(family: str) -> Callable[[Loader], Loader]:
    """Decorator: register the loader of a model family under `family` (the spec's `family:` prefix)."""
    def register(loader: Loader) -> Loader:
        if family in BACKBONE_LOADERS:
            raise ValueError(f"a backbone loader for family {family!r} is registered already")
        BACKBONE_LOADERS[family] = loader
        return loader
    return register


@register_loader("tinyvit")
def load_tinyvit(req: LoadRequest) -> Backbone:
    """`tinyvit-5m|11m|21m`: random, or built as the checkpoint records (ours, official, timm, mmpretrain files)."""
    from backbones import TinyViT, build_from_checkpoint
    from backbones.provenance import describe_checkpoint
    from contracts.records import backbone_block
    arch = req.arch.lower().removeprefix("tinyvit-").removeprefix("tiny_vit_").removeprefix("tinyvit_")
    if arch not in TINYVIT_ARCHS:
        raise ValueError(f"unknown backbone spec {req.spec!r}; use tinyvit-5m|11m|21m, vit-tiny|small|base, "
                         f"timm:<name> or torchvision:<name>")
    name = f"tinyvit-{arch}"
    if req.path is None:
        model = TinyViT(arch=arch, img_size=req.img_size, num_classes=0)
        return Backbone(model, name=name, record=backbone_block(name, "random", init_seed=req.seed))
    # the architecture the checkpoint records (e.g. a 64-px student's windows), not img_size's default
    allowed = [*TINYVIT_HEAD_KEYS, *req.allow_keys]
    model, report = build_from_checkpoint(req.path, arch=arch, num_classes=0, allow_pickle=req.allow_pickle,
                                          allow_keys=allowed)
    load_report = {"missing": report.missing_keys, "unexpected": report.unexpected_keys,
                   "skipped": report.skipped_keys, "allowed": allowed}
    record = describe_checkpoint(req.path, name, pretrain=req.pretrain, allow_pickle=req.allow_pickle,
                                 load_report=load_report)
    return Backbone(model, name=name, record=record)


@register_loader("vit")
def load_vit(req: LoadRequest) -> Backbone:
    """`vit-tiny|small|base[/patchN][@SIZE]`: a timm ViT feature extractor from ours (built as its meta records;
    the spec's explicit fields still win and must fit), an official MAE file or a timm file."""
    from backbones import CHECKPOINT_FORMAT, read_checkpoint
    from backbones.vit import VIT_META_FIELDS, build_vit, load_vit_pretrained
    from contracts.records import backbone_block
    name, vit_name, explicit = parse_vit_spec(req)
    obj = read_checkpoint(req.path, req.allow_pickle) if req.path is not None else {}
    ours = obj.get("format") == CHECKPOINT_FORMAT
    build = {"img_size": int(req.img_size)}
    if ours:
        meta = obj.get("meta") or {}
        if meta.get("arch") in VIT_SIZES.values() and meta["arch"] != vit_name:
            raise ValueError(f"{req.path}: checkpoint meta arch={meta['arch']!r} is not a {name} ({vit_name}); use "
                             f"the spec of its size")
        build.update({k: meta[k] for k in VIT_META_FIELDS if meta.get(k) is not None})
    build.update(explicit)
    pool = req.vit_shape.get("pool", build.get("global_pool", "token"))
    if pool not in VIT_POOLS:
        raise ValueError(f"backbone key 'pool'={pool!r}: use one of {VIT_POOLS}")
    torch.manual_seed(req.seed)
    model = build_vit(vit_name, num_classes=0, dynamic_img_size=True, **build)
    model.global_pool = pool  # pooling only: 'avg' keeps the final norm (and its parameter names) as trained
    described = dict(pool=pool, img_size=int(build["img_size"]), patch_size=int(model.patch_embed.patch_size[0]),
                     depth=len(model.blocks))
    if req.path is None:
        return Backbone(model, name=name, record=backbone_block(name, "random", init_seed=req.seed, **described))
    report = load_vit_pretrained(model, obj, where=str(req.path))
    allowed = [*VIT_HEAD_KEYS, *req.allow_keys]
    load_report = {**check_load(str(req.path), report.missing_keys, report.unexpected_keys, allowed),
                   "skipped": list(report.skipped_keys)}
    if ours:
        from backbones.provenance import describe_checkpoint
        record = describe_checkpoint(req.path, name, pretrain=req.pretrain, allow_pickle=req.allow_pickle,
                                     load_report=load_report, **described)
    else:
        record = file_block(name, "official" if report.source_format == "mae" else "timm", req.path, req.pretrain,
                            load_report)
        record.update(described)
    return Backbone(model, name=name, record=record)


def parse_vit_spec(req: LoadRequest) -> tuple[str, str, dict[str, int]]:
    """(record name, timm model name, the shape fields the spec and the dict's keys set explicitly) of a `vit-*`
    request."""
    match = VIT_SPEC.match(req.spec)
    if match is None:
        raise ValueError(f"unknown ViT backbone spec {req.spec!r}; use vit-tiny|vit-small|vit-base, optionally "
                         f"with /patchN and @SIZE (e.g. vit-tiny/patch4@32)")
    size, patch, at = match.groups()
    explicit = {k: v for k, v in (("img_size", at), ("patch_size", patch)) if v is not None}
    explicit.update({k: v for k, v in req.vit_shape.items() if k in ("img_size", "patch_size", "depth")})
    return f"vit-{size}", VIT_SIZES[size], {k: int(v) for k, v in explicit.items()}


@register_loader("timm")
def load_timm(req: LoadRequest) -> Backbone:
    """`timm:<name>`: timm's model (random, or a timm state dict; foreign names with matching tensors load by
    position), normalised with the model's own data config."""
    import timm

    from contracts.records import backbone_block
    model = timm.create_model(req.arch, pretrained=False, num_classes=0)
    cfg = timm.data.resolve_model_data_config(model)
    mean, std = tuple(cfg["mean"]), tuple(cfg["std"])
    if req.arch.startswith("tf_efficientnet_lite"):
        mean, std = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
    name = f"timm:{req.arch}"
    record = backbone_block(name, "random", init_seed=req.seed)
    if req.path is not None:
        from backbones import read_checkpoint
        obj = read_checkpoint(req.path, req.allow_pickle)
        state = obj.get("state_dict", obj.get("model", obj))
        classifier = model.pretrained_cfg.get("classifier", "head")
        load_report = load_by_name_or_order(model, state, str(req.path), [f"{classifier}.*", *req.allow_keys])
        record = file_block(name, "timm", req.path, req.pretrain, load_report)
    return Backbone(model, name=name, record=record, mean=mean, std=std)


@register_loader("torchvision")
def load_torchvision(req: LoadRequest) -> Backbone:
    """`torchvision:<name>`: torchvision's model (random, or a torchvision state dict loaded strictly), its
    classifier replaced by Identity."""
    import torchvision

    from contracts.records import backbone_block
    try:
        model = torchvision.models.get_model(req.arch, weights=None)
    except ValueError as err:
        raise ValueError(f"unknown torchvision model {req.arch!r} in backbone spec {req.spec!r}: {err}") from None
    name = f"torchvision:{req.arch}"
    record = backbone_block(name, "random", init_seed=req.seed)
    if req.path is not None:
        from backbones import read_checkpoint
        result = model.load_state_dict(read_checkpoint(req.path, req.allow_pickle), strict=False)
        load_report = check_load(str(req.path), result.missing_keys, result.unexpected_keys, req.allow_keys)
        record = file_block(name, "torchvision", req.path, req.pretrain, load_report)
    return Backbone(strip_head(model), name=name, record=record)


def strip_head(model: nn.Module) -> nn.Module:
    """torchvision classifiers → features: the final classifier attribute becomes Identity."""
    for attr in ("fc", "classifier", "heads", "head"):
        if isinstance(getattr(model, attr, None), nn.Module):
            setattr(model, attr, nn.Identity())
            return model
    raise ValueError(f"{type(model).__name__}: no fc/classifier/heads/head attribute to strip")
