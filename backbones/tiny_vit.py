"""TinyViT (Wu et al., ECCV 2022) as an MMEngine backbone with timm's interface: one model, one forward path.

- classification mode (`out_indices=None`): `forward_features` / `forward_head(pre_logits=...)` / `forward`, the
  names timm uses, for distillation and probes;
- backbone mode (`out_indices` set): `forward` returns the stage outputs at strides 4/8/16/32 (NCHW, channels =
  the stage dims, an optional LayerNorm each), as mmdet/mmseg necks expect: `forward_intermediates` of those stages.

The forward is the paper's math, the same in training and at inference, in public PyTorch ops only: channels-last
convolutions, NHWC attention stages whose LayerNorm, qkv and output projection run on the whole map (zero-padded to
whole windows), attention as plain matmuls inside each window with the learned bias per (head, relative offset), the
residuals added in place. On the CPU these are the ops the model shipped before issue 30 trained with, bit for bit
(forward, gradients, BatchNorm statistics). Every stage is a module with its own `forward`
(hooks on `stages.i` fire); the classifier scripts with `torch.jit.script`, and a `torch.fx` trace gives the eager
output bit for bit. Nothing is cached: the attention bias is gathered from the live table on every call, so
`load_state_dict`, `.to()` or an optimizer step are seen at once. Inference kernels (BatchNorm folded, SDPA on windows,
fused epilogues) are an explicit step, `backbones.inference.optimize`; `ConvNorm.fuse()` is timm's.

Parameter names equal timm's `tiny_vit_*` names, so timm weights load as they are; `backbones.load_pretrained` maps
the official and mmpretrain layouts onto them. Registered as `type='TinyViT'` in MMEngine's MODELS and, through
`timm.models.build_model_with_cfg`, as `tinyvit_bench_{5m,11m,21m}_224` / `tinyvit_bench_21m_{384,512}` in timm's
registry (`timm.create_model`, `features_only=True`; no pretrained weights registered, nothing downloads).
"""

import contextlib
from functools import partial
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from mmengine.model import BaseModule
from mmengine.registry import MODELS
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import DropPath, LayerNorm2d, NormMlpClassifierHead, calculate_drop_path_rates
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from torch import nn

from .checkpoint import CHECKPOINT_FORMAT, LoadReport, load_pretrained, read_checkpoint

__all__ = ["TinyViT", "ARCH_SETTINGS", "NUM_STAGES", "default_window_sizes", "resolve_arch", "build_from_checkpoint",
           "resize_attention_biases", "pad_to_windows", "crop_like", "window_attention"]

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


