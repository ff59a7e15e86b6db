"""Frozen backbones from a spec string, and cached feature extraction — shared by linear probe and few-shot.

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
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Subset

from contracts.fileio import atomic_write

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TINYVIT_ARCHS = ("5m", "11m", "21m")
_ASSETS = {"mobilenet_v2": "mobilenet_v2_weights", "efficientnet_lite0": "efficientnet_lite0_weights"}
_ASSET_PRETRAIN = {"mobilenet_v2": "in1k", "efficientnet_lite0": "in1k"}  # both are ImageNet-1k classifiers
TINYVIT_HEAD_KEYS = ("head.fc.*",)  # the classifier a feature extractor (num_classes=0) leaves out by design
VIT_SIZES = {"tiny": "vit_tiny_patch16_224", "small": "vit_small_patch16_224", "base": "vit_base_patch16_224"}
VIT_HEAD_KEYS = ("head.*",)  # a ViT feature extractor's dropped classifier (an MAE file's decoder is skipped too)
VIT_POOLS = ("token", "avg")
_VIT_SPEC = re.compile(r"^vit-(tiny|small|base)(?:/patch(\d+))?(?:@(\d+))?$")


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


def resolve_checkpoint(checkpoint: str | Path | None) -> Path | None:
    """A checkpoint path, with `asset:<name>` resolved through `contracts.assets`."""
    if checkpoint is None or checkpoint == "":
        return None
    text = str(checkpoint)
    if text.startswith("asset:"):
        from contracts import assets
        name = text.split(":", 1)[1]
        if name not in _ASSETS:
            raise ValueError(f"unknown asset checkpoint {text!r}; known: {['asset:' + k for k in _ASSETS]}")
        return Path(getattr(assets, _ASSETS[name])())
    path = Path(text).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"backbone checkpoint not found: {path}")
    return path


def _freeze(model: nn.Module) -> nn.Module:
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _strip_head(model: nn.Module) -> nn.Module:
    """torchvision classifiers → features: the final classifier attribute becomes Identity."""
    for attr in ("fc", "classifier", "heads", "head"):
        if isinstance(getattr(model, attr, None), nn.Module):
            setattr(model, attr, nn.Identity())
            return model
    raise ValueError(f"{type(model).__name__}: no fc/classifier/heads/head attribute to strip")


def check_load(where: str, missing: Sequence[str], unexpected: Sequence[str],
               allow_keys: Sequence[str]) -> dict[str, Any]:
    """The record's `load_report` of a partial load; raises when a key outside the `allow_keys` fnmatch patterns
    is missing from the file or unexpected in it (a partly matching checkpoint is an error, not a quiet load)."""
    from backbones.checkpoint import refused_keys
    bad_missing, bad_unexpected = refused_keys(missing, unexpected, allow_keys)
    if bad_missing or bad_unexpected:
        raise ValueError(f"{where}: checkpoint only partly matches the model: {len(bad_missing)} missing "
                         f"{bad_missing[:5]}, {len(bad_unexpected)} unexpected {bad_unexpected[:5]}; pass allow_keys "
                         f"(fnmatch patterns, --allow-keys) to accept them (allowed now: {list(allow_keys)})")
    return {"missing": list(missing), "unexpected": list(unexpected), "allowed": list(allow_keys)}


def _load_by_name_or_order(model: nn.Module, state: Mapping[str, torch.Tensor], where: str,
                           allow_keys: Sequence[str]) -> dict[str, Any]:
    """Load by name; a file with foreign names but identical tensor order and shapes loads by position.
    Returns the `load_report` (with `loaded_by`)."""
    own = model.state_dict()
    named = {k: v for k, v in state.items() if k in own}
    if named:
        bad = [k for k, v in named.items() if tuple(v.shape) != tuple(own[k].shape)]
        if bad:
            raise ValueError(f"{where}: key {bad[0]!r} has shape {tuple(state[bad[0]].shape)} in the checkpoint "
                             f"but {tuple(own[bad[0]].shape)} in the model")
        report = check_load(where, [k for k in own if k not in named], [k for k in state if k not in own],
                            allow_keys)
        model.load_state_dict(named, strict=False)
        return {**report, "loaded_by": "name"}
    ours = [k for k in own if not k.endswith("num_batches_tracked")]
    theirs = [k for k in state if not k.endswith("num_batches_tracked")]
    if len(ours) != len(theirs) or any(tuple(own[a].shape) != tuple(state[b].shape) for a, b in zip(ours, theirs)):
        raise ValueError(f"{where}: no key matches the model and the tensors do not match it in order and shape "
                         f"({len(theirs)} tensors in the file, {len(ours)} in the model)")
    model.load_state_dict({a: state[b] for a, b in zip(ours, theirs)}, strict=False)
    return {"missing": [], "unexpected": [], "allowed": list(allow_keys), "loaded_by": "position"}


def load_backbone(spec: str | Mapping[str, Any] | nn.Module | Backbone, checkpoint: str | Path | None = None,
                  *, seed: int = 0, img_size: int = 224, allow_pickle: bool = False, pretrain: str | None = None,
                  allow_keys: Sequence[str] = ()) -> Backbone:
    """Build a frozen, eval-mode `Backbone` from a spec (see module doc), a dict with the same keys, or a module.

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
        model = _freeze(spec)
        name = type(spec).__name__
        return Backbone(model, name=name, record=backbone_block(
            name, "checkpoint", pretrain=pretrain or "unknown", checkpoint_sha256=module_sha256(model),
            checkpoint="in-memory module"))
    vit_shape: dict[str, Any] = {}
    if isinstance(spec, Mapping):
        spec = dict(spec)
        name = spec.pop("spec", None) or spec.pop("name", None)
        if name is None:
            raise ValueError(f"backbone dict needs a 'spec' key, got {sorted(spec)}")
        checkpoint = spec.pop("checkpoint", checkpoint)
        seed = spec.pop("seed", seed)
        if "img_size" in spec:
            vit_shape["img_size"] = img_size = spec.pop("img_size")
        pretrain = spec.pop("pretrain", pretrain)
        vit_shape.update({k: spec.pop(k) for k in ("patch_size", "depth", "pool") if k in spec})
        if spec:
            raise ValueError(f"unknown backbone keys {sorted(spec)} (known: spec, checkpoint, seed, img_size, "
                             f"pretrain; ViTs also patch_size, depth, pool)")
        if vit_shape.keys() - {"img_size"} and not str(name).startswith("vit-"):
            raise ValueError(f"backbone keys {sorted(vit_shape.keys() - {'img_size'})} apply to vit-* specs only, "
                             f"not {name!r}")
        spec = name
    path = resolve_checkpoint(checkpoint)
    if path is None and pretrain not in (None, "none"):
        raise ValueError(f"pretrain={pretrain!r} names the pretraining of a checkpoint, but backbone {spec!r} has "
                         f"none (random initialisation)")
    if pretrain is None and str(checkpoint).startswith("asset:"):
        pretrain = _ASSET_PRETRAIN.get(str(checkpoint).split(":", 1)[1])
    torch.manual_seed(seed)
    kind, _, arch = spec.partition(":") if ":" in spec else ("tinyvit", "", spec)
    mean, std = IMAGENET_MEAN, IMAGENET_STD
    if kind == "tinyvit" and spec.startswith("vit-"):
        model, name, record = _load_vit(spec, path, vit_shape, img_size, seed, pretrain, allow_pickle, allow_keys)
    elif kind == "tinyvit":
        arch_name = arch.lower().removeprefix("tinyvit-").removeprefix("tiny_vit_").removeprefix("tinyvit_")
        if arch_name not in TINYVIT_ARCHS:
            raise ValueError(f"unknown backbone spec {spec!r}; use tinyvit-5m|11m|21m, vit-tiny|small|base, "
                             f"timm:<name> or torchvision:<name>")
        from backbones import TinyViT, build_from_checkpoint
        from backbones.provenance import describe_checkpoint
        name = f"tinyvit-{arch_name}"
        if path is None:
            model = TinyViT(arch=arch_name, img_size=img_size, num_classes=0)
            record = backbone_block(name, "random", init_seed=seed)
        else:  # the architecture the checkpoint records (e.g. a 64-px student's windows), not img_size's default
            allowed = [*TINYVIT_HEAD_KEYS, *allow_keys]
            model, report = build_from_checkpoint(path, arch=arch_name, num_classes=0, allow_pickle=allow_pickle,
                                                  allow_keys=allowed)
            load_report = {"missing": report.missing_keys, "unexpected": report.unexpected_keys,
                           "skipped": report.skipped_keys, "allowed": allowed}
            record = describe_checkpoint(path, name, pretrain=pretrain, allow_pickle=allow_pickle,
                                         load_report=load_report)
    elif kind == "timm":
        import timm
        model = timm.create_model(arch, pretrained=False, num_classes=0)
        cfg = timm.data.resolve_model_data_config(model)
        mean, std = tuple(cfg["mean"]), tuple(cfg["std"])
        if arch.startswith("tf_efficientnet_lite"):
            mean, std = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
        name = f"timm:{arch}"
        record = backbone_block(name, "random", init_seed=seed)
        if path is not None:
            from backbones import read_checkpoint
            obj = read_checkpoint(path, allow_pickle)
            state = obj.get("state_dict", obj.get("model", obj))
            classifier = model.pretrained_cfg.get("classifier", "head")
            load_report = _load_by_name_or_order(model, state, str(path), [f"{classifier}.*", *allow_keys])
            record = _file_block(name, "timm", path, pretrain, load_report)
    elif kind == "torchvision":
        import torchvision
        try:
            model = torchvision.models.get_model(arch, weights=None)
        except ValueError as err:
            raise ValueError(f"unknown torchvision model {arch!r} in backbone spec {spec!r}: {err}") from None
        name = f"torchvision:{arch}"
        record = backbone_block(name, "random", init_seed=seed)
        if path is not None:
            from backbones import read_checkpoint
            result = model.load_state_dict(read_checkpoint(path, allow_pickle), strict=False)
            load_report = check_load(str(path), result.missing_keys, result.unexpected_keys, allow_keys)
            record = _file_block(name, "torchvision", path, pretrain, load_report)
        model = _strip_head(model)
    else:
        raise ValueError(f"unknown backbone kind {kind!r} in spec {spec!r}; use tinyvit-*, vit-*, timm:<name>, "
                         f"torchvision:<name>")
    return Backbone(_freeze(model), name=name, record=record, mean=mean, std=std)


