"""TinyViT (Wu et al., ECCV 2022) as an MMEngine backbone with timm's interface.

One module serves every stage of the suite:
- backbone mode (`out_indices` set): `forward` returns the stage outputs at strides 4/8/16/32 (NCHW, channels =
  the stage dims, an optional LayerNorm per output), as mmdet/mmseg necks expect; it is `forward_intermediates`;
- classification mode (`out_indices=None`): `forward_features` / `forward_head(pre_logits=...)` / `forward`,
  the names timm uses, for distillation and probes.
timm's whole interface: every stage is a module with its own `forward` (forward hooks on `stages.i` fire; the
model traces with `torch.fx`, e.g. torchvision's `create_feature_extractor`), `forward_intermediates`,
`prune_intermediate_layers`, `set_grad_checkpointing` (mmdet/mmseg's `with_cp=True`), `feature_info`,
`get_classifier` / `reset_classifier`.

Parameter names equal timm's `tiny_vit_*` names (`patch_embed.conv1.conv.weight`, `stages.1.blocks.0.attn.qkv...`,
`head.fc.weight`), so timm weights load as they are; `backbones.load_pretrained` maps the official and mmpretrain
layouts onto them.

Inference tricks (each switchable by `set_speed_options` for `benchmarks.backbone_speed --ablation`): the attention
stages run in NHWC with channels-last convolutions (no layout copies between the depth-wise conv and the MLP);
at inference (grad disabled) every conv+BN pair runs as one fused conv whose weights are derived from the live
parameters on each call, so nothing cached can go stale after `load_state_dict`, `.to()` or an optimizer step.
On CPU (eager fp32 inference) attention runs as plain matmuls with the bias added in place, the norm, qkv and
output projections on the whole map (the window partition + head split is one copy, the reverse + head merge
another), and the linear layers and convs as oneDNN calls with their GELU or residual add fused in
(`onednn_inference`). On GPU attention is SDPA on windows cut first (q, k, v and its output are views: no copy),
fused 1×1 convs run as GEMMs with the bias in the epilogue, and LayerNorm under autocast stays in half precision
at inference: each removes element-wise passes or copies seen in the H200 profile (docs/gpu_h200_profiles.md);
`backbone_speed --ablation` on a GPU measures each.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from mmengine.model import BaseModule
from mmengine.registry import MODELS
from torch import nn
from torch.nn.modules import module as torch_module

__all__ = ["TinyViT", "ARCH_SETTINGS", "default_window_sizes", "resolve_arch"]

# Paper Tab. 1 / supp. Tab. 1. Heads = dim / 32 (head dim 32), MBConv ratio 4, MLP ratio 4.
ARCH_SETTINGS: dict[str, dict[str, Any]] = {
    "5m": dict(embed_dims=(64, 128, 160, 320), depths=(2, 2, 6, 2)),
    "11m": dict(embed_dims=(64, 128, 256, 448), depths=(2, 2, 6, 2)),
    "21m": dict(embed_dims=(96, 192, 384, 576), depths=(2, 2, 6, 2)),
}
# The contraction factors of paper §3.2 that a dict `arch` may set (embed_dims and depths are required).
_ARCH_DEFAULTS: dict[str, Any] = dict(head_dim=32, mbconv_ratio=4.0, mlp_ratio=4.0, num_heads=None)
NUM_STAGES = 4
# init_cfg keys of `type='Pretrained'` (MMEngine's PretrainedInit takes map_location; weights load on CPU anyway)
_PRETRAINED_KEYS = {"type", "checkpoint", "prefix", "allow_pickle", "map_location"}
_ATTENTION_KERNELS = {"auto": None, "sdpa": True, "matmul": False}  # → Attention.fused_attn
_POINTWISE_CONVS = {"auto": None, "gemm": True, "conv": False}  # → ConvNorm.pointwise_gemm
_AUTOCAST_NORMS = {"auto": None, "half": True, "fp32": False}  # → LayerNorm.half_inference


def default_window_sizes(img_size: int) -> tuple[int, int, int, int]:
    """The paper's windows for a pretraining resolution: 224 → 7,7,14,7; 384 → 12,12,24,12; 512 → 16,16,32,16."""
    if img_size % 32:
        raise ValueError(f"img_size={img_size} has no default window sizes (not a multiple of 32); "
                         "pass window_sizes explicitly")
    s = img_size // 32
    return (s, s, 2 * s, s)


