"""TinyViT backbones for MMEngine / mmdet / mmseg, timm-compatible, with checkpoint interop.

Public API: `TinyViT` (registered as `type='TinyViT'`, and in timm as `tinyvit_bench_*`), `load_pretrained`
(official | timm | mmpretrain | ours), `build_from_checkpoint` (the model a checkpoint describes), `optimize` (the
inference step: a fast copy, `backbones.inference`), `LayerDecayOptimWrapperConstructor` (registered),
`read_checkpoint` (any file, bad ones named), `load_checkpoint` (contract 2 only), `CHECKPOINT_FORMAT`,
`file_sha256`; plain ViTs (`backbones.vit`): `build_vit`, `vit_from_spec`, `attention_taps`,
`forward_tokens`, `load_vit_pretrained`, `ViTSimpleFPN` (registered).
"""
from .checkpoint import (CHECKPOINT_FORMAT, LoadReport, convert_state_dict, file_sha256, load_checkpoint, load_pretrained,
                         read_checkpoint)
from .inference import optimize
from .layer_decay import LayerDecayOptimWrapperConstructor
from .tiny_vit import ARCH_SETTINGS, TinyViT, build_from_checkpoint, default_window_sizes, resolve_arch
from .vit import (VIT_NAMES, ViTSimpleFPN, attention_taps, build_vit, enable_taps, forward_tokens, load_vit_pretrained,
                  vit_from_spec)

__all__ = ["TinyViT", "ARCH_SETTINGS", "default_window_sizes", "resolve_arch", "load_pretrained",
           "build_from_checkpoint", "optimize", "convert_state_dict", "read_checkpoint", "load_checkpoint", "file_sha256", "LoadReport",
           "CHECKPOINT_FORMAT", "LayerDecayOptimWrapperConstructor", "VIT_NAMES", "build_vit", "vit_from_spec",
           "enable_taps", "attention_taps", "forward_tokens", "load_vit_pretrained", "ViTSimpleFPN"]
