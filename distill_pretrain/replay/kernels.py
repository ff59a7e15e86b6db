"""Batched pixel operations of the tensor replay pipeline, one parameter set per image (row).

Each kernel maps uint8 images ``x`` [R, 3, H, W] and per-row arguments to uint8 images, following the PIL
operation timm applies (``ImageEnhance``, ``ImageOps``, affine transforms); all but the affine ones give PIL's
very pixels (AutoContrast within 1). Every output pixel is a function of its own row only — integer arithmetic,
exact integer reductions (histograms, sums, min/max), look-up tables, elementwise IEEE float operations and
bilinear ``grid_sample`` — so a row's result does not depend on the batch it is in, the batch size or the number
of threads. CPU and CUDA may differ in the last bit of the affine ops (fused multiply-add in CUDA kernels).
"""
from __future__ import annotations

import torch

AUTOCONTRAST, EQUALIZE, INVERT, POSTERIZE, SOLARIZE, SOLARIZE_ADD, COLOR, CONTRAST, BRIGHTNESS, SHARPNESS, AFFINE = \
    range(11)
NUM_ARGS = 6  # the widest argument: an affine matrix (a, b, c, d, e, f)


def _col(v: torch.Tensor) -> torch.Tensor:
    return v.reshape(-1, 1, 1, 1)


def _to_u8_trunc(y: torch.Tensor) -> torch.Tensor:
    """PIL's float → 8-bit store: clip to [0, 255], truncate."""
    return y.clamp_(0.0, 255.0).floor_().to(torch.uint8)


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """PIL's RGB → L (ITU-R 601-2 luma in 16-bit fixed point), int32 [R, 1, H, W]."""
    x = x.to(torch.int32)
    return (x[:, 0:1] * 19595 + x[:, 1:2] * 38470 + x[:, 2:3] * 7471 + 0x8000) >> 16