class ConvNorm(nn.Module):
    """Conv2d (no bias) + BatchNorm2d. `fuse()` returns the one conv that equals it at inference."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 1, stride: int = 1, padding: int = 0,
                 groups: int = 1, bn_weight_init: float = 1.0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_chs, out_chs, kernel_size, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_chs)
        nn.init.constant_(self.bn.weight, bn_weight_init)
        nn.init.zeros_(self.bn.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))

    @torch.no_grad()
    def fuse(self) -> nn.Conv2d:
        """A new Conv2d with the BatchNorm's running statistics and affine folded into its weight and bias (timm's
        `ConvNorm.fuse()`; a copy: later changes to this module's weights do not reach it). Draws nothing from the
        global RNG (`skip_init`), so fusing during a run, e.g. for an evaluation, leaves its random stream as it was."""
        c, bn = self.conv, self.bn
        scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
        fused = torch.nn.utils.skip_init(nn.Conv2d, c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding,
                                         c.dilation, c.groups, bias=True, device=c.weight.device, dtype=c.weight.dtype)
        fused.weight.copy_(c.weight * scale[:, None, None, None])
        fused.bias.copy_(bn.bias - bn.running_mean * scale)
        return fused


class PatchEmbed(nn.Module):
    """Two stride-2 3×3 ConvNorms (stride 4 in all)."""

    def __init__(self, in_chs: int, out_chs: int) -> None:
        super().__init__()
        self.conv1 = ConvNorm(in_chs, out_chs // 2, 3, 2, 1)
        self.act = nn.GELU()
        self.conv2 = ConvNorm(out_chs // 2, out_chs, 3, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.act(self.conv1(x)))


def _drop_path(p: float) -> nn.Module:
    return DropPath(p) if p > 0 else nn.Identity()


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
        self.drop_path = _drop_path(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act2(self.conv2(self.act1(self.conv1(x))))
        return self.act3(self.drop_path(self.conv3(y)).add_(x))  # in place into the fresh branch output


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
        return self.conv3(self.act2(self.conv2(self.act1(self.conv1(x)))))


def attention_bias_index(window_size: int) -> torch.Tensor:
    """(N, N) index into a (heads, ws²) bias table: offset (|Δrow|, |Δcol|) → |Δrow|·ws + |Δcol| (LeViT's
    order)."""
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


# Shape arithmetic in Python ints: `torch.fx.wrap` keeps these calls whole in a traced graph.
@torch.fx.wrap
def pad_to_windows(x: torch.Tensor, window_size: int) -> torch.Tensor:
    """Zero-pad an NHWC map at the bottom/right to whole windows (unmasked, as the paper's code and timm do)."""
    ws = window_size
    pad_b, pad_r = (ws - x.shape[1] % ws) % ws, (ws - x.shape[2] % ws) % ws
    return F.pad(x, (0, 0, 0, pad_r, 0, pad_b)) if pad_b > 0 or pad_r > 0 else x


@torch.fx.wrap
def crop_like(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """`x[:, :H, :W]` for the H, W of `ref` (a view; no-op without padding)."""
    return x if x.shape[1:3] == ref.shape[1:3] else x[:, :ref.shape[1], :ref.shape[2]]


@torch.fx.wrap
def window_attention(qkv: torch.Tensor, bias: torch.Tensor, num_heads: int, window_size: int) -> torch.Tensor:
    """Attention as plain matmuls inside each window of an NHWC qkv map (B, H, W, 3C), H and W whole windows;
    returns (B, H, W, C) before the output projection.

    The window partition and the split into heads are one copy (`reshape` of a permuted view), the window reverse
    and the head merge another, instead of one copy each for partition, q, k, v, heads and reverse. The qkv
    channel order is timm's and the paper's code's: (head, q|k|v, head_dim).
    """
    b, h, w, c3 = qkv.shape
    ws, c = window_size, c3 // 3
    nh, nw, hd = h // ws, w // ws, c // num_heads
    q, k, v = qkv.view(b, nh, ws, nw, ws, num_heads, 3, hd).permute(6, 0, 1, 3, 5, 2, 4, 7).reshape(
        3, b * nh * nw, num_heads, ws * ws, hd).unbind(0)
    attn = (q * hd ** -0.5) @ k.transpose(-2, -1)
    x = attn.add_(bias.to(q.dtype)).softmax(dim=-1) @ v  # in place: no second (windows, heads, N, N) buffer
    return x.view(b, nh, nw, num_heads, ws, ws, hd).permute(0, 1, 4, 2, 5, 3, 6).reshape(b, h, w, c)


class Attention(nn.Module):
    """Window multi-head self-attention on an NHWC map (B, H, W, C) → (B, H, W, C), any size: LayerNorm, qkv and
    the output projection on the whole map (zero-padded to whole windows, then cropped), attention inside each
    window with a learned bias per (head, relative offset)."""

    def __init__(self, dim: int, num_heads: int, window_size: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.window_size = window_size
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, window_size * window_size))
        self.register_buffer("attention_bias_idxs", attention_bias_index(window_size), persistent=False)

    def attention_bias(self) -> torch.Tensor:
        """(heads, N, N) bias, gathered from the live table on every call (a cached copy is what goes stale in the
        official code and timm); `index_select` on the flat index is ~20× faster on CPU than advanced indexing."""
        n = self.window_size * self.window_size
        return self.attention_biases.index_select(1, self.attention_bias_idxs.view(-1)).view(self.num_heads, n, n)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ws = self.window_size
        qkv = self.qkv(self.norm(pad_to_windows(x, ws)))
        return self.proj(crop_like(window_attention(qkv, self.attention_bias(), self.num_heads, ws), x))

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
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.drop1 = nn.Dropout(drop)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop2 = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop2(self.fc2(self.drop1(self.act(self.fc1(self.norm(x))))))


class TinyViTBlock(nn.Module):
    """Window attention (+residual) → 3×3 depth-wise ConvNorm → MLP (+residual), on NHWC maps of any size."""

    def __init__(self, dim: int, num_heads: int, window_size: int, mlp_ratio: float, drop_path: float,
                 drop: float = 0.0) -> None:
        super().__init__()
        self.attn = Attention(dim, num_heads, window_size)
        self.drop_path1 = _drop_path(drop_path)
        self.local_conv = ConvNorm(dim, dim, 3, 1, 1, groups=dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)
        self.drop_path2 = _drop_path(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop_path1(self.attn(x)).add_(x)  # residuals in place into the fresh branch outputs
        x = self.local_conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)  # NHWC is channels-last NCHW: no copy
        return self.drop_path2(self.mlp(x)).add_(x)


class Stage(nn.Module):
    """A stage's `blocks`, each under gradient checkpointing while training if `grad_checkpointing` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.grad_checkpointing = False

    def run_blocks(self, x: torch.Tensor) -> torch.Tensor:
        if self.grad_checkpointing and self.training:
            return self.checkpointed_blocks(x)
        return self.blocks(x)

    @torch.jit.unused
    def checkpointed_blocks(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = torch.utils.checkpoint.checkpoint(block, x, use_reentrant=False)
        return x


class ConvStage(Stage):
    """Stage 0: MBConv blocks at stride 4 (NCHW in and out)."""

    def __init__(self, dim: int, depth: int, expand_ratio: float, drop_paths: Sequence[float]) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*[MBConv(dim, expand_ratio, drop_paths[i]) for i in range(depth)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run_blocks(x)


class TinyViTStage(Stage):
    """Stages 1-3: PatchMerging (stride 2) then TinyViT blocks; NCHW in and out (channels-last memory), NHWC inside."""

    def __init__(self, dim: int, out_dim: int, depth: int, num_heads: int, window_size: int, mlp_ratio: float,
                 drop_paths: Sequence[float], drop: float) -> None:
        super().__init__()
        self.downsample = PatchMerging(dim, out_dim)
        self.blocks = nn.Sequential(*[
            TinyViTBlock(out_dim, num_heads, window_size, mlp_ratio, drop_paths[i], drop) for i in range(depth)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run_blocks(self.downsample(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


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
def checked_input(x: torch.Tensor, in_channels: int) -> torch.Tensor:
    """`x` if it is a (B, in_channels, H, W) batch, else a ValueError naming both shapes."""
    if x.dim() != 4 or x.shape[1] != in_channels:
        raise ValueError(f"TinyViT expects (B, {in_channels}, H, W) input, got shape {list(x.shape)}")
    return x


def _classifier(num_features: int, num_classes: int, global_pool: str, drop_rate: float) -> NormMlpClassifierHead:
    """timm's head for TinyViT: global pool → LayerNorm → (dropout) → Linear (Identity for 0 classes)."""
    return NormMlpClassifierHead(num_features, num_classes, pool_type=global_pool, drop_rate=drop_rate,
                                 norm_layer=partial(LayerNorm2d, eps=1e-5))


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
        global_pool: timm's pooling of the head: 'avg', or '' for none (the head then keeps the map).
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

    __jit_unused_properties__ = ["with_cp", "in_chans", "out_channels", "is_init"]  # not for TorchScript

    def __init__(self, arch: str | dict[str, Any] = "5m", img_size: int = 224,
                 window_sizes: Sequence[int] | None = None, in_channels: int = 3, num_classes: int | None = None,
                 global_pool: str = "avg", out_indices: Sequence[int] | None = None, out_norm: bool = True,
                 frozen_stages: int = -1, norm_eval: bool = False, with_cp: bool = False,
                 drop_path_rate: float = 0.0, drop_rate: float = 0.0,
                 init_cfg: dict | list[dict] | None = None) -> None:
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
        self.num_features = self.head_hidden_size = self.embed_dims[-1]
        self.feature_info = [dict(num_chs=d, reduction=4 * 2 ** i, module=f"stages.{i}")
                             for i, d in enumerate(self.embed_dims)]

        drop_paths = calculate_drop_path_rates(drop_path_rate, sum(self.depths))  # on the CPU under any device
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
        self.head = _classifier(self.num_features, num_classes, global_pool, drop_rate) if has_head else None
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
            load_pretrained(self, cfg["checkpoint"], prefix=cfg.get("prefix"),
                            allow_pickle=bool(cfg.get("allow_pickle", False)))
            self._is_init = True
            return
        super().init_weights()

    # -------------------------------------------------------------------------------------------- forward
    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.patch_embed(checked_input(x, self.in_channels).contiguous(memory_format=torch.channels_last))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Last stage's feature map, (B, num_features, H/32, W/32)."""
        return self.stages(self._stem(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool → norm → (pre_logits: return) → classifier."""
        if self.head is None:
            raise RuntimeError("this TinyViT was built as a backbone without a head (out_indices set, num_classes=0)")
        return self.head(x, pre_logits=pre_logits)

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
        last = max_index if stop_early else len(self.stages) - 1
        x = self._stem(x)
        intermediates = []
        for i, stage in enumerate(self.stages[:last + 1]):
            x = stage(x)
            if i in take:
                out_norm = getattr(self, f"norm{i}", None) if norm else None
                intermediates.append(out_norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2) if out_norm else x)
        return intermediates if intermediates_only else (x, intermediates)

    def forward(self, x: torch.Tensor):  # noqa: ANN201 - a Tensor (classifier) or a tuple (backbone): TorchScript
        # types the classifier's branch only (`out_indices` is None there), so the annotation stays off
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
    def in_chans(self) -> int:
        """timm's name for `in_channels`."""
        return self.in_channels

    @property
    def with_cp(self) -> bool:
        return self.grad_checkpointing

    @with_cp.setter
    def with_cp(self, enable: bool) -> None:
        self.set_grad_checkpointing(enable)

    @torch.jit.ignore
    def prune_intermediate_layers(self, indices: int | Sequence[int] = 1, prune_norm: bool = False,
                                  prune_head: bool = True) -> list[int]:
        """Drop the stages after the last of `indices` (timm's semantics); returns the absolute indices.

        With `prune_head`, or when stages were cut, the head keeps neither pooling, norm nor classifier (timm's
        `reset_classifier(0, '', reset_other=True)`: `forward_head` returns the map) and `num_features` becomes the
        last kept stage's channels. Output norms of dropped stages go; with `prune_norm` all of them. In backbone
        mode `out_indices` keeps the surviving stages.
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
            self.num_features = self.head_hidden_size = self.feature_info[max_index]["num_chs"]
        if (prune_head or prune_end) and self.head is not None:
            self.head.reset(0, pool_type="", reset_other=True, in_features=self.num_features)
            self.num_classes = 0
        return take

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head.fc if self.head is not None else nn.Identity()

    @torch.jit.ignore
    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """Replace the classifier, newly initialised (keeps the head norm); 0 → the pooled features;
        `global_pool` '' keeps the map (timm's head then classifies with a 1×1 conv)."""
        self.num_classes = num_classes
        if self.head is None:
            weight = next(self.parameters())
            head = _classifier(self.num_features, num_classes, "avg" if global_pool is None else global_pool, 0.0)
            self.head = head.apply(self._init_module).to(weight.device, weight.dtype).train(self.training)
        else:
            self.head.reset(num_classes, pool_type=global_pool)
            self.head.fc.apply(self._init_module)
        self.head_hidden_size = self.head.num_features

    @torch.jit.ignore
    def no_weight_decay_keywords(self) -> set[str]:
        return {"attention_biases"}

    # ------------------------------------------------------------------------ MMEngine-style conventions
    @property
    def out_channels(self) -> tuple[int, ...]:
        """Channels of the returned outputs (backbone mode)."""
        return tuple(self.embed_dims[i] for i in (self.out_indices or (NUM_STAGES - 1,)))

    @torch.jit.ignore
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

    @torch.jit.ignore
    def train(self, mode: bool = True) -> "TinyViT":
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self


def build_from_checkpoint(checkpoint: str | Path | Mapping[str, Any], *, allow_pickle: bool = False,
                          strict: bool = True, allow_keys: Sequence[str] = (), prefix: str | None = None,
                          **overrides: Any) -> tuple[TinyViT, LoadReport]:
    """A TinyViT built as the checkpoint describes, then loaded: `(model, report)`.

    Our format records arch, img_size and window_sizes in its metadata, so a student trained at 64 px with
    custom windows comes back exactly as trained; other formats need `arch=` (and optionally img_size /
    window_sizes) in `overrides`, which also replace metadata values (e.g. `out_indices`, `num_classes`).
    `strict` / `allow_keys` / `prefix` as in `load_pretrained`.
    """
    obj = read_checkpoint(checkpoint, allow_pickle) if isinstance(checkpoint, (str, Path)) else checkpoint
    meta = obj.get("meta", {}) if obj.get("format") == CHECKPOINT_FORMAT else {}
    kwargs = {k: meta[k] for k in ("arch", "img_size", "window_sizes") if meta.get(k) is not None}
    kwargs.update(overrides)
    if "arch" not in kwargs:
        raise ValueError(f"{checkpoint if isinstance(checkpoint, (str, Path)) else 'state dict'}: no 'arch' in the "
                         f"checkpoint metadata; pass arch='5m'|'11m'|'21m'")
    if isinstance(kwargs.get("window_sizes"), list):
        kwargs["window_sizes"] = tuple(kwargs["window_sizes"])
    model = TinyViT(**kwargs)
    label = str(checkpoint) if isinstance(checkpoint, (str, Path)) else None
    report = load_pretrained(model, obj, prefix=prefix, strict=strict, allow_keys=allow_keys, label=label)
    return model, report


# ------------------------------------------------------------------ timm's registry (`timm.create_model`)
def _cfg(**kwargs: Any) -> dict[str, Any]:
    return {"url": "", "num_classes": 1000, "input_size": (3, 224, 224), "pool_size": (7, 7), "crop_pct": 0.95,
            "interpolation": "bicubic", "mean": IMAGENET_DEFAULT_MEAN, "std": IMAGENET_DEFAULT_STD,
            "first_conv": "patch_embed.conv1.conv", "classifier": "head.fc", **kwargs}


# timm's name for a model file's pretrained configs; these carry no weights (nothing can download)
default_cfgs = generate_default_cfgs({
    "tinyvit_bench_5m_224": _cfg(),
    "tinyvit_bench_11m_224": _cfg(),
    "tinyvit_bench_21m_224": _cfg(),
    "tinyvit_bench_21m_384": _cfg(input_size=(3, 384, 384), pool_size=(12, 12), crop_pct=1.0),
    "tinyvit_bench_21m_512": _cfg(input_size=(3, 512, 512), pool_size=(16, 16), crop_pct=1.0, crop_mode="squash"),
})


def _from_timm_kwargs(in_chans: int = 3, device: str | torch.device | None = None, dtype: torch.dtype | None = None,
                      **kwargs: Any) -> TinyViT:
    """TinyViT from the keyword arguments timm passes: `in_chans` is our `in_channels`; `device` and `dtype` are
    where and in which dtype its tensors are made (e.g. 'meta': none is allocated)."""
    with torch.device(device) if device is not None else contextlib.nullcontext():
        model = TinyViT(in_channels=in_chans, **kwargs)
    return model if dtype is None else model.to(dtype)


def _create_for_timm(variant: str, pretrained: bool, drop_path_rate: float, **kwargs: Any) -> TinyViT:
    """As timm builds its `tiny_vit_*`: `build_model_with_cfg`, features at the four stages, timm's drop-path
    defaults; `arch` and the window sizes from the name (`img_size=` picks other windows)."""
    if pretrained:
        raise ValueError(f"{variant}: no pretrained weights are registered with timm (nothing downloads); build it "
                         f"with pretrained=False and load a file with backbones.load_pretrained")
    _, _, arch, size = variant.split("_")
    kwargs.setdefault("img_size", int(size))
    kwargs.setdefault("drop_path_rate", drop_path_rate)
    out_indices = kwargs.pop("out_indices", (0, 1, 2, 3))
    return build_model_with_cfg(_from_timm_kwargs, variant, pretrained, arch=arch,
                                feature_cfg=dict(flatten_sequential=True, out_indices=out_indices), **kwargs)


@register_model
def tinyvit_bench_5m_224(pretrained: bool = False, **kwargs: Any) -> TinyViT:
    """TinyViT-5M, windows 7/7/14/7."""
    return _create_for_timm("tinyvit_bench_5m_224", pretrained, 0.0, **kwargs)


@register_model
def tinyvit_bench_11m_224(pretrained: bool = False, **kwargs: Any) -> TinyViT:
    """TinyViT-11M, windows 7/7/14/7."""
    return _create_for_timm("tinyvit_bench_11m_224", pretrained, 0.1, **kwargs)


@register_model
def tinyvit_bench_21m_224(pretrained: bool = False, **kwargs: Any) -> TinyViT:
    """TinyViT-21M, windows 7/7/14/7."""
    return _create_for_timm("tinyvit_bench_21m_224", pretrained, 0.2, **kwargs)


@register_model
def tinyvit_bench_21m_384(pretrained: bool = False, **kwargs: Any) -> TinyViT:
    """TinyViT-21M at 384, windows 12/12/24/12."""
    return _create_for_timm("tinyvit_bench_21m_384", pretrained, 0.1, **kwargs)


@register_model
def tinyvit_bench_21m_512(pretrained: bool = False, **kwargs: Any) -> TinyViT:
    """TinyViT-21M at 512, windows 16/16/32/16."""
    return _create_for_timm("tinyvit_bench_21m_512", pretrained, 0.1, **kwargs)