def _load_vit(spec: str, path: Path | None, shape: Mapping[str, Any], img_size: int, seed: int,
              pretrain: str | None, allow_pickle: bool, allow_keys: Sequence[str]) -> tuple[nn.Module, str, dict]:
    """A timm ViT feature extractor for a `vit-*` spec: (model, record name, record block). See `load_backbone`."""
    from backbones import CHECKPOINT_FORMAT, read_checkpoint
    from backbones.vit import VIT_META_FIELDS, build_vit, load_vit_pretrained
    from contracts.records import backbone_block
    match = _VIT_SPEC.match(spec)
    if match is None:
        raise ValueError(f"unknown ViT backbone spec {spec!r}; use vit-tiny|vit-small|vit-base, optionally with "
                         f"/patchN and @SIZE (e.g. vit-tiny/patch4@32)")
    size, patch, at = match.groups()
    name, vit_name = f"vit-{size}", VIT_SIZES[size]
    explicit = {k: v for k, v in (("img_size", at), ("patch_size", patch)) if v is not None}
    explicit.update({k: v for k, v in shape.items() if k in ("img_size", "patch_size", "depth")})
    explicit = {k: int(v) for k, v in explicit.items()}
    obj = read_checkpoint(path, allow_pickle) if path is not None else {}
    ours = obj.get("format") == CHECKPOINT_FORMAT
    build = {"img_size": int(img_size)}
    if ours:  # the shape the checkpoint's meta records; the spec's explicit fields still win (and must fit)
        meta = obj.get("meta") or {}
        if meta.get("arch") in VIT_SIZES.values() and meta["arch"] != vit_name:
            raise ValueError(f"{path}: checkpoint meta arch={meta['arch']!r} is not a {name} ({vit_name}); use "
                             f"the spec of its size")
        build.update({k: meta[k] for k in VIT_META_FIELDS if meta.get(k) is not None})
    build.update(explicit)
    pool = shape.get("pool", build.get("global_pool", "token"))
    if pool not in VIT_POOLS:
        raise ValueError(f"backbone key 'pool'={pool!r}: use one of {VIT_POOLS}")
    torch.manual_seed(seed)
    model = build_vit(vit_name, num_classes=0, dynamic_img_size=True, **build)
    model.global_pool = pool  # pooling only: 'avg' keeps the final norm (and its parameter names) as trained
    described = dict(pool=pool, img_size=int(build["img_size"]), patch_size=int(model.patch_embed.patch_size[0]),
                     depth=len(model.blocks))
    if path is None:
        return model, name, backbone_block(name, "random", init_seed=seed, **described)
    report = load_vit_pretrained(model, obj, where=str(path))
    allowed = [*VIT_HEAD_KEYS, *allow_keys]
    load_report = {**check_load(str(path), report.missing_keys, report.unexpected_keys, allowed),
                   "skipped": list(report.skipped_keys)}
    if ours:
        from backbones.provenance import describe_checkpoint
        record = describe_checkpoint(path, name, pretrain=pretrain, allow_pickle=allow_pickle,
                                     load_report=load_report, **described)
    else:
        record = _file_block(name, "official" if report.source_format == "mae" else "timm", path, pretrain,
                             load_report)
        record.update(described)
    return model, name, record


