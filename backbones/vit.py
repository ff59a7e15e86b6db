"""Plain ViT students and teachers on timm's `VisionTransformer`, with attention taps and checkpoint interop.

- `build_vit(name, img_size=, patch_size=)`: `vit_tiny_patch16_224` / `vit_small_patch16_224` /
  `vit_base_patch16_224` (DeiT-Tiny = ViT-Tiny shape) by name, randomly initialised, timm parameter names.
- `attention_taps(model, {layer: kinds})`: a context manager that records, for the asked-for blocks only, the
  attention maps (`'attn'` post-softmax, `'logits'` pre-softmax, both (B, heads, N, N)) and `'q'`/`'k'`/`'v'`
  (B, heads, N, head_dim). Blocks not asked for keep timm's fused attention, so no other map is ever built.
  Works on any timm ViT: its `Attention` modules become `TapAttention` (a subclass, no new parameters).
- `forward_tokens(model, images, keep=None)`: the encoder on all patches, or only on the visible ones (MAE).
- `load_vit_pretrained(model, checkpoint)`: official MAE files (`{"model": ...}`, timm names, decoder keys
  skipped), timm files and our contract-2 checkpoints, by name, position embeddings resampled; a `LoadReport`.
- `ViTSimpleFPN` (MMEngine `type='ViTSimpleFPN'`): timm ViT + ViTDet's simple feature pyramid (strides 4-32,
  optionally 64) for mmdet.
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmengine.registry import MODELS
from timm.layers import Attention, resample_abs_pos_embed
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from .checkpoint import (CHECKPOINT_FORMAT, LoadReport, load_and_report, read_checkpoint, skip_classifier_or_refuse,
                         strip_prefix, unwrap_checkpoint)

__all__ = ["VIT_NAMES", "TapAttention", "build_vit", "enable_taps", "attention_taps", "forward_tokens",
           "num_layers", "layer_index", "vit_from_spec", "load_vit_pretrained", "ViTSimpleFPN"]

VIT_NAMES = ("vit_tiny_patch16_224", "vit_small_patch16_224", "vit_base_patch16_224")
TAP_KINDS = ("attn", "logits", "q", "k", "v")
# the shape fields of our checkpoints' meta (`distill_pretrain.student.student_meta`) that `build_vit` takes
VIT_META_FIELDS = ("img_size", "patch_size", "depth", "embed_dim", "num_heads", "global_pool")


class TapAttention(Attention):
    """timm's `Attention`; when `tap` names kinds, records them in `taps` (unfused path for those calls only)."""

    tap: tuple[str, ...] = ()

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, is_causal: bool = False) -> torch.Tensor:
        if not self.tap:
            return super().forward(x, attn_mask=attn_mask, is_causal=is_causal)
        if attn_mask is not None or is_causal or getattr(self, "gate", None) is not None:
            raise ValueError("TapAttention: attention taps support unmasked, ungated self-attention only")
        B, N, _ = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        logits = (q * self.scale) @ k.transpose(-2, -1)
        attn = logits.softmax(dim=-1)
        found = {"attn": attn, "logits": logits, "q": q, "k": k, "v": v}
        self.taps = {kind: found[kind] for kind in self.tap}
        out = (self.attn_drop(attn) @ v).transpose(1, 2).reshape(B, N, self.attn_dim)
        return self.proj_drop(self.proj(self.norm(out)))


def enable_taps(model: nn.Module, key: str = "model") -> nn.Module:
    """Make every block's attention of a timm ViT tappable (in place); refuse models without such attention."""
    blocks = getattr(model, "blocks", None)
    attns = [getattr(b, "attn", None) for b in blocks] if isinstance(blocks, nn.Sequential) else []
    if not attns or not all(isinstance(a, Attention) for a in attns):
        raise ValueError(f"{key}: {type(model).__name__} has no timm ViT attention blocks (`blocks[i].attn` of "
                         "type timm.layers.Attention), so it has no attention maps / q, k, v to distil")
    for attn in attns:
        if type(attn) is Attention:
            attn.__class__ = TapAttention
    return model


def num_layers(model: nn.Module) -> int:
    """Depth (number of transformer blocks) of a ViT."""
    return len(model.blocks)


def layer_index(model: nn.Module, layer: int, key: str) -> int:
    """`layer` (negative counts from the end) as a block index of `model`; out of range raises naming `key`."""
    depth = num_layers(model)
    if not -depth <= int(layer) < depth:
        raise ValueError(f"{key}: layer index {layer} is beyond the depth {depth} of {type(model).__name__} "
                         f"(valid: 0..{depth - 1} or -{depth}..-1)")
    return int(layer) % depth


