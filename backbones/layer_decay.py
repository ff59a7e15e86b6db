"""Layer-wise LR decay for TinyViT inside any MMEngine model (classifier, mmdet detector, mmseg segmentor).

mmdet's and mmseg's own constructors do not know TinyViT; this one asks the backbone (`get_layer_depth`).
Use from a config:

    optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
                         constructor='LayerDecayOptimWrapperConstructor',
                         paramwise_cfg=dict(layer_decay_rate=0.8))
"""
from __future__ import annotations

from typing import Any

from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS
from torch import nn


def _find_backbone(module: nn.Module) -> tuple[nn.Module | None, str]:
    if hasattr(module, "get_layer_depth"):
        return module, ""
    inner = getattr(module, "module", module)  # DDP wrapper
    for name in ("backbone", "student"):
        candidate = getattr(inner, name, None)
        if candidate is not None and hasattr(candidate, "get_layer_depth"):
            return candidate, name + "."
    return None, ""


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class LayerDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """Param groups with lr × decay^(num_layers − 1 − depth) for backbone parameters, × 1 for the rest.

    `paramwise_cfg` keys: `layer_decay_rate` (default 1.0 = no decay). Weight decay is 0 for every 1-D
    parameter (norms, biases) and for TinyViT's `attention_biases`, as in the paper's recipes.
    """

    def add_params(self, params: list[dict[str, Any]], module: nn.Module, prefix: str = "",
                   is_dcn_module: Any = None) -> None:
        rate = float(self.paramwise_cfg.get("layer_decay_rate", 1.0))
        unknown = set(self.paramwise_cfg) - {"layer_decay_rate"}
        if unknown:
            raise ValueError(f"LayerDecayOptimWrapperConstructor: unknown paramwise_cfg keys {sorted(unknown)}")
        backbone, bb_prefix = _find_backbone(module)
        groups: dict[tuple[float, bool], dict[str, Any]] = {}
        for name, param in module.named_parameters():
            if not param.requires_grad:
                continue
            scale = 1.0
            if backbone is not None and name.startswith(bb_prefix):
                depth, num_layers = backbone.get_layer_depth(name, bb_prefix)
                scale = rate ** (num_layers - 1 - depth)
            no_decay = param.ndim <= 1 or "attention_biases" in name
            key = (scale, no_decay)
            if key not in groups:
                groups[key] = {"params": [], "lr": self.base_lr * scale, "lr_scale": scale,
                               "weight_decay": 0.0 if no_decay else self.base_wd}
            groups[key]["params"].append(param)
        params.extend(groups[k] for k in sorted(groups, key=lambda k: (-k[0], k[1])))
