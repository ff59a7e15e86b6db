"""Layer-wise LR decay for TinyViT and plain timm ViTs inside any MMEngine model (classifier, mmdet detector, mmseg
segmentor) and the student trainer.

mmdet's and mmseg's own constructors do not know TinyViT; this one asks the backbone (`get_layer_depth`). A timm
`VisionTransformer` (the model itself, or its `backbone`/`student`) gets the BEiT / MAE fine-tuning rule
(`vit_layer_depth`). Any other model with a decay rate ≠ 1 is refused rather than trained without decay.
Use from a config:

    optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
                         constructor='LayerDecayOptimWrapperConstructor',
                         paramwise_cfg=dict(layer_decay_rate=0.8))
"""
from __future__ import annotations

from typing import Any, Callable

from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS
from torch import nn

# parameters of a timm ViT that come before block 0: layer 0 of the decay rule
VIT_EMBED_PARAMS = ("patch_embed", "pos_embed", "cls_token", "reg_token", "dist_token", "norm_pre")

DepthRule = Callable[[str, str], "tuple[int, int]"]  # (parameter name, prefix) → (depth, num_layers)


def vit_layer_depth(name: str, depth: int) -> tuple[int, int]:
    """(layer, num_layers) of a timm ViT parameter (name relative to the ViT) — BEiT / MAE fine-tuning's rule:
    patch / position embeddings and prefix tokens are layer 0, block i is layer i + 1, everything after the blocks
    (final norm, classifier) is layer depth + 1; num_layers = depth + 2, so the classifier keeps the full LR and
    block i gets decay^(depth − i)."""
    if name.startswith(VIT_EMBED_PARAMS):
        return 0, depth + 2
    if name.startswith("blocks."):
        return int(name.split(".")[1]) + 1, depth + 2
    return depth + 1, depth + 2


def _is_timm_vit(module: nn.Module) -> bool:
    from timm.models.vision_transformer import VisionTransformer
    return isinstance(module, VisionTransformer)


def _rule(module: nn.Module) -> DepthRule | None:
    if hasattr(module, "get_layer_depth"):
        return module.get_layer_depth
    if _is_timm_vit(module):
        depth = len(module.blocks)
        return lambda name, prefix="": vit_layer_depth(name[len(prefix):], depth)
    return None


def _find_backbone(module: nn.Module) -> tuple[DepthRule | None, str]:
    """The depth rule of the model, or of its `backbone` / `student` (through a DDP wrapper), and its prefix."""
    if (rule := _rule(module)) is not None:
        return rule, ""
    inner = getattr(module, "module", module)  # DDP wrapper
    prefix = "module." if inner is not module else ""
    if inner is not module and (rule := _rule(inner)) is not None:
        return rule, prefix
    for name in ("backbone", "student"):
        candidate = getattr(inner, name, None)
        if isinstance(candidate, nn.Module) and (rule := _rule(candidate)) is not None:
            return rule, prefix + name + "."
    return None, ""


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class LayerDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """Param groups with lr × decay^(num_layers − 1 − depth) for backbone parameters, × 1 for the rest.

    `paramwise_cfg` keys: `layer_decay_rate` (default 1.0 = no decay). Weight decay is 0 for every 1-D
    parameter (norms, biases) and for TinyViT's `attention_biases`, as in the paper's recipes. A rate ≠ 1 on a
    model with no depth rule (no `get_layer_depth`, not a timm ViT) raises.
    """

    def add_params(self, params: list[dict[str, Any]], module: nn.Module, prefix: str = "",
                   is_dcn_module: Any = None) -> None:
        rate = float(self.paramwise_cfg.get("layer_decay_rate", 1.0))
        unknown = set(self.paramwise_cfg) - {"layer_decay_rate"}
        if unknown:
            raise ValueError(f"LayerDecayOptimWrapperConstructor: unknown paramwise_cfg keys {sorted(unknown)}")
        rule, bb_prefix = _find_backbone(module)
        if rule is None and rate != 1.0:
            raise ValueError(f"layer_decay_rate={rate} (optim.layer_decay): {type(module).__name__} has no layer-depth "
                             "rule (a TinyViT / ViTSimpleFPN `get_layer_depth`, or a timm VisionTransformer); set it "
                             "to None / 1.0 for this model")
        groups: dict[tuple[float, bool], dict[str, Any]] = {}
        for name, param in module.named_parameters():
            if not param.requires_grad:
                continue
            scale = 1.0
            if rule is not None and name.startswith(bb_prefix):
                depth, num_layers = rule(name, bb_prefix)
                scale = rate ** (num_layers - 1 - depth)
            no_decay = param.ndim <= 1 or "attention_biases" in name
            key = (scale, no_decay)
            if key not in groups:
                groups[key] = {"params": [], "lr": self.base_lr * scale, "lr_scale": scale,
                               "weight_decay": 0.0 if no_decay else self.base_wd}
            groups[key]["params"].append(param)
        params.extend(groups[k] for k in sorted(groups, key=lambda k: (-k[0], k[1])))