def resolve_arch(arch: str | dict[str, Any]) -> dict[str, Any]:
    """Full architecture dict (embed_dims, depths, num_heads, mbconv_ratio, mlp_ratio) from a name or factors."""
    if isinstance(arch, str):
        key = arch.lower().removeprefix("tinyvit-").removeprefix("tiny_vit_").removesuffix("_224")
        if key not in ARCH_SETTINGS:
            raise ValueError(f"unknown TinyViT arch {arch!r}; choose one of {sorted(ARCH_SETTINGS)} "
                             f"or pass a dict with embed_dims and depths")
        spec = {**_ARCH_DEFAULTS, **ARCH_SETTINGS[key]}
    elif isinstance(arch, dict):
        unknown = set(arch) - set(_ARCH_DEFAULTS) - {"embed_dims", "depths"}
        missing = {"embed_dims", "depths"} - set(arch)
        if unknown or missing:
            raise ValueError(f"TinyViT arch dict: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}; "
                             f"allowed: embed_dims, depths, {', '.join(_ARCH_DEFAULTS)}")
        spec = {**_ARCH_DEFAULTS, **arch}
    else:
        raise TypeError(f"TinyViT arch must be a name or a dict, got {type(arch).__name__}")
    spec["embed_dims"], spec["depths"] = tuple(spec["embed_dims"]), tuple(spec["depths"])
    for field in ("embed_dims", "depths"):
        if len(spec[field]) != NUM_STAGES or min(spec[field]) < 1:
            raise ValueError(f"TinyViT arch {arch!r}: {field} must be {NUM_STAGES} positive ints, got {spec[field]}")
    if spec["num_heads"] is None:
        bad = [d for d in spec["embed_dims"] if d % spec["head_dim"]]
        if bad:
            raise ValueError(f"TinyViT arch {arch!r}: embed_dims {bad} not divisible by head_dim={spec['head_dim']}")
        spec["num_heads"] = tuple(d // spec["head_dim"] for d in spec["embed_dims"])
    spec["num_heads"] = tuple(spec["num_heads"])
    del spec["head_dim"]
    return spec


def onednn_inference(module: nn.Module) -> bool:
    """Whether this call may run oneDNN's fused CPU ops (a linear layer or conv with its GELU or residual add as one
    kernel; oneDNN's GEMM also ran 2.3-2.7x faster than the MKL sgemm `F.linear` calls on this suite's AMD CPU):
    `module.onednn` set, eval mode, grad off, fp32 CPU weights, eager (not traced, scripted, compiled, autocast or
    exported to ONNX), and no forward hook on the Linear layers it would bypass (feature extractors, FLOP
    counters)."""
    if (torch.compiler.is_compiling() or torch.jit.is_tracing() or torch.jit.is_scripting()
            or torch.onnx.is_in_onnx_export() or torch.fx._symbolic_trace.is_fx_symbolic_tracing()):
        return False  # graphs keep the plain ops (the compiler / exporter does its own fusions)
    weight = next(module.parameters())
    return (module.onednn and not module.training and not torch.is_grad_enabled() and weight.device.type == "cpu"
            and weight.dtype == torch.float32 and torch.backends.mkldnn.is_available()
            and torch.backends.mkldnn.enabled and not torch.is_autocast_enabled("cpu") and not _hooked(module))


def _device_type(module: nn.Module) -> str:
    """The device type of a module's weights: read from `parameters()`, which stay tensors under `torch.fx`
    tracing (attribute access gives proxies there), so layout and kernel choices never branch on a proxy."""
    return next(module.parameters()).device.type


def _hooked(module: nn.Module) -> bool:
    """Whether a forward hook waits on a layer the oneDNN calls would bypass (the Linear layers of attention and
    MLP; a ConvNorm's conv and BN already run as one fused conv at inference)."""
    if torch_module._global_forward_hooks or torch_module._global_forward_pre_hooks:
        return True
    return any(m._forward_hooks or m._forward_pre_hooks for m in module.children())


def onednn_linear(fc: nn.Linear, x: torch.Tensor, gelu: bool = False,
                  residual: torch.Tensor | None = None) -> torch.Tensor:
    """`fc(x)`, then GELU or `+ residual`, as one oneDNN call (only where `onednn_inference` holds)."""
    if residual is not None:
        return torch.ops.mkldnn._linear_pointwise.binary(x, residual, fc.weight, fc.bias, "add")
    return torch.ops.mkldnn._linear_pointwise(x, fc.weight, fc.bias, "gelu" if gelu else "none", [],
                                              "none" if gelu else "")


class ConvNorm(nn.Module):
    """Conv2d (no bias) + BatchNorm2d; one fused conv at inference, recomputed from the live weights each call."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 1, stride: int = 1, padding: int = 0,
                 groups: int = 1, bn_weight_init: float = 1.0) -> None:
        super().__init__()
        self.fuse_bn = True  # `TinyViT.set_speed_options(fuse_bn=False)` turns it off (benchmark ablation)
        self.onednn = True  # `TinyViT.set_speed_options(onednn=False)` turns it off (benchmark ablation)
        self.pointwise_gemm: bool | None = None  # None: off the CPU (`set_speed_options(pointwise_convs=...)`)
        self.conv = nn.Conv2d(in_chs, out_chs, kernel_size, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_chs)
        nn.init.constant_(self.bn.weight, bn_weight_init)
        nn.init.zeros_(self.bn.bias)

    def fused_weight_and_bias(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The conv weight and bias equal to conv followed by BN with its running statistics."""
        bn = self.bn
        scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
        return self.conv.weight * scale[:, None, None, None], bn.bias - bn.running_mean * scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.fuse_bn or self.training or torch.is_grad_enabled() or self.bn.running_var is None:
            return self.bn(self.conv(x))
        weight, bias = self.fused_weight_and_bias()
        c = self.conv
        if self._as_gemm(x):
            # a 1×1 conv over channels-last memory is a GEMM over the NHWC rows, and `F.linear` adds the bias in
            # the GEMM's epilogue; cuDNN's conv leaves it to a separate broadcast `add_`, which runs in PyTorch's
            # non-vectorised element-wise kernel (the largest row of the H200 profile, docs/gpu_h200_profiles.md)
            return F.linear(x.permute(0, 2, 3, 1), weight.flatten(1), bias).permute(0, 3, 1, 2)
        return F.conv2d(x, weight, bias, c.stride, c.padding, c.dilation, c.groups)

    def _as_gemm(self, x: torch.Tensor) -> bool:
        """Whether this (fused, inference) conv runs as a GEMM: a 1×1, stride-1 dense conv on channels-last input,
        off the CPU unless `pointwise_gemm` says otherwise (on CPU the oneDNN conv is the faster call)."""
        c = self.conv
        use = self.pointwise_gemm if self.pointwise_gemm is not None else _device_type(self) != "cpu"
        return (use and c.kernel_size == (1, 1) and c.stride == (1, 1) and c.padding == (0, 0) and c.groups == 1
                and x.is_contiguous(memory_format=torch.channels_last))

    def forward_act(self, x: torch.Tensor, act: nn.Module | None = None,
                    residual: torch.Tensor | None = None) -> torch.Tensor:
        """`act(self(x))` or `self(x) + residual`: one oneDNN call with the BN fused where `onednn_inference` holds
        (and the BN is fused), else the plain ops (also with nothing to fuse: a lone depth-wise conv ran 2x slower
        as a oneDNN call than through `F.conv2d`, `benchmarks.backbone_speed --profile`)."""
        if not ((act is not None or residual is not None) and self.fuse_bn and self.bn.running_var is not None
                and onednn_inference(self)):
            y = self(x)
            return act(y) if act is not None else y.add_(residual) if residual is not None else y
        weight, bias = self.fused_weight_and_bias()
        c = self.conv
        args = (weight, bias, list(c.padding), list(c.stride), list(c.dilation), c.groups)
        if residual is not None:
            return torch.ops.mkldnn._convolution_pointwise.binary(x, residual, *args, "add", None, None, [], None)
        return torch.ops.mkldnn._convolution_pointwise(x, *args, "gelu", [], "none")


class LayerNorm(nn.LayerNorm):
    """`nn.LayerNorm` that, at inference under autocast off the CPU, runs in the autocast dtype (fp32 statistics
    inside the kernel). CUDA's autocast runs LayerNorm in fp32: a cast copy of the input, a 4-byte write and a cast
    copy before the next GEMM (21 of each per TinyViT-21M forward), for the half-precision tensor that GEMM reads
    anyway; only the affine weights are rounded to half first. Training keeps autocast's fp32 norm."""

    def __init__(self, dim: int) -> None:
        super().__init__(dim)
        self.half_inference: bool | None = None  # None: off the CPU (`set_speed_options(autocast_norm=...)`)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        device = _device_type(self)
        use = self.half_inference if self.half_inference is not None else device != "cpu"
        if not (use and not torch.is_grad_enabled() and torch.is_autocast_enabled(device)):
            return super().forward(x)
        dtype = torch.get_autocast_dtype(device)
        with torch.autocast(device, enabled=False):
            return F.layer_norm(x.to(dtype), self.normalized_shape, self.weight.to(dtype), self.bias.to(dtype),
                                self.eps)


class PatchEmbed(nn.Module):
    """Two stride-2 3×3 ConvNorms (stride 4 in all)."""

    def __init__(self, in_chs: int, out_chs: int) -> None:
        super().__init__()
        self.conv1 = ConvNorm(in_chs, out_chs // 2, 3, 2, 1)
        self.act = nn.GELU()
        self.conv2 = ConvNorm(out_chs // 2, out_chs, 3, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2.forward_act(self.conv1.forward_act(x, self.act))


class MBConv(nn.Module):
    """Inverted residual: 1×1 expand, 3×3 depth-wise, 1×1 project (its BN starts at zero), GELU after the add."""

    def __init__(self, dim: int, expand_ratio: float, drop_path: float) -> None:
        super().__init__()
        hidden = int(dim * expand_ratio)
        self.conv1 = ConvNorm(dim, hidden)
        self.act1 = nn.GELU()
        self.conv2 = ConvNorm(hidden, hidden, 3, 1, 1, groups=hidden)
        self.act2 = nn.GELU()
        self.conv3 = ConvNorm(hidden, dim, bn_weight_init=0.0)
        self.act3 = nn.GELU()
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2.forward_act(self.conv1.forward_act(x, self.act1), self.act2)
        if self.training and self.drop_path.p:
            return self.act3(self.drop_path(self.conv3(y)) + x)
        return self.act3(self.conv3.forward_act(y, residual=x))  # the add is in place / inside the conv


class PatchMerging(nn.Module):
    """1×1 conv to the next dim, stride-2 3×3 depth-wise conv, 1×1 conv."""

    def __init__(self, dim: int, out_dim: int) -> None:
        super().__init__()
        self.conv1 = ConvNorm(dim, out_dim)
        self.act1 = nn.GELU()
        self.conv2 = ConvNorm(out_dim, out_dim, 3, 2, 1, groups=out_dim)
        self.act2 = nn.GELU()
        self.conv3 = ConvNorm(out_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3.forward_act(self.conv2.forward_act(self.conv1.forward_act(x, self.act1), self.act2))


class DropPath(nn.Module):
    """Stochastic depth per sample (identity at inference or when `p == 0`)."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


def attention_bias_index(window_size: int) -> torch.Tensor:
    """(N, N) index into a (heads, ws²) bias table: offset (|Δrow|, |Δcol|) → |Δrow|·ws + |Δcol| (LeViT's order)."""
    coords = torch.stack(torch.meshgrid(torch.arange(window_size), torch.arange(window_size), indexing="ij")).flatten(1)
    delta = (coords[:, :, None] - coords[:, None, :]).abs()
    return delta[0] * window_size + delta[1]


def resize_attention_biases(table: torch.Tensor, window_size: int) -> torch.Tensor:
    """Bicubically resize a (heads, ws_old²) bias table to (heads, window_size²)."""
    heads, n = table.shape
    old = int(round(n ** 0.5))
    if old * old != n:
        raise ValueError(f"attention bias table of shape {tuple(table.shape)} is not (heads, ws²)")
    if old == window_size:
        return table
    grid = table.reshape(1, heads, old, old).float()
    grid = F.interpolate(grid, size=(window_size, window_size), mode="bicubic", align_corners=False)
    return grid.reshape(heads, window_size * window_size).to(table.dtype)


@torch.fx.wrap
def _pad_to_windows(x: torch.Tensor, window_size: int) -> torch.Tensor:
    """Zero-pad an NHWC map at the bottom/right to whole windows (unmasked, as the paper's code and timm do)."""
    pad_b, pad_r = -x.shape[1] % window_size, -x.shape[2] % window_size
    return F.pad(x, (0, 0, 0, pad_r, 0, pad_b)) if pad_b or pad_r else x


@torch.fx.wrap
def _crop_like(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """`x[:, :H, :W]` for the H, W of `ref` (a view; no-op without padding)."""
    return x if x.shape[1:3] == ref.shape[1:3] else x[:, :ref.shape[1], :ref.shape[2]]


@torch.fx.wrap
def window_attention(qkv: torch.Tensor, bias: torch.Tensor, num_heads: int, window_size: int) -> torch.Tensor:
    """Attention as plain matmuls inside each window of an NHWC qkv map (B, H, W, 3C), H and W multiples of the
    window; returns (B, H, W, C) before the output projection.

    The window partition and the split into heads are one copy (`reshape` of a permuted view) and the window
    reverse with the head merge another, instead of one copy each for partition, q, k, v, heads and reverse.
    """
    b, h, w, c3 = qkv.shape
    ws, c = window_size, c3 // 3
    nh, nw, hd = h // ws, w // ws, c // num_heads
    # channel order is (head, q|k|v, head_dim), as timm and the paper's code lay out the qkv projection
    q, k, v = qkv.view(b, nh, ws, nw, ws, num_heads, 3, hd).permute(6, 0, 1, 3, 5, 2, 4, 7).reshape(
        3, b * nh * nw, num_heads, ws * ws, hd).unbind(0)
    attn = (q * hd ** -0.5) @ k.transpose(-2, -1)
    x = attn.add_(bias.to(q.dtype)).softmax(dim=-1) @ v  # in place: no second (windows, heads, N, N) buffer
    return x.view(b, nh, nw, num_heads, ws, ws, hd).permute(0, 1, 4, 2, 5, 3, 6).reshape(b, h, w, c)


@torch.fx.wrap
def window_partition(x: torch.Tensor, window_size: int) -> torch.Tensor:
    """(B, H, W, C) → (B·windows, ws², C), zero-padded to whole windows: one copy (a view for a one-window map)."""
    x = _pad_to_windows(x, window_size)
    b, h, w, c = x.shape
    ws = window_size
    return x.view(b, h // ws, ws, w // ws, ws, c).transpose(2, 3).reshape(-1, ws * ws, c)


@torch.fx.wrap
def window_reverse(windows: torch.Tensor, like: torch.Tensor, window_size: int) -> torch.Tensor:
    """Inverse of `window_partition` for a map shaped like `like` (B, H, W, ·), padding cropped off."""
    b, h, w = like.shape[:3]
    ws, c = window_size, windows.shape[-1]
    hp, wp = h + -h % ws, w + -w % ws
    return _crop_like(windows.view(b, hp // ws, wp // ws, ws, ws, c).transpose(2, 3).reshape(b, hp, wp, c), like)


@torch.fx.wrap
def windows_sdpa(qkv: torch.Tensor, bias: torch.Tensor, num_heads: int) -> torch.Tensor:
    """SDPA over windows: (B·windows, N, 3C) → (B·windows, N, C). q, k and v are strided views of the qkv GEMM's
    output and the result a view of SDPA's (the memory-efficient kernel takes strides): no copy."""
    bw, n, c3 = qkv.shape
    q, k, v = qkv.view(bw, n, num_heads, 3, c3 // (3 * num_heads)).permute(3, 0, 2, 1, 4).unbind(0)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype)).transpose(1, 2).reshape(
        bw, n, c3 // 3)


class Attention(nn.Module):
    """Window multi-head self-attention on an NHWC map, with a learned bias per (head, relative offset).

    Two layouts, by kernel. Plain matmuls (CPU default): norm, qkv and output projections run on the whole map and
    only the attention sees windows (one copy in, one out). SDPA (GPU default): the map is cut into windows first
    (one copy of C channels, none for a one-window map), so q, k, v reach SDPA as views of the qkv output, the
    residual is added in window layout and one copy goes back: 2C instead of 4C channels copied per block.
    Parameter names and the qkv channel layout are timm's.
    """

    def __init__(self, dim: int, num_heads: int, window_size: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.window_size = window_size
        self.fused_attn: bool | None = None  # SDPA (True), matmuls (False); None: SDPA on GPU, matmuls on CPU
        self.onednn = True  # projections through `onednn_linear` where `onednn_inference` holds
        self.norm = LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, window_size * window_size))
        self.register_buffer("attention_bias_idxs", attention_bias_index(window_size), persistent=False)

    def attention_bias(self) -> torch.Tensor:
        """(heads, N, N) bias, gathered from the live table on every call (a cached copy is what goes stale in the
        official code and timm); `index_select` on the flat index is ~20× faster on CPU than advanced indexing."""
        n = self.window_size * self.window_size
        return self.attention_biases.index_select(1, self.attention_bias_idxs.view(-1)).view(self.num_heads, n, n)

    def forward(self, x: torch.Tensor, add_input: bool = False) -> torch.Tensor:
        """(B, H, W, C) → (B, H, W, C) (+ x with `add_input`); maps that are not whole windows are zero-padded,
        then cropped."""
        ws = self.window_size
        if self.fused_attn if self.fused_attn is not None else _device_type(self) == "cuda":
            windows = window_partition(x, ws)
            y = self.proj(windows_sdpa(self.qkv(self.norm(windows)), self.attention_bias(), self.num_heads))
            return window_reverse(y.add_(windows) if add_input else y, x, ws)
        h = self.norm(_pad_to_windows(x, ws))
        onednn = onednn_inference(self)
        qkv = onednn_linear(self.qkv, h) if onednn else self.qkv(h)
        out = _crop_like(window_attention(qkv, self.attention_bias(), self.num_heads, ws), x)
        if onednn:
            return onednn_linear(self.proj, out, residual=x if add_input else None)
        y = self.proj(out)
        return y.add_(x) if add_input else y

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001 - torch's signature
        key = prefix + "attention_biases"
        if key in state_dict and state_dict[key].shape != self.attention_biases.shape:
            table = state_dict[key]
            if table.ndim != 2 or table.shape[0] != self.num_heads:
                raise ValueError(f"{key}: checkpoint shape {tuple(table.shape)} does not fit this model's "
                                 f"{tuple(self.attention_biases.shape)} (heads differ)")
            state_dict[key] = resize_attention_biases(table, self.window_size)
        state_dict.pop(prefix + "attention_bias_idxs", None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class Mlp(nn.Module):
    """LayerNorm → Linear → GELU → Linear (the norm lives inside, as in the paper's code)."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0) -> None:
        super().__init__()
        self.norm = LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.drop1 = nn.Dropout(drop)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop2 = nn.Dropout(drop)
        self.onednn = True  # fc1+GELU and fc2(+residual) through `onednn_linear` where `onednn_inference` holds

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        h = self.norm(x)
        if onednn_inference(self):
            return onednn_linear(self.fc2, onednn_linear(self.fc1, h, gelu=True), residual=residual)
        y = self.drop2(self.fc2(self.drop1(self.act(self.fc1(h)))))
        return y if residual is None else y.add_(residual)


class TinyViTBlock(nn.Module):
    """Window attention (+residual) → 3×3 depth-wise ConvNorm → MLP (+residual), on NHWC tensors."""

    def __init__(self, dim: int, num_heads: int, window_size: int, mlp_ratio: float, drop_path: float,
                 drop: float = 0.0) -> None:
        super().__init__()
        self.window_size = window_size
        self.attn = Attention(dim, num_heads, window_size)
        self.drop_path1 = DropPath(drop_path)
        self.local_conv = ConvNorm(dim, dim, 3, 1, 1, groups=dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)
        self.drop_path2 = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and (self.drop_path1.p or self.drop_path2.p):
            y = self.drop_path1(self.attn(x)) + x
            x = self.local_conv(y.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
            return self.drop_path2(self.mlp(x)) + x
        # residuals go in place into the fresh branch outputs, or into the projections' oneDNN calls
        y = self.attn(x, add_input=True)
        x = self.local_conv.forward_act(y.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)  # NHWC = channels-last: no copy
        return self.mlp(x, residual=x)


def _run_blocks(blocks: nn.Sequential, x: torch.Tensor, checkpointing: bool) -> torch.Tensor:
    """Run the blocks, each under gradient checkpointing when asked and gradients are being recorded."""
    if not (checkpointing and torch.is_grad_enabled()):
        return blocks(x)
    for block in blocks:
        x = torch.utils.checkpoint.checkpoint(block, x, use_reentrant=False)
    return x


class ConvStage(nn.Module):
    """Stage 0: MBConv blocks at stride 4 (NCHW in and out)."""

    def __init__(self, dim: int, depth: int, expand_ratio: float, drop_paths: Sequence[float]) -> None:
        super().__init__()
        self.grad_checkpointing = False
        self.blocks = nn.Sequential(*[MBConv(dim, expand_ratio, drop_paths[i]) for i in range(depth)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _run_blocks(self.blocks, x, self.grad_checkpointing and self.training)


class TinyViTStage(nn.Module):
    """Stages 1-3: PatchMerging (stride 2) then TinyViT blocks; NCHW in and out (channels-last memory), NHWC inside."""

    def __init__(self, dim: int, out_dim: int, depth: int, num_heads: int, window_size: int, mlp_ratio: float,
                 drop_paths: Sequence[float], drop: float) -> None:
        super().__init__()
        self.grad_checkpointing = False
        self.downsample = PatchMerging(dim, out_dim)
        self.blocks = nn.Sequential(*[
            TinyViTBlock(out_dim, num_heads, window_size, mlp_ratio, drop_paths[i], drop) for i in range(depth)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.downsample(x).permute(0, 2, 3, 1)
        return _run_blocks(self.blocks, x, self.grad_checkpointing and self.training).permute(0, 3, 1, 2)


class ClassifierHead(nn.Module):
    """Global average pool → LayerNorm → (dropout) → Linear (Identity when num_classes == 0)."""

    def __init__(self, dim: int, num_classes: int, drop: float = 0.0) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.drop = nn.Dropout(drop)
        self.fc = nn.Linear(dim, num_classes) if num_classes > 0 else nn.Identity()


def feature_take_indices(num_stages: int, indices: int | Sequence[int] | None) -> tuple[list[int], int]:
    """(absolute stage indices, the largest) for timm's `indices`: None all, int n the last n, or a sequence."""
    if indices is None:
        indices = num_stages
    if isinstance(indices, int):
        if not 0 < indices <= num_stages:
            raise ValueError(f"indices={indices}: last-n must be in 1..{num_stages}")
        take = list(range(num_stages - indices, num_stages))
    else:
        take = [i + num_stages if i < 0 else i for i in indices]
        if not take or not all(0 <= i < num_stages for i in take):
            raise ValueError(f"indices={list(indices)}: each must be in -{num_stages}..{num_stages - 1}")
    return take, max(take)


@torch.fx.wrap
def _check_input(x: torch.Tensor, in_channels: int, arch: Any) -> None:
    if x.ndim != 4 or x.shape[1] != in_channels:
        raise ValueError(f"TinyViT {arch!r} expects (B, {in_channels}, H, W) input, got shape {tuple(x.shape)}")


@MODELS.register_module()
class TinyViT(BaseModule):
    """TinyViT-5M/11M/21M (or custom factors), any input size, strides 4/8/16/32.

    Args:
        arch: '5m' | '11m' | '21m', or a dict with embed_dims, depths and optionally num_heads, head_dim,
            mbconv_ratio, mlp_ratio (paper §3.2's contraction factors).
        img_size: pretraining resolution; only chooses the default window sizes (any input size runs).
        window_sizes: per-stage windows (stage 0 is convolutional and ignores its entry). Checkpoints with other
            windows load with their bias tables resized bicubically.
        in_channels: image channels.
        num_classes: classifier classes; default 1000 in classification mode, no head in backbone mode.
            0 keeps the pooled, normalised features as the output (timm's convention).
        out_indices: stages whose outputs `forward` returns (backbone mode); None = classification mode.
        out_norm: a LayerNorm on each returned stage output.
        frozen_stages: -1 none; 0 the patch embedding; k ≥ 1 also stages 0..k-1 (and their output norms).
        norm_eval: keep BatchNorm layers in eval mode while training (frozen running statistics).
        with_cp: gradient checkpointing per block while training (the mmdet/mmseg name for timm's
            `set_grad_checkpointing()`).
        drop_path_rate: stochastic depth, linear over the blocks; drop_rate: MLP / head dropout.
        init_cfg: MMEngine init config; `dict(type='Pretrained', checkpoint=PATH[, prefix=...][,
            allow_pickle=True])` accepts every format `backbones.load_pretrained` reads (ours, official, timm,
            mmpretrain); `allow_pickle` for trusted files that pickle objects (official Cream training
            checkpoints pickle a yacs config).
    """

    def __init__(self, arch: str | dict[str, Any] = "5m", img_size: int = 224,
                 window_sizes: Sequence[int] | None = None, in_channels: int = 3, num_classes: int | None = None,
                 out_indices: Sequence[int] | None = None, out_norm: bool = True, frozen_stages: int = -1,
                 norm_eval: bool = False, with_cp: bool = False, drop_path_rate: float = 0.0,
                 drop_rate: float = 0.0, init_cfg: dict | list[dict] | None = None) -> None:
        super().__init__(init_cfg=init_cfg)
        spec = resolve_arch(arch)
        self.arch = arch
        self.embed_dims: tuple[int, ...] = spec["embed_dims"]
        self.depths: tuple[int, ...] = spec["depths"]
        self.num_heads: tuple[int, ...] = spec["num_heads"]
        self.img_size = img_size
        window_sizes = tuple(window_sizes) if window_sizes is not None else default_window_sizes(img_size)
        if len(window_sizes) != NUM_STAGES or not all(isinstance(w, int) and w > 0 for w in window_sizes):
            raise ValueError(f"TinyViT {arch!r}: window_sizes must be {NUM_STAGES} positive ints, got {window_sizes}")
        self.window_sizes = window_sizes
        self.in_channels = in_channels
        if out_indices is not None:
            out_indices = tuple(i % NUM_STAGES for i in out_indices)
            if not out_indices:
                raise ValueError("out_indices must name at least one stage (or be None for classification)")
        self.out_indices = out_indices
        if not -1 <= frozen_stages <= NUM_STAGES:
            raise ValueError(f"frozen_stages must be in [-1, {NUM_STAGES}], got {frozen_stages}")
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.channels_last = True  # `set_speed_options(channels_last=False)` turns it off (benchmark ablation)
        self.num_features = self.embed_dims[-1]
        self.feature_info = [dict(num_chs=d, reduction=4 * 2 ** i, module=f"stages.{i}")
                             for i, d in enumerate(self.embed_dims)]

        drop_paths = torch.linspace(0, drop_path_rate, sum(self.depths)).tolist()
        starts = [sum(self.depths[:i]) for i in range(NUM_STAGES)]
        self.patch_embed = PatchEmbed(in_channels, self.embed_dims[0])
        self.stages = nn.Sequential()
        for i in range(NUM_STAGES):
            dps = drop_paths[starts[i]:starts[i] + self.depths[i]]
            if i == 0:
                self.stages.append(ConvStage(self.embed_dims[0], self.depths[0], spec["mbconv_ratio"], dps))
            else:
                self.stages.append(TinyViTStage(self.embed_dims[i - 1], self.embed_dims[i], self.depths[i],
                                                self.num_heads[i], window_sizes[i], spec["mlp_ratio"], dps,
                                                drop_rate))
        if out_indices is not None and out_norm:
            for i in out_indices:
                self.add_module(f"norm{i}", nn.LayerNorm(self.embed_dims[i]))
        self.out_norm = out_norm
        if num_classes is None:
            num_classes = 1000 if out_indices is None else 0
        self.num_classes = num_classes
        has_head = out_indices is None or num_classes > 0
        self.head = ClassifierHead(self.num_features, num_classes, drop_rate) if has_head else None
        self._pruned = False
        self.apply(self._init_module)
        self.set_grad_checkpointing(with_cp)
        self._freeze_stages()

    # ----------------------------------------------------------------------------------------------- init
    @staticmethod
    def _init_module(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def init_weights(self) -> None:
        """MMEngine hook: `init_cfg=dict(type='Pretrained', checkpoint=...)` goes through `load_pretrained`."""
        cfg = self.init_cfg
        if isinstance(cfg, dict) and cfg.get("type") == "Pretrained":
            unknown = set(cfg) - _PRETRAINED_KEYS
            if unknown or "checkpoint" not in cfg:
                raise ValueError(f"TinyViT init_cfg {cfg}: unknown keys {sorted(unknown)}"
                                 f"{'' if 'checkpoint' in cfg else ', missing checkpoint'}; "
                                 f"allowed: {sorted(_PRETRAINED_KEYS)}")
            from .checkpoint import load_pretrained
            load_pretrained(self, cfg["checkpoint"], prefix=cfg.get("prefix"),
                            allow_pickle=bool(cfg.get("allow_pickle", False)))
            self._is_init = True
            return
        super().init_weights()

    # -------------------------------------------------------------------------------------------- forward
    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.in_channels, self.arch)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.patch_embed(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Last stage's feature map, (B, num_features, H/32, W/32)."""
        return self.stages(self._stem(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool → norm → (pre_logits: return) → classifier; identity after `prune_intermediate_layers`."""
        if self.head is None:
            if self._pruned:
                return x
            raise RuntimeError("this TinyViT was built as a backbone without a head (out_indices set, num_classes=0)")
        x = self.head.norm(x.mean(dim=(2, 3)))
        return x if pre_logits else self.head.fc(self.head.drop(x))

    def forward_intermediates(self, x: torch.Tensor, indices: int | Sequence[int] | None = None,
                              norm: bool = False, stop_early: bool = False, output_fmt: str = "NCHW",
                              intermediates_only: bool = False,
                              ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """Stage outputs, as timm's `forward_intermediates` (stage i at stride 4·2^i, NCHW).

        indices: None = all stages, int n = the last n, a sequence = those stages (negative from the end).
        norm: apply this model's per-output LayerNorms (backbone mode with `out_norm`); timm's TinyViT has none,
            so elsewhere it changes nothing, as in timm. stop_early: stop after the last wanted stage.
        Returns the list, or `(final features, list)` unless `intermediates_only`.
        """
        if output_fmt != "NCHW":
            raise ValueError(f"TinyViT.forward_intermediates: output_fmt must be 'NCHW', got {output_fmt!r}")
        take, max_index = feature_take_indices(len(self.stages), indices)
        x = self._stem(x)
        intermediates = []
        for i, stage in enumerate(self.stages[:max_index + 1] if stop_early else self.stages):
            x = stage(x)
            if i in take:
                out_norm = getattr(self, f"norm{i}", None) if norm else None
                intermediates.append(out_norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2) if out_norm else x)
        return intermediates if intermediates_only else (x, intermediates)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        if self.out_indices is None:
            return self.forward_head(self.forward_features(x))
        outs = self.forward_intermediates(x, self.out_indices, norm=self.out_norm, stop_early=True,
                                          intermediates_only=True)
        return tuple(out.contiguous() for out in outs)

    # ------------------------------------------------------------------------------ timm-style interface
    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Gradient checkpointing per block while training (mmdet/mmseg configs say `with_cp=True`)."""
        self.grad_checkpointing = enable
        for stage in self.stages:
            stage.grad_checkpointing = enable

    @property
    def with_cp(self) -> bool:
        return self.grad_checkpointing

    @with_cp.setter
    def with_cp(self, enable: bool) -> None:
        self.set_grad_checkpointing(enable)

    def prune_intermediate_layers(self, indices: int | Sequence[int] = 1, prune_norm: bool = False,
                                  prune_head: bool = True) -> list[int]:
        """Drop the stages after the last of `indices` (timm's semantics); returns the absolute indices.

        The head goes when `prune_head` or when stages were cut (then `forward_head` is the identity and
        `num_features` the last kept stage's channels). Output norms of dropped stages go; with `prune_norm`
        all of them. In backbone mode `out_indices` keeps the surviving stages.
        """
        take, max_index = feature_take_indices(len(self.stages), indices)
        prune_end = max_index < len(self.stages) - 1
        self.stages = self.stages[:max_index + 1]
        for i in range(NUM_STAGES):
            if hasattr(self, f"norm{i}") and (prune_norm or i > max_index):
                delattr(self, f"norm{i}")
        if self.out_indices is not None:
            kept = tuple(i for i in self.out_indices if i <= max_index)
            if not kept:
                raise ValueError(f"prune_intermediate_layers({indices}) removes every stage of out_indices "
                                 f"{self.out_indices}")
            self.out_indices = kept
            self.out_norm = self.out_norm and not prune_norm
        if prune_end:
            self.num_features = self.feature_info[max_index]["num_chs"]
        if prune_head or prune_end:
            self.head, self.num_classes, self._pruned = None, 0, True
        return take

    def set_speed_options(self, *, channels_last: bool | None = None, fuse_bn: bool | None = None,
                          attention: str | None = None, onednn: bool | None = None,
                          pointwise_convs: str | None = None, autocast_norm: str | None = None) -> None:
        """Inference tricks, each switchable for `benchmarks.backbone_speed --ablation` (all on by default;
        None keeps a setting). channels_last: feed the convolutions channels-last memory; fuse_bn: conv+BN as one
        conv at inference; attention: 'sdpa' (windows first), 'matmul' (map first) or 'auto' (SDPA on GPU,
        matmuls on CPU); onednn: on CPU at inference, linear layers and convs with their GELU / residual add as
        oneDNN fused calls; pointwise_convs: 'gemm' (fused 1×1 convs as GEMMs with the bias in the epilogue),
        'conv' or 'auto' (GEMM off the CPU); autocast_norm: 'half' (LayerNorm at inference in the autocast dtype),
        'fp32' (autocast's own policy) or 'auto' (half off the CPU)."""
        for name, value, choices in (("attention", attention, _ATTENTION_KERNELS),
                                     ("pointwise_convs", pointwise_convs, _POINTWISE_CONVS),
                                     ("autocast_norm", autocast_norm, _AUTOCAST_NORMS)):
            if value is not None and value not in choices:
                raise ValueError(f"{name}={value!r}: choose one of {sorted(choices)}")
        if channels_last is not None:
            self.channels_last = channels_last
        for m in self.modules():
            if isinstance(m, ConvNorm):
                if fuse_bn is not None:
                    m.fuse_bn = fuse_bn
                if pointwise_convs is not None:
                    m.pointwise_gemm = _POINTWISE_CONVS[pointwise_convs]
            if attention is not None and isinstance(m, Attention):
                m.fused_attn = _ATTENTION_KERNELS[attention]
            if onednn is not None and isinstance(m, (ConvNorm, Attention, Mlp)):
                m.onednn = onednn
            if autocast_norm is not None and isinstance(m, LayerNorm):
                m.half_inference = _AUTOCAST_NORMS[autocast_norm]

    def get_classifier(self) -> nn.Module:
        return self.head.fc if self.head is not None else nn.Identity()

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier (keeps the head norm); 0 → features."""
        self.num_classes = num_classes
        if self.head is None:
            if self._pruned:
                raise RuntimeError("reset_classifier after prune_intermediate_layers: the head was pruned")
            self.head = ClassifierHead(self.num_features, num_classes)
            self.head.apply(self._init_module)
            return
        self.head.fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        self.head.fc.apply(self._init_module)

    @torch.jit.ignore
    def no_weight_decay_keywords(self) -> set[str]:
        return {"attention_biases"}

    # ------------------------------------------------------------------------ MMEngine-style conventions
    @property
    def out_channels(self) -> tuple[int, ...]:
        """Channels of the returned outputs (backbone mode)."""
        return tuple(self.embed_dims[i] for i in (self.out_indices or (NUM_STAGES - 1,)))

    def get_layer_depth(self, param_name: str, prefix: str = "") -> tuple[int, int]:
        """(depth, num_layers) of a parameter for layer-wise LR decay: scale = decay ** (num_layers - 1 - depth).

        Matches the official TinyViT finetuning: the patch embedding shares the first block's depth, a stage's
        downsampling shares the depth of the block before it, heads and output norms are at the top.
        """
        num_layers = sum(self.depths)
        if not param_name.startswith(prefix):
            return num_layers - 1, num_layers
        name = param_name[len(prefix):]
        parts = name.split(".")
        if parts[0] == "patch_embed":
            return 0, num_layers
        if parts[0] == "stages":
            stage = int(parts[1])
            first = sum(self.depths[:stage])
            if parts[2] == "downsample":
                return max(first - 1, 0), num_layers
            return first + int(parts[3]), num_layers
        return num_layers - 1, num_layers

    def _freeze_stages(self) -> None:
        frozen: list[nn.Module] = []
        if self.frozen_stages >= 0:
            frozen.append(self.patch_embed)
        for i in range(min(max(self.frozen_stages, 0), len(self.stages))):
            frozen.append(self.stages[i])
            if hasattr(self, f"norm{i}"):
                frozen.append(getattr(self, f"norm{i}"))
        for module in frozen:
            module.eval()
            for p in module.parameters():
                p.requires_grad = False

    def train(self, mode: bool = True) -> "TinyViT":
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self