def _file_block(name: str, source: str, path: Path, pretrain: str | None, load_report: dict) -> dict[str, Any]:
    from contracts.fileio import file_sha256
    from contracts.records import backbone_block
    return backbone_block(name, source, pretrain=pretrain or "unknown", checkpoint_sha256=file_sha256(path),
                          checkpoint=path.name, load_report=load_report)


# ------------------------------------------------------------------------------------------------ transforms
class ToRGB:
    """PIL image → 3-channel RGB (grey data sets such as Fashion-MNIST, ChestX)."""

    def __call__(self, image: Any) -> Any:
        return image.convert("RGB")

    def __repr__(self) -> str:
        return "ToRGB()"


def eval_transform(resolution: int, mean: Sequence[float], std: Sequence[float], crop_ratio: float = 224 / 256):
    """Resize to resolution/crop_ratio (256 for 224) → centre crop → tensor → normalise (MoCo v3 evaluation)."""
    from torchvision import transforms as T
    return T.Compose([ToRGB(), T.Resize(int(round(resolution / crop_ratio)), interpolation=T.InterpolationMode.BICUBIC),
                      T.CenterCrop(resolution), T.ToTensor(), T.Normalize(mean, std)])


def train_transform(resolution: int, mean: Sequence[float], std: Sequence[float]):
    """RandomResizedCrop + horizontal flip → tensor → normalise (MoCo v3 linear-classification training)."""
    from torchvision import transforms as T
    return T.Compose([ToRGB(), T.RandomResizedCrop(resolution, interpolation=T.InterpolationMode.BICUBIC),
                      T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(mean, std)])