def blend(degenerate: torch.Tensor, x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """PIL ``Image.blend(degenerate, x, factor)``: degenerate + factor · (x − degenerate), clipped, truncated."""
    d = degenerate.to(torch.float32)
    return _to_u8_trunc((x.to(torch.float32) - d).mul_(_col(factor)).add_(d))


def brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return blend(torch.zeros_like(x), x, factor)


def color(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return blend(grayscale(x).expand_as(x), x, factor)


def contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with the image's mean grey level, int(mean + 0.5), as ImageEnhance.Contrast."""
    g = grayscale(x).to(torch.int64)
    n = g.shape[-1] * g.shape[-2]
    mean = (2 * g.sum((1, 2, 3)) + n) // (2 * n)
    return blend(_col(mean).expand_as(x), x, factor)


def sharpness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with PIL's SMOOTH filter (3×3, weights 1 and 5 in the centre, /13; border pixels unfiltered)."""
    xi = x.to(torch.int32)
    s = xi[:, :, 1:-1, 1:-1] * 4
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            s = s + xi[:, :, dy:dy + xi.shape[2] - 2, dx:dx + xi.shape[3] - 2]
    smooth = xi.clone()
    smooth[:, :, 1:-1, 1:-1] = (s + 6) // 13
    return blend(smooth, x, factor)


def invert(x: torch.Tensor, _: torch.Tensor) -> torch.Tensor:
    return 255 - x


def posterize(x: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    """Keep the ``bits`` most significant bits (8 or more: unchanged)."""
    b = bits.to(torch.int64).clamp(0, 8)
    mask = (255 - ((1 << (8 - b)) - 1)).to(torch.uint8)
    return x & _col(mask)


def solarize(x: torch.Tensor, thresh: torch.Tensor) -> torch.Tensor:
    """Invert every value ≥ ``thresh``."""
    return torch.where(x.to(torch.int32) >= _col(thresh.to(torch.int32)), 255 - x, x)


def solarize_add(x: torch.Tensor, add: torch.Tensor) -> torch.Tensor:
    """Add ``add`` (capped at 255) to every value below 128 (timm's threshold)."""
    xi = x.to(torch.int32)
    return torch.where(xi < 128, (xi + _col(add.to(torch.int32))).clamp_(max=255), xi).to(torch.uint8)


def _lut(x: torch.Tensor, lut: torch.Tensor) -> torch.Tensor:
    """Apply per-row, per-channel look-up tables ``lut`` [R, 3, 256] (int64)."""
    r, c, h, w = x.shape
    return lut.gather(2, x.reshape(r, c, h * w).to(torch.int64)).reshape(r, c, h, w).to(torch.uint8)


def _histogram(x: torch.Tensor) -> torch.Tensor:
    """Per-row, per-channel 256-bin histograms, int64 [R, 3, 256] (exact counts; a scatter-add: CUDA's bincount
    reads the input's range back to the host, a sync)."""
    r, c = x.shape[:2]
    offsets = torch.arange(0, r * c * 256, 256, device=x.device).view(r, c, 1)
    flat = (x.reshape(r, c, -1).to(torch.int64) + offsets).reshape(-1)
    counts = torch.zeros(r * c * 256, dtype=torch.int64, device=x.device)
    return counts.scatter_add_(0, flat, torch.ones_like(flat)).reshape(r, c, 256)


def autocontrast(x: torch.Tensor, _: torch.Tensor) -> torch.Tensor:
    """ImageOps.autocontrast (cutoff 0): stretch each channel's [min, max] to [0, 255] (float64 LUT, truncated)."""
    lo = x.amin((2, 3)).to(torch.float64)[..., None]
    hi = x.amax((2, 3)).to(torch.float64)[..., None]
    scale = 255.0 / (hi - lo).clamp_min(1.0)
    ramp = torch.arange(256, dtype=torch.float64, device=x.device)
    lut = (ramp * scale + (-lo * scale)).clamp_(0.0, 255.0).trunc_().to(torch.int64)
    lut = torch.where(hi > lo, lut, ramp.to(torch.int64))
    return _lut(x, lut)


def equalize(x: torch.Tensor, _: torch.Tensor) -> torch.Tensor:
    """ImageOps.equalize per channel (integer arithmetic, PIL's step rule)."""
    hist = _histogram(x)
    n = hist.sum(-1, keepdim=True)
    top = hist.shape[-1] - 1 - (hist > 0).flip(-1).to(torch.int64).argmax(-1, keepdim=True)
    step = (n - hist.gather(-1, top)) // 255
    before = hist.cumsum(-1) - hist
    lut = (step // 2 + before) // step.clamp_min(1)
    lut = torch.where(step > 0, lut.clamp_(max=255), torch.arange(256, device=x.device))
    return _lut(x, lut)


def affine(x: torch.Tensor, matrix: torch.Tensor, fill: torch.Tensor) -> torch.Tensor:
    """PIL ``Image.transform(AFFINE)`` semantics with bilinear sampling: output pixel centre (x+½, y+½) reads the
    input at (a·x + b·y + c, d·x + e·y + f) (pixel-edge coordinates); sources outside the image take ``fill``,
    taps beyond the edge repeat it (torch's grid_sample, border padding)."""
    r, ch, h, w = x.shape
    m = matrix.to(torch.float32)
    xs = (torch.arange(w, dtype=torch.float32, device=x.device) + 0.5).view(1, 1, w)
    ys = (torch.arange(h, dtype=torch.float32, device=x.device) + 0.5).view(1, h, 1)

    def row(k: int) -> torch.Tensor:
        return m[:, k].view(r, 1, 1)

    u = xs * row(0) + ys * row(1) + row(2)  # [R, H, W] source coordinates, one IEEE operation per torch call
    v = xs * row(3) + ys * row(4) + row(5)
    outside = ((u < 0) | (u >= w) | (v < 0) | (v >= h))[:, None]
    grid = torch.stack((u * (2.0 / w) - 1.0, v * (2.0 / h) - 1.0), dim=-1)  # align_corners=False coordinates
    out = torch.nn.functional.grid_sample(x.to(torch.float32), grid, mode="bilinear", padding_mode="border",
                                          align_corners=False)
    out = out.add_(0.5).clamp_(0.0, 255.0).floor_().to(torch.uint8)
    return torch.where(outside, fill.to(x.device, torch.uint8).view(1, ch, 1, 1), out)


def apply(op: int, x: torch.Tensor, args: torch.Tensor, fill: torch.Tensor) -> torch.Tensor:
    """Kernel ``op`` (a module constant) on rows ``x`` with per-row ``args`` [R, NUM_ARGS] (float64)."""
    if op == AFFINE:
        return affine(x, args, fill)
    return _SIMPLE[op](x, args[:, 0].to(torch.float32))


_SIMPLE = {AUTOCONTRAST: autocontrast, EQUALIZE: equalize, INVERT: invert, POSTERIZE: posterize, SOLARIZE: solarize,
           SOLARIZE_ADD: solarize_add, COLOR: color, CONTRAST: contrast, BRIGHTNESS: brightness, SHARPNESS: sharpness}
