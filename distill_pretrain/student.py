"""The student factory: a TinyViT (classification mode) or any timm model, and the meta its checkpoint carries."""
from __future__ import annotations

from typing import Any, Mapping

from torch import nn

from contracts.checkpoint import plain


def build_student(student_cfg: Mapping[str, Any], num_classes: int) -> nn.Module:
    """A TinyViT or timm model with `num_classes` outputs, randomly initialised, then loaded from `init` if set.

    `student.num_classes`, when the section sets it, wins over the trainer's `num_classes` — including 0, a
    feature extractor without classifier (the objectives `mae`/`dmae`/`tinymim` train no classifier).
    The `init` load is strict but for the classifier (`head.*`) and the fnmatch patterns of `init_allow_keys`; a
    timm ViT (`vit_*` / `deit_*`) loads through `backbones.vit.load_vit_pretrained` (ours, timm, official MAE;
    position embeddings resampled to `img_size`). `reset_classifier=True` gives the classifier fresh weights after
    the load, whatever the checkpoint held (transfer fine-tuning: a new head for the data set's classes).
    """
    cfg = dict(student_cfg)
    kind = cfg.pop("type", "TinyViT")
    init = cfg.pop("init", None)
    allowed = ("head.*", *(cfg.pop("init_allow_keys", None) or ()))
    reset = bool(cfg.pop("reset_classifier", False))
    if reset and not init:
        raise ValueError("config: student.reset_classifier=True needs student.init (a checkpoint to load first)")
    own_classes = cfg.pop("num_classes", None)
    if own_classes is not None:
        if int(own_classes) < 0:
            raise ValueError(f"config: student.num_classes={own_classes} must be ≥ 0 (0: no classifier)")
        num_classes = int(own_classes)
    if kind == "TinyViT":
        from backbones import TinyViT, load_pretrained
        cfg = {k: v for k, v in cfg.items() if v is not None or k == "window_sizes"}
        model = TinyViT(num_classes=num_classes, **cfg)
        if init:
            # strict but for the classifier: a backbone-only or other-class-count checkpoint leaves it fresh
            try:
                load_pretrained(model, init, strict=True, allow_keys=allowed)
            except ValueError as err:
                raise ValueError(f"student.init {init} does not fit the student: {err}") from None
            if reset:
                model.reset_classifier(num_classes)
        return model
    if kind == "timm":
        import timm
        model_name, arch = cfg.pop("model_name", None), cfg.pop("arch", None)  # arch: the TinyViT default
        name = model_name or arch
        if not name:
            raise ValueError("config: student.type='timm' needs student.model_name (e.g. 'deit_tiny_patch16_224')")
        cfg.pop("norm_eval", None)
        if cfg.get("window_sizes") is None:
            cfg.pop("window_sizes", None)
        if "img_size" in cfg and not _timm_takes_img_size(name):
            cfg.pop("img_size")
        model = timm.create_model(name, pretrained=False, num_classes=num_classes, **cfg)
        if init and name.startswith(("vit_", "deit_")):
            from backbones.vit import load_vit_pretrained
            try:
                load_vit_pretrained(model, init, strict=True, allow_keys=allowed)
            except ValueError as err:
                raise ValueError(f"student.init {init} does not fit the student {name}: {err}") from None
        elif init:
            _load_timm_init(model, init)
        if reset:
            model.reset_classifier(num_classes)
        return model
    raise ValueError(f"config: student.type={kind!r}; use 'TinyViT' or 'timm'")


def _load_timm_init(model: nn.Module, path: str) -> None:
    """Load `path` into a timm student; only a classifier of another class count may be left out."""
    from backbones import read_checkpoint
    obj = read_checkpoint(path)
    sd = obj.get("state_dict", obj.get("model", obj))
    own = model.state_dict()
    skipped = [k for k, v in sd.items() if k in own and own[k].shape != v.shape]
    head = {f"{model.default_cfg.get('classifier', 'head')}.{p}" for p in ("weight", "bias")}
    if set(skipped) - head:
        raise ValueError(f"student.init {path}: shapes differ for {sorted(set(skipped) - head)[:5]}")
    missing, unexpected = model.load_state_dict({k: v for k, v in sd.items() if k not in skipped}, strict=False)
    if set(missing) - head or unexpected:
        raise ValueError(f"student.init {path}: missing {sorted(set(missing) - head)[:5]}, unexpected "
                         f"{sorted(unexpected)[:5]}")


def _timm_takes_img_size(name: str) -> bool:
    return any(t in name for t in ("vit", "deit", "swin", "beit", "eva", "cait", "xcit"))


def student_meta(model: nn.Module, student_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """arch / img_size / window_sizes / num_classes for the checkpoint's meta; a timm ViT adds the shape it was
    built with (patch_size, depth, embed_dim, num_heads, global_pool), so a reader rebuilds it from the meta alone."""
    if hasattr(model, "window_sizes"):
        return dict(arch=model.arch if isinstance(model.arch, str) else plain(model.arch),
                    img_size=int(model.img_size), window_sizes=[int(w) for w in model.window_sizes],
                    num_classes=int(model.num_classes))
    meta = dict(arch=student_cfg.get("model_name") or student_cfg.get("arch"),
                img_size=int(student_cfg.get("img_size") or 224), window_sizes=None,
                num_classes=int(getattr(model, "num_classes", 0)))
    embed = getattr(model, "patch_embed", None)
    if embed is not None and hasattr(model, "blocks"):
        meta.update(img_size=int(embed.img_size[0]), patch_size=int(embed.patch_size[0]), depth=len(model.blocks),
                    embed_dim=int(model.embed_dim), num_heads=int(model.blocks[0].attn.num_heads),
                    global_pool=str(getattr(model, "global_pool", "token")))
    return meta


def student_name(model: nn.Module, student_cfg: Mapping[str, Any]) -> str:
    """The backbone name records use: `tinyvit-<arch>` (a custom arch dict: `tinyvit-custom`) or the timm name."""
    arch = student_meta(model, student_cfg)["arch"]
    if student_cfg.get("type", "TinyViT") == "TinyViT":
        return f"tinyvit-{arch}" if isinstance(arch, str) else "tinyvit-custom"
    return str(arch)