# ------------------------------------------------------------------------------------------------ data sets
def dataset_targets(dataset: Dataset) -> np.ndarray:
    """Integer labels of a data set without decoding images (torchvision classes, Subset, ConcatDataset)."""
    if isinstance(dataset, Subset):
        return dataset_targets(dataset.dataset)[np.asarray(dataset.indices)]
    if isinstance(dataset, ConcatDataset):
        return np.concatenate([dataset_targets(d) for d in dataset.datasets])
    for attr in ("targets", "_labels", "labels"):
        if hasattr(dataset, attr):
            return np.asarray(getattr(dataset, attr), dtype=np.int64)
    if hasattr(dataset, "_samples"):  # StanfordCars
        return np.asarray([t for _, t in dataset._samples], dtype=np.int64)
    return np.asarray([dataset[i][1] for i in range(len(dataset))], dtype=np.int64)


def dataset_fingerprint(dataset: Dataset) -> str:
    """sha256 naming a data set's contents wherever it lies: class, split, length, labels, subset indices, the
    files' paths relative to the data set's root (or in-memory image bytes) — never the root path itself, so the
    same data reached through another path or machine has the same fingerprint."""
    h = hashlib.sha256()

    def visit(ds: Dataset) -> None:
        h.update(type(ds).__name__.encode())
        if isinstance(ds, Subset):
            h.update(np.asarray(ds.indices, dtype=np.int64).tobytes())
            visit(ds.dataset)
            return
        if isinstance(ds, ConcatDataset):
            for d in ds.datasets:
                visit(d)
            return
        for attr in ("train", "_split", "split"):
            if hasattr(ds, attr):
                h.update(f"{attr}={getattr(ds, attr)}".encode())
        h.update(str(len(ds)).encode())
        root = os.fspath(getattr(ds, "root", "")) if getattr(ds, "root", None) is not None else ""
        for attr in ("samples", "_image_files", "_images", "image_paths"):
            if hasattr(ds, attr):
                h.update(json.dumps([_relative(s, root) for s in getattr(ds, attr)]).encode())
                break
        else:
            data = getattr(ds, "data", None)  # CIFAR / MNIST keep decoded images in memory
            if isinstance(data, (np.ndarray, torch.Tensor)):
                h.update(np.ascontiguousarray(np.asarray(data)).tobytes())
        h.update(dataset_targets(ds).tobytes())

    visit(dataset)
    return h.hexdigest()