@contextlib.contextmanager
def attention_taps(model: nn.Module, layers: Mapping[int, Sequence[str]], key: str = "layers"
                   ) -> Iterator[dict[int, dict[str, torch.Tensor]]]:
    """Record `kinds` of the blocks in `layers` ({block index: kinds}) during the forwards inside the block.

    Yields a dict that, after a forward, maps each (non-negative) block index to {kind: tensor} of the last call.
    """
    enable_taps(model, key="model")
    wanted: dict[int, tuple[str, ...]] = {}
    for layer, kinds in layers.items():
        bad = [k for k in kinds if k not in TAP_KINDS]
        if bad:
            raise ValueError(f"{key}: unknown tap kinds {bad}; choose from {TAP_KINDS}")
        wanted[layer_index(model, layer, key)] = tuple(kinds)
    out: dict[int, dict[str, torch.Tensor]] = {}
    attns = {i: model.blocks[i].attn for i in wanted}
    try:
        for i, attn in attns.items():
            attn.tap, attn.taps = wanted[i], {}
        yield out
        for i, attn in attns.items():
            out[i] = attn.taps
    finally:
        for attn in attns.values():
            attn.tap, attn.taps = (), {}


def build_vit(name: str = "vit_tiny_patch16_224", *, img_size: int = 224, patch_size: int | None = None,
              num_classes: int = 0, drop_path_rate: float = 0.0, **kwargs: Any) -> VisionTransformer:
    """A timm ViT by name with tappable attention, randomly initialised (weights come from `load_vit_pretrained`).

    `img_size` / `patch_size` override the name's (e.g. a ViT-Tiny at 32 px with patch 4 for CPU tests).
    """
    import timm
    if name not in VIT_NAMES and not (name.startswith(("vit_", "deit_")) and timm.is_model(name)):
        raise ValueError(f"ViT name {name!r} is unknown; use one of {VIT_NAMES} (or another timm vit_/deit_ name)")
    patch = patch_size or int(name.split("patch")[1].split("_")[0])
    if int(img_size) % patch:
        raise ValueError(f"patch_size={patch} does not divide img_size={img_size} (keys 'patch_size', 'img_size')")
    overrides = dict(kwargs, img_size=img_size, num_classes=num_classes, drop_path_rate=drop_path_rate)
    if patch_size is not None:
        overrides["patch_size"] = patch_size
    model = timm.create_model(name, pretrained=False, attn_layer=TapAttention, **overrides)
    model.vit_name = name
    return model


def _check_images(model: nn.Module, images: torch.Tensor) -> None:
    patch = model.patch_embed.patch_size
    grid = model.patch_embed.grid_size
    if images.shape[-2] % patch[0] or images.shape[-1] % patch[1]:
        raise ValueError(f"patch size {tuple(patch)} does not divide the image size {tuple(images.shape[-2:])} "
                         "(keys 'patch_size', 'img_size')")
    if (images.shape[-2] // patch[0], images.shape[-1] // patch[1]) != tuple(grid) and not model.dynamic_img_size:
        raise ValueError(f"image size {tuple(images.shape[-2:])} does not match the model's img_size "
                         f"{tuple(model.patch_embed.img_size)} (key 'img_size')")


def forward_tokens(model: VisionTransformer, images: torch.Tensor, keep: torch.Tensor | None = None,
                   depth: int | None = None) -> torch.Tensor:
    """Normalised encoder tokens (B, prefix + L, C); with `keep` (B, L) patch indices, only those patches enter.

    With `depth`, only the first `depth` blocks run and the tokens come back unnormalised (for taps on them).
    """
    _check_images(model, images)
    x = model._pos_embed(model.patch_embed(images))
    if keep is not None:
        p = model.num_prefix_tokens
        patches = torch.gather(x[:, p:], 1, keep.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
        x = torch.cat([x[:, :p], patches], dim=1)
    x = model.norm_pre(model.patch_drop(x) if keep is None else x)
    if depth is not None:
        return model.blocks[:depth](x)
    return model.norm(model.blocks(x))


def vit_from_spec(spec: nn.Module | str | Mapping[str, Any], key: str = "teacher") -> VisionTransformer:
    """A tappable ViT from a module, a timm name (random weights), a checkpoint path or a dict.

    Dict keys: `name` (timm ViT name), `checkpoint` (any `load_vit_pretrained` format, loaded strictly), and
    `build_vit` overrides (`img_size`, `patch_size`, ...). Our checkpoints may supply `name`/`img_size`/`patch_size`
    through their metadata (`vit_name` or a ViT `arch`, and the `VIT_META_FIELDS`).
    """
    if isinstance(spec, nn.Module):
        return enable_taps(spec, key)
    if isinstance(spec, (str, Path)):
        is_file = Path(spec).suffix in (".pth", ".pt", ".bin", ".safetensors")
        spec = {"checkpoint": str(spec)} if is_file else {"name": str(spec)}
    if not isinstance(spec, Mapping):
        raise TypeError(f"{key}: expected a model, a timm ViT name, a checkpoint path or a dict, got "
                        f"{type(spec).__name__}")
    cfg = dict(spec)
    checkpoint = cfg.pop("checkpoint", None)
    obj = read_checkpoint(checkpoint) if checkpoint else {}
    meta = obj.get("meta", {}) if obj.get("format") == CHECKPOINT_FORMAT else {}
    arch = meta.get("vit_name") or meta.get("arch")
    if "name" not in cfg and isinstance(arch, str) and arch.startswith(("vit_", "deit_")):
        cfg["name"] = arch
    for field in VIT_META_FIELDS:
        if field not in cfg and meta.get(field) is not None:
            cfg[field] = meta[field]
    if "name" not in cfg:
        raise ValueError(f"{key}: no ViT 'name' given and none in the checkpoint metadata ({checkpoint})")
    model = build_vit(cfg.pop("name"), **cfg)
    if checkpoint:
        report = load_vit_pretrained(model, obj, strict=False)
        if report.missing_keys:
            raise ValueError(f"{key}: checkpoint {checkpoint} leaves keys of {model.vit_name} unset: "
                             f"{report.missing_keys[:8]}")
    return model


# ----------------------------------------------------------------------------------------------- checkpoints
_MAE_ONLY = ("decoder_", "mask_token")  # the official MAE pretraining file's decoder


def load_vit_pretrained(model: VisionTransformer, checkpoint: str | Path | Mapping[str, Any], *,
                        prefix: str | None = None, strict: bool = False, allow_pickle: bool = False,
                        where: str | None = None, allow_keys: Sequence[str] = ()) -> LoadReport:
    """Load ViT weights by name: official MAE (`model` key; decoder keys skipped), timm, ours (contract 2).

    Position embeddings of another grid are resampled (bicubic, timm's `resample_abs_pos_embed`); a classifier of
    another class count is skipped; any other shape mismatch raises with the key and both shapes. `where` names an
    already-read checkpoint in messages. With `strict`, a missing or unexpected key outside the `allow_keys` fnmatch
    patterns raises naming the keys.
    """
    obj = read_checkpoint(checkpoint, allow_pickle) if isinstance(checkpoint, (str, Path)) else checkpoint
    where = where or (str(checkpoint) if isinstance(checkpoint, (str, Path)) else "state dict")
    sd, meta = unwrap_checkpoint(obj)
    if prefix:
        sd = strip_prefix(sd, prefix)
    if "patch_embed.proj.weight" not in sd:
        raise ValueError(f"{where}: not a ViT checkpoint in timm / official-MAE names (no 'patch_embed.proj.weight'; "
                         f"first keys: {sorted(sd)[:6]})")
    fmt = "ours" if obj.get("format") == CHECKPOINT_FORMAT else (
        "mae" if any(k.startswith(_MAE_ONLY) for k in sd) or "model" in obj else "timm")
    report = LoadReport(fmt, meta=meta)
    own = model.state_dict()
    for key in list(sd):
        if key.startswith(_MAE_ONLY):
            report.skipped_keys.append(key)
            del sd[key]
        elif key == "pos_embed" and key in own and sd[key].shape != own[key].shape:
            prefix_tokens = 0 if model.no_embed_class else model.num_prefix_tokens
            sd[key] = resample_abs_pos_embed(sd[key], new_size=list(model.patch_embed.grid_size),
                                             num_prefix_tokens=prefix_tokens)
        elif key in own:
            skip_classifier_or_refuse(sd, own, key, report, where,
                                      getattr(model, "vit_name", type(model).__name__), "head.")
    load_and_report(model, sd, report, where, strict=strict, allowed=allow_keys)
    return report


# --------------------------------------------------------------------------------------------- mmdet backbone
class _LayerNorm2d(nn.LayerNorm):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


@MODELS.register_module()
class ViTSimpleFPN(BaseModule):
    """A timm ViT with ViTDet's simple feature pyramid (Li et al. 2022): from the last stride-16 map, 2x / 4x
    transposed convolutions give strides 8 / 4, a max-pool stride 32 (and, with `num_outs=5`, 64 for an RPN);
    each level then gets 1x1 + 3x3 convs with LayerNorm to `out_channels`. Weights: `init_cfg=dict(
    type='Pretrained', checkpoint=PATH)` in any `load_vit_pretrained` format.
    """

    def __init__(self, arch: str = "vit_tiny_patch16_224", img_size: int = 224, patch_size: int | None = None,
                 drop_path_rate: float = 0.1, out_channels: int = 256, num_outs: int = 4,
                 init_cfg: dict | None = None) -> None:
        super().__init__(init_cfg=None)
        self._pretrained = (init_cfg or {}).get("checkpoint")
        if num_outs not in (4, 5):
            raise ValueError(f"ViTSimpleFPN: num_outs={num_outs}; use 4 (strides 4-32) or 5 (+ stride 64)")
        self.vit = build_vit(arch, img_size=img_size, patch_size=patch_size, drop_path_rate=drop_path_rate,
                             dynamic_img_size=True)
        if self.vit.patch_embed.patch_size[0] != 16:
            raise ValueError(f"ViTSimpleFPN: patch_size={patch_size} gives no stride-16 map; the pyramid needs 16")
        dim, half = self.vit.embed_dim, self.vit.embed_dim // 2
        self.num_outs = num_outs
        self.scales = nn.ModuleList([
            nn.Sequential(nn.ConvTranspose2d(dim, half, 2, 2), _LayerNorm2d(half), nn.GELU(),
                          nn.ConvTranspose2d(half, half // 2, 2, 2)),
            nn.ConvTranspose2d(dim, half, 2, 2),
            nn.Identity(),
            nn.MaxPool2d(2, 2),
        ])
        self.outs = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, out_channels, 1, bias=False), _LayerNorm2d(out_channels),
                          nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False), _LayerNorm2d(out_channels))
            for c in (half // 2, half, dim, dim))

    def init_weights(self) -> None:
        if self._pretrained:
            from mmengine.logging import print_log
            report = load_vit_pretrained(self.vit, self._pretrained)
            print_log(f"ViTSimpleFPN: {self._pretrained}: {report}", logger="current")

    def get_layer_depth(self, name: str, prefix: str = "") -> tuple[int, int]:
        """(depth, num_layers) for `LayerDecayOptimWrapperConstructor`: the ViT's by `vit_layer_depth` (embeddings 0,
        block i → i + 1), the pyramid after the blocks (last)."""
        from .layer_decay import vit_layer_depth
        name = name[len(prefix):]
        if name.startswith("vit."):
            return vit_layer_depth(name[len("vit."):], num_layers(self.vit))
        total = num_layers(self.vit) + 2
        return total - 1, total

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        B, _, H, W = images.shape
        if H % 16 or W % 16:
            raise ValueError(f"ViTSimpleFPN: image size {(H, W)} is not a multiple of the patch size 16 "
                             "(set the data preprocessor's pad_size_divisor to 32)")
        tokens = forward_tokens(self.vit, images)[:, self.vit.num_prefix_tokens:]
        x = tokens.transpose(1, 2).reshape(B, -1, H // 16, W // 16)
        outs = [out(scale(x)) for scale, out in zip(self.scales, self.outs)]
        if self.num_outs == 5:
            outs.append(F.max_pool2d(outs[-1], 1, stride=2))
        return tuple(outs)


# ------------------------------------------------------------------------------------------ mmseg conversion
_TO_MMSEG = (("patch_embed.proj.", "patch_embed.projection."), (".norm1.", ".ln1."), (".norm2.", ".ln2."),
             (".mlp.fc1.", ".ffn.layers.0.0."), (".mlp.fc2.", ".ffn.layers.1."))
_NOT_FOR_MMSEG = ("norm.", "fc_norm.", "head.", "head_drop.")  # final norm / classifier: mmseg's MAE has none


def to_mmseg_mae(checkpoint: str | Path | Mapping[str, Any], allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    """A ViT state dict (any `load_vit_pretrained` format) in the names of mmseg's `MAE` backbone.

    mmseg's MAE loads its `init_cfg` checkpoint with `strict=False` and no report, so unconverted timm names would be
    dropped silently; this refuses any key it cannot place. Layer scales (`gamma_*`) stay at the config's
    `init_values=1.0`, which makes the BEiT-style block a plain ViT block.
    """
    obj = read_checkpoint(checkpoint, allow_pickle) if isinstance(checkpoint, (str, Path)) else checkpoint
    sd, _ = unwrap_checkpoint(obj)
    out, unplaced = {}, []
    for key, value in sd.items():
        if key.startswith(_MAE_ONLY) or key.startswith(_NOT_FOR_MMSEG):
            continue
        if key in ("cls_token", "pos_embed") or key.startswith(("patch_embed.proj.", "blocks.")):
            new = "layers." + key[len("blocks."):] if key.startswith("blocks.") else key
            for old, repl in _TO_MMSEG:
                new = new.replace(old, repl)
            out[new] = value
        else:
            unplaced.append(key)
    if unplaced or "patch_embed.projection.weight" not in out:
        raise ValueError(f"{checkpoint if isinstance(checkpoint, (str, Path)) else 'state dict'}: cannot convert to "
                         f"mmseg MAE names; unplaced keys {unplaced[:8]} (is it a timm / MAE ViT checkpoint?)")
    return out