def _relative(item: Any, root: str) -> Any:
    """A sample entry (a path or a (path, label) tuple) with paths made relative to the data set's root."""
    if isinstance(item, (tuple, list)):
        return [_relative(x, root) for x in item]
    if isinstance(item, (str, os.PathLike)):
        path = os.fspath(item)
        return os.path.relpath(path, root) if root and os.path.isabs(path) else path
    return str(item)


def _with_transform(dataset: Dataset, transform: Any) -> None:
    """Set the transform on the underlying torchvision data set(s)."""
    if isinstance(dataset, Subset):
        _with_transform(dataset.dataset, transform)
    elif isinstance(dataset, ConcatDataset):
        for d in dataset.datasets:
            _with_transform(d, transform)
    else:
        dataset.transform = transform


# --------------------------------------------------------------------------------------------- extraction
def default_cache_dir() -> Path:
    from contracts.assets import REPO_ROOT
    return Path(os.environ.get("TINYVIT_BENCH_FEATURE_CACHE", REPO_ROOT / ".cache" / "features"))


def extract_features(backbone: Backbone, dataset: Dataset, *, resolution: int = 224, batch_size: int = 64,
                     num_workers: int = 0, cache_dir: str | Path | None = None, use_cache: bool = True,
                     desc: str = "features", device: str | torch.device = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """(features (N, D) float32, labels (N,) int64) of a data set under the evaluation transform.

    Cached as `<cache_dir>/<key>.npz`, key = sha256(backbone weights, data set fingerprint, transform); the
    transform is set on the data set here. Batched, no_grad, channels-last; a tqdm bar shows progress.
    """
    from tqdm import tqdm
    transform = eval_transform(resolution, backbone.mean, backbone.std)
    key_src = json.dumps({"backbone": backbone.weights_sha256(), "data": dataset_fingerprint(dataset),
                          "transform": repr(transform)}, sort_keys=True)
    key = hashlib.sha256(key_src.encode()).hexdigest()[:32]
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = cache / f"{key}.npz"
    if use_cache and path.is_file():
        with np.load(path) as data:
            return data["features"], data["labels"]
    _with_transform(dataset, transform)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    backbone.model.to(device).to(memory_format=torch.channels_last)  # in place
    feats, labels = [], []
    with torch.no_grad():
        for images, targets in tqdm(loader, desc=f"{desc} [{backbone.name}]", unit="batch", leave=False):
            images = images.to(device).contiguous(memory_format=torch.channels_last)
            feats.append(backbone.features(images).cpu().numpy())
            labels.append(np.asarray(targets, dtype=np.int64))
    features = np.concatenate(feats).astype(np.float32)
    label_arr = np.concatenate(labels)
    if use_cache:
        atomic_write(path, lambda f: np.savez(f, features=features, labels=label_arr))
    return features, label_arr
