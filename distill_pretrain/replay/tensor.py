"""The ``tensor`` replay pipeline: random parameters drawn on the CPU, pixel operations batched on the device.

Per sample (DataLoader worker, CPU): decode, then draw every random parameter of timm's train transform from the
sample's seed exactly as the ``pil`` pipeline's timm transform draws them (the same global-RNG calls in the same
order under `seeded_global_rngs`, read off the very transform objects `AugmentConfig.build_parts` builds), so a
seed gives the same crop box, flip, RandAugment ops and magnitudes, colour-jitter order and factors, erasing boxes
and Mixup/CutMix partner, λ and box in both pipelines. The random resized crop is applied there (PIL, as timm);
the item carries the uint8 crop and its parameters.

Per batch (`TensorAugment`, on the training / teacher device): flip, RandAugment / colour jitter (`kernels`),
to-float + normalize, random erasing, Mixup/CutMix — each op on the rows that drew it, one parameter set per row.
Differences from ``pil`` (why it is a different pipeline): the affine ops (Rotate, Shear, Translate) sample
bilinearly (PIL: bicubic), AutoContrast may differ by 1, and erasing noise comes from a fixed normal table indexed
by a per-box offset drawn from the seed (timm: torch's normal generator); every other kernel gives PIL's pixels,
so crop / flip / colour-jitter / Mixup / CutMix / constant-erasing configs give the very pixels of ``pil``.
Every op works on a row alone, so a sample's pixels do not depend on the batch, the batch size, the workers or the
processes (on one kind of device). A student-only colour jitter takes four more slots, applied to a copy after the
shared ops: the copy becomes ``image`` (student), the rest ``teacher_image`` (as the ``pil`` pipeline does).
"""
from __future__ import annotations

import functools
import math
import random
from typing import Any, Mapping

import numpy as np
import torch
from torchvision.transforms import ColorJitter, Normalize, RandomHorizontalFlip
from torchvision.transforms import functional as TF

from ..augment import (TEACHER_IMAGE, AugmentConfig, ReplayDataset, collate_meta, mix_params, numpy_rng, sample_seed,
                       seeded_global_rngs, splitmix64, student_jitter_seed)
from ..data import load_sample
from ..dist import to_device
from . import kernels

PIPELINE = "tensor"
NOISE_BITS = 20  # erasing noise table: 2^20 normals
_ERASE_SALT = 0x657261736531  # "erase1"

# timm RandAugment op name (without "Increasing" / "Original") → kernel
_RA_KERNELS = {"AutoContrast": kernels.AUTOCONTRAST, "Equalize": kernels.EQUALIZE, "Invert": kernels.INVERT,
               "Posterize": kernels.POSTERIZE, "Solarize": kernels.SOLARIZE, "SolarizeAdd": kernels.SOLARIZE_ADD,
               "Color": kernels.COLOR, "Contrast": kernels.CONTRAST, "Brightness": kernels.BRIGHTNESS,
               "Sharpness": kernels.SHARPNESS}
_AFFINE_OPS = ("Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY", "TranslateXRel", "TranslateYRel")
_JITTER_KERNELS = (kernels.BRIGHTNESS, kernels.CONTRAST, kernels.COLOR)  # ColorJitter's fn_idx 0, 1, 2


def affine_matrix(name: str, arg: float, w: int, h: int) -> tuple[float, ...]:
    """PIL's inverse affine matrix of a timm geometric op on a w×h image."""
    if name == "Rotate":  # Image.rotate(arg) about the centre, as PIL computes it
        angle = -math.radians(arg)
        a, b = round(math.cos(angle), 15), round(math.sin(angle), 15)
        d, e = round(-math.sin(angle), 15), round(math.cos(angle), 15)
        cx, cy = w / 2.0, h / 2.0
        return a, b, a * -cx + b * -cy + cx, d, e, d * -cx + e * -cy + cy
    if name == "ShearX":
        return 1.0, arg, 0.0, 0.0, 1.0, 0.0
    if name == "ShearY":
        return 1.0, 0.0, 0.0, arg, 1.0, 0.0
    dx = arg * w if name == "TranslateXRel" else arg if name == "TranslateX" else 0.0
    dy = arg * h if name == "TranslateYRel" else arg if name == "TranslateY" else 0.0
    return 1.0, 0.0, dx, 0.0, 1.0, dy


def _resized_crop(img: Any, top: int, left: int, height: int, width: int, size: tuple[int, int],
                  interpolation: Any) -> Any:
    """torchvision's ``resized_crop`` of a PIL image (its very PIL calls), without its per-call checks."""
    img = img.crop((left, top, left + width, top + height))
    if (height, width) == tuple(size):
        return img
    return img.resize((size[1], size[0]), TF.pil_modes_mapping[interpolation])


def _to_uint8(img: Any) -> torch.Tensor:
    """A PIL image → uint8 C×H×W (``pil_to_tensor``; RGB without its per-call checks)."""
    if img.mode != "RGB":
        return TF.pil_to_tensor(img)
    return torch.from_numpy(np.array(img)).permute(2, 0, 1)


class DrawPlan:
    """The random draws of timm's train transform for one `AugmentConfig`, read off its transform objects."""

    def __init__(self, cfg: AugmentConfig) -> None:
        from timm.data.auto_augment import RandAugment
        from timm.data.random_erasing import RandomErasing
        from timm.data.transforms import RandomResizedCropAndInterpolation
        self.cfg = cfg
        self.eval_transform = self.crop = self.randaugment = self.jitter = self.erasing = None
        self.flip_p = 0.0
        self.fill = tuple(min(255, round(255 * m)) for m in cfg.mean)
        self.student_jitter = cfg.student_jitter()
        if cfg.mode == "eval":
            from timm.data.transforms_factory import transforms_imagenet_eval
            self.eval_transform = transforms_imagenet_eval(cfg.img_size, crop_pct=cfg.crop_pct,
                                                           interpolation=cfg.interpolation, normalize=False)
            return
        primary, secondary, final = cfg.build_parts()
        for t in primary + secondary + final:
            if isinstance(t, RandomResizedCropAndInterpolation):
                self.crop = t
            elif isinstance(t, RandomHorizontalFlip):
                self.flip_p = float(t.p)
            elif isinstance(t, RandAugment):
                self.randaugment = t
                self._check_randaugment(t)
            elif isinstance(t, ColorJitter):
                if t.hue is not None:
                    raise ValueError("tensor replay pipeline: colour-jitter hue is not implemented; use pipeline='pil'")
                self.jitter = t
            elif isinstance(t, RandomErasing):
                self.erasing = t
            elif not isinstance(t, Normalize) and type(t).__name__ not in ("MaybeToTensor", "ToTensor"):
                raise ValueError(f"tensor replay pipeline: timm transform {t!r} is not implemented; "
                                 f"use pipeline='pil'")
        if self.crop is None:
            raise ValueError("tensor replay pipeline needs timm's RandomResizedCrop as its first transform")

    @staticmethod
    def _check_randaugment(ra: Any) -> None:
        for op in ra.ops:
            base = op.name.replace("Increasing", "").replace("Original", "")
            if base not in _RA_KERNELS and base not in _AFFINE_OPS:
                raise ValueError(f"tensor replay pipeline: RandAugment op {op.name!r} is not implemented; "
                                 f"use pipeline='pil'")

    @property
    def shared_slots(self) -> int:
        """Pixel-op slots of both views: RandAugment layers, then the four colour-jitter positions."""
        return (self.randaugment.num_layers if self.randaugment else 0) + (4 if self.jitter else 0)

    @property
    def num_slots(self) -> int:
        """All pixel-op slots per sample: the shared ones, then four of the student-only colour jitter."""
        return self.shared_slots + (4 if self.student_jitter else 0)

    @property
    def max_boxes(self) -> int:
        return int(self.erasing.max_count) if self.erasing else 0

    def draw(self, img: Any, seed: int) -> dict[str, Any]:
        """One sample's crop (uint8 3×H×W) and pixel-op parameters under ``seed``."""
        ops = np.full(self.num_slots, -1, np.int64)
        args = np.zeros((self.num_slots, kernels.NUM_ARGS), np.float64)
        boxes = np.zeros((self.max_boxes, 5), np.int64)  # top, left, h, w (0: none), noise offset
        if self.eval_transform is not None:
            return {"image": self.eval_transform(img), "flip": False, "ops": ops, "args": args, "erase": boxes}
        # the same calls, in the same order, as timm's transform under this seed (numpy's: RandAugment's choice)
        with seeded_global_rngs(seed, numpy=False):
            c = self.crop
            i, j, h, w = c.get_params(img, c.scale, c.ratio)
            interp = random.choice(c.interpolation) if isinstance(c.interpolation, (list, tuple)) else c.interpolation
            crop = _to_uint8(_resized_crop(img, i, j, h, w, tuple(c.size), interp))
            flip = bool(torch.rand(1) < self.flip_p) if self.flip_p > 0 else False
            out_h, out_w = crop.shape[-2:]
            slot = 0
            if self.randaugment is not None:
                slot = self._draw_randaugment(ops, args, out_w, out_h, numpy_rng(seed))
            if self.jitter is not None:
                self._draw_jitter(self.jitter, ops, args, slot)
            if self.student_jitter is not None:
                with seeded_global_rngs(student_jitter_seed(seed), numpy=False):
                    self._draw_jitter(self.student_jitter, ops, args, self.shared_slots)
            if self.erasing is not None:
                self._draw_erasing(boxes, out_h, out_w, seed)
        return {"image": crop, "flip": flip, "ops": ops, "args": args, "erase": boxes}

    @staticmethod
    def _draw_jitter(jitter: ColorJitter, ops: np.ndarray, args: np.ndarray, slot: int) -> None:
        """ColorJitter's order and factors into the four slots from ``slot`` (an unused factor: an empty slot)."""
        order, *factors = ColorJitter.get_params(jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue)
        for k, fn in enumerate(order.tolist()):
            if fn < 3 and factors[fn] is not None:
                ops[slot + k], args[slot + k, 0] = _JITTER_KERNELS[fn], factors[fn]

    def _draw_randaugment(self, ops: np.ndarray, args: np.ndarray, w: int, h: int,
                          rng: np.random.RandomState) -> int:
        from timm.data.auto_augment import _LEVEL_DENOM
        ra = self.randaugment
        chosen = rng.choice(len(ra.ops), ra.num_layers, replace=ra.choice_weights is None, p=ra.choice_weights)
        for slot, k in enumerate(chosen):
            op = ra.ops[k]
            if op.prob < 1.0 and random.random() > op.prob:
                continue
            magnitude = op.magnitude
            if op.magnitude_std == float("inf"):
                magnitude = random.uniform(0, magnitude)
            elif op.magnitude_std > 0:
                magnitude = random.gauss(magnitude, op.magnitude_std)
            magnitude = max(0.0, min(magnitude, op.magnitude_max or _LEVEL_DENOM))
            level = op.level_fn(magnitude, op.hparams) if op.level_fn is not None else ()
            base = op.name.replace("Increasing", "").replace("Original", "")
            if base in _AFFINE_OPS:
                ops[slot], args[slot] = kernels.AFFINE, affine_matrix(base, float(level[0]), w, h)
            else:
                ops[slot] = _RA_KERNELS[base]
                args[slot, 0] = float(level[0]) if level else 0.0
        return ra.num_layers

    def _draw_erasing(self, boxes: np.ndarray, img_h: int, img_w: int, seed: int) -> None:
        re = self.erasing
        if random.random() > re.probability:
            return
        count = re.min_count if re.min_count == re.max_count else random.randint(re.min_count, re.max_count)
        area = img_h * img_w
        for k in range(count):
            for _ in range(10):
                target_area = random.uniform(re.min_area, re.max_area) * area / count
                aspect_ratio = math.exp(random.uniform(*re.log_aspect_ratio))
                h = int(round(math.sqrt(target_area * aspect_ratio)))
                w = int(round(math.sqrt(target_area / aspect_ratio)))
                if w < img_w and h < img_h:
                    top, left = random.randint(0, img_h - h), random.randint(0, img_w - w)
                    offset = splitmix64(seed ^ _ERASE_SALT ^ (k << 40)) & ((1 << NOISE_BITS) - 1)
                    boxes[k] = (top, left, h, w, offset)
                    break


class TensorReplayDataset(ReplayDataset):
    """`ReplayDataset` of the ``tensor`` pipeline: items carry uint8 crops + parameters; collate with
    `collate_tensor_replay`, finish each batch on the device with `TensorAugment`."""

    pipeline = PIPELINE

    def _setup(self) -> None:
        self.plan = DrawPlan(self.cfg)

    def _augment(self, index: int, seed: int) -> tuple[dict[str, Any], int, str | None]:
        img, target, error = load_sample(self.dataset, index)
        return self.plan.draw(img, seed), -1 if target is None else int(target), error

    def get(self, index: int, epoch: int) -> dict[str, Any]:
        index = int(index)
        seed = sample_seed(self.base_seed, epoch, index)
        row, label, error = self._augment(index, seed)
        item = {"image": row, "index": index, "seed": seed, "label": label, "mix": None, "error": error,
                "partner": None, "box": None}
        params = mix_params(seed, index, len(self), self.cfg, tuple(row["image"].shape[-2:]))
        if params is not None:
            prow, plabel, perror = self._augment(params.partner, sample_seed(self.base_seed, epoch, params.partner))
            item.update(mix=(params.partner, params.lam, plabel), error=error or perror, partner=prow, box=params.box)
        return item


def collate_tensor_replay(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """Collate `TensorReplayDataset` items: ``raw`` holds the rows (the samples, then their Mixup/CutMix
    partners) for `TensorAugment`; the bookkeeping keys are those of `collate_replay`."""
    rows = [b["image"] for b in batch]
    mix_row, w1, w2, box = [], [], [], []
    for b in batch:
        if b["partner"] is None:
            mix_row.append(-1), w1.append(1.0), w2.append(0.0), box.append((-1, -1, -1, -1))
            continue
        mix_row.append(len(rows))
        rows.append(b["partner"])
        lam = b["mix"][1]
        w1.append(lam), w2.append(1.0 - lam), box.append(b["box"] or (-1, -1, -1, -1))
    raw = {"image": torch.stack([r["image"] for r in rows]),
           "flip": torch.tensor([r["flip"] for r in rows], dtype=torch.bool),
           "ops": torch.from_numpy(np.stack([r["ops"] for r in rows])),
           "args": torch.from_numpy(np.stack([r["args"] for r in rows])),
           "erase": torch.from_numpy(np.stack([r["erase"] for r in rows])),
           "mix_row": torch.tensor(mix_row, dtype=torch.int64),
           "mix_w1": torch.tensor(w1, dtype=torch.float64), "mix_w2": torch.tensor(w2, dtype=torch.float64),
           "mix_box": torch.tensor(box, dtype=torch.int64)}
    return {"raw": raw, **collate_meta(batch)}


@functools.lru_cache(maxsize=8)
def _positions(c: int, h: int, w: int, device: torch.device) -> torch.Tensor:
    """0 … c·h·w − 1 as a c×h×w tensor (the erasing noise's position index), made once per shape and device."""
    return torch.arange(c * h * w, device=device).view(c, h, w)


_NOISE: dict[torch.device, torch.Tensor] = {}


def noise_table(device: torch.device) -> torch.Tensor:
    """2^NOISE_BITS standard normals (float32), the same values on every device (drawn once on the CPU)."""
    device = torch.device(device)
    if device not in _NOISE:
        gen = torch.Generator().manual_seed(0x6E6F697365)  # "noise"
        table = torch.randn(1 << NOISE_BITS, generator=gen, dtype=torch.float32)
        _NOISE[device] = to_device(table, device)
    return _NOISE[device]


class _Params:
    """Small per-batch arrays packed on the host into one int64 buffer (float64 values as their bits) and moved
    to the device in one copy; ``params[name]`` is then a view of the device buffer."""

    def __init__(self) -> None:
        self._parts: list[np.ndarray] = []
        self._fields: dict[str, tuple[int, tuple[int, ...], bool]] = {}
        self._size = 0
        self._buffer = torch.empty(0, dtype=torch.int64)

    def add(self, name: str, value: Any) -> None:
        value = np.asarray(value)
        is_float = value.dtype.kind == "f"
        flat = np.ascontiguousarray(value, np.float64 if is_float else np.int64).reshape(-1)
        self._fields[name] = (self._size, value.shape, is_float)
        self._parts.append(flat.view(np.int64))
        self._size += flat.size

    def __contains__(self, name: str) -> bool:
        return name in self._fields

    def send(self, device: torch.device) -> None:
        host = torch.empty(self._size, dtype=torch.int64, pin_memory=device.type == "cuda")
        np.concatenate(self._parts, out=host.numpy())
        self._buffer = host.to(device, non_blocking=True)

    def __getitem__(self, name: str) -> torch.Tensor:
        start, shape, is_float = self._fields[name]
        value = self._buffer[start:start + math.prod(shape)].view(shape)
        return value.view(torch.float64) if is_float else value


class TensorAugment:
    """The device half of the ``tensor`` pipeline: a collated batch → the batch with final float ``image`` (and
    ``teacher_image`` with a student-only jitter) on ``device`` (``raw`` removed).

    The host reads only the batch's CPU tensors: every index list and parameter goes to the device in one pinned,
    non-blocking copy, so on an accelerator the call queues its kernels without waiting for the device. Flip,
    erasing and Mixup/CutMix run as a few whole-batch ops there; on the CPU, per-row loops (faster there,
    measured; ``row_loops=False``: the whole-batch ops on the CPU too) give the very same pixels.
    """

    def __init__(self, cfg: AugmentConfig | Mapping[str, Any] | None, row_loops: bool = True) -> None:
        self.cfg = AugmentConfig.coerce(cfg)
        self.plan = DrawPlan(self.cfg)
        self.row_loops = row_loops

    def __call__(self, batch: Mapping[str, Any], device: torch.device | str) -> dict[str, Any]:
        device = torch.device(device)
        raw, n = batch["raw"], len(batch["index"])
        params, slot_ops = self._params(raw, n)
        params.send(device)
        loops = self.row_loops and device.type == "cpu"
        x = to_device(raw["image"], device, copy=True)  # the ops below work in place
        if "flip" in params:
            x = self._flip(x, params, loops)
        self._ops(x, params, slot_ops, range(self.plan.shared_slots), loops)
        views = {}
        if self.plan.student_jitter is not None:
            views[TEACHER_IMAGE] = self._float(x.clone(), params, n, loops)
            self._ops(x, params, slot_ops, range(self.plan.shared_slots, self.plan.num_slots), loops)
        views["image"] = self._float(x, params, n, loops)
        return {**{k: v for k, v in batch.items() if k != "raw"}, **views}

    def _params(self, raw: Mapping[str, torch.Tensor], n: int) -> tuple[_Params, list[list[int]]]:
        """Every parameter and index list of the batch's ops, drawn from the CPU copies (see `_Params`), and the
        ops some row drew, per slot."""
        p = _Params()
        p.add("mean", self.cfg.mean), p.add("std", self.cfg.std), p.add("fill", self.plan.fill)
        flip = raw["flip"].numpy()
        if flip.any():
            p.add("flip", flip), p.add("flip_rows", np.flatnonzero(flip))
        ops, args = raw["ops"].numpy(), raw["args"].numpy()
        slot_ops = [np.unique(column[column >= 0]).tolist() for column in ops.T]
        for slot, column in enumerate(ops.T):
            for op in slot_ops[slot]:
                rows = np.flatnonzero(column == op)
                if len(rows) == len(column):
                    p.add(f"args{slot}.{op}", args[:, slot])
                else:
                    p.add(f"rows{slot}.{op}", rows), p.add(f"args{slot}.{op}", args[rows, slot])
        erase = raw["erase"].numpy()
        for k in range(erase.shape[1]):
            rows = np.flatnonzero(erase[:, k, 2] > 0)
            if len(rows):
                p.add(f"erase_rows{k}", rows), p.add(f"erase{k}", erase[rows, k])
        partner = raw["mix_row"].numpy()
        if (partner >= 0).any():
            box = raw["mix_box"].numpy()
            p.add("partner", np.where(partner >= 0, partner, np.arange(n))), p.add("mix_box", box)
            p.add("mix_w1", raw["mix_w1"].numpy()), p.add("mix_w2", raw["mix_w2"].numpy())
            mixup = (partner >= 0) & (box[:, 0] < 0)
            if mixup.any():
                p.add("mixup", mixup)
            if (box[:, 0] >= 0).any():
                p.add("cutmix", [])  # a marker: some row has a CutMix box
        return p, slot_ops

    @staticmethod
    def _flip(x: torch.Tensor, p: _Params, loops: bool) -> torch.Tensor:
        if loops:
            rows = p["flip_rows"]
            _set_rows(x, rows, x.index_select(0, rows).flip(-1), loops)
            return x
        return torch.where(p["flip"].bool().view(-1, 1, 1, 1), x.flip(-1), x)

    @staticmethod
    def _ops(x: torch.Tensor, p: _Params, slot_ops: list[list[int]], slots: range, loops: bool) -> None:
        """The pixel ops of ``slots`` in place on the uint8 rows ``x``, each op (``slot_ops[slot]``) on the rows
        that drew it (all rows: no gather / scatter)."""
        fill = p["fill"].to(torch.uint8)
        for slot in slots:
            for op in slot_ops[slot]:
                args = p[f"args{slot}.{op}"]
                if f"rows{slot}.{op}" not in p:
                    x.copy_(kernels.apply(op, x, args, fill))
                    continue
                rows = p[f"rows{slot}.{op}"]
                _set_rows(x, rows, kernels.apply(op, x.index_select(0, rows), args, fill), loops)

    def _float(self, x: torch.Tensor, p: _Params, n: int, loops: bool) -> torch.Tensor:
        """uint8 rows → normalized float, erased and mixed: the final images of the ``n`` samples."""
        mean, std = (p[k].to(torch.float32).view(1, -1, 1, 1) for k in ("mean", "std"))
        y = x.to(torch.float32).div_(255).sub_(mean).div_(std)  # ToTensor + Normalize, their very ops
        self._erase(y, p, loops)
        if "partner" not in p:
            return y[:n]
        return _mix_rows(y, p, n) if loops else _mix(y, p, n)

    def _erase(self, y: torch.Tensor, p: _Params, loops: bool) -> None:
        """Fill each drawn box (top, left, h, w, noise offset) with noise-table values (timm's modes), box slot
        k = 0, 1, ... in turn (later boxes overwrite earlier ones)."""
        if self.plan.erasing is None:
            return
        mode = self.plan.erasing.mode
        c, h, w = y.shape[1:]
        mask = (1 << NOISE_BITS) - 1
        table = noise_table(y.device)
        where = _positions(c, h if mode == "pixel" else 1, w if mode == "pixel" else 1, y.device)
        for k in range(self.plan.max_boxes):
            if f"erase{k}" not in p:
                continue
            rows, boxes = p[f"erase_rows{k}"], p[f"erase{k}"]
            if loops:
                for r, (top, left, bh, bw, off) in zip(rows.tolist(), boxes.tolist()):  # CPU tensors: no sync
                    box = y[r, :, top:top + bh, left:left + bw]
                    if mode == "pixel":
                        box.copy_(table[(where[:, top:top + bh, left:left + bw] + off) & mask])
                    elif mode == "rand":
                        box.copy_(table[(where + off) & mask].expand_as(box))
                    else:
                        box.zero_()
                continue
            top, left, bh, bw, off = (boxes[:, i].view(-1, 1, 1, 1) for i in range(5))
            inside = _inside(top, top + bh, left, left + bw, h, w)
            fill = table[(where + off) & mask] if mode in ("pixel", "rand") else y.new_zeros(())
            y.index_copy_(0, rows, torch.where(inside, fill, y.index_select(0, rows)))


def _set_rows(x: torch.Tensor, rows: torch.Tensor, values: torch.Tensor, loops: bool) -> None:
    """``x[rows] = values``: one indexed copy, or with ``loops`` (CPU) a copy per row (uint8 index_copy_ /
    index_put_ there are ~20× slower than the memory copies)."""
    if not loops:
        x.index_copy_(0, rows, values)
        return
    for k, r in enumerate(rows.tolist()):
        x[r].copy_(values[k])


def _inside(y0: torch.Tensor, y1: torch.Tensor, x0: torch.Tensor, x1: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Per-row boxes [y0, y1) × [x0, x1) (columns [R, 1, 1, 1]) as masks [R, 1, h, w]."""
    ys = torch.arange(h, device=y0.device).view(1, 1, h, 1)
    xs = torch.arange(w, device=y0.device).view(1, 1, 1, w)
    return (ys >= y0) & (ys < y1) & (xs >= x0) & (xs < x1)


def _mix(y: torch.Tensor, p: _Params, n: int) -> torch.Tensor:
    """Rows 0..n-1 mixed with their partner rows (which follow them), whole-batch ops: x·λ + partner·(1−λ) (Mixup)
    or the partner's box (CutMix); rows without a partner stay as they are. The float32 arithmetic of
    `_mix_rows` (a Python-float factor is applied as float32)."""
    y0, y1, x0, x1 = (p["mix_box"][:, i].view(-1, 1, 1, 1) for i in range(4))
    out, other = y[:n], y.index_select(0, p["partner"])
    w1, w2 = (p[k].to(torch.float32).view(-1, 1, 1, 1) for k in ("mix_w1", "mix_w2"))
    if "mixup" in p:
        out = torch.where(p["mixup"].bool().view(-1, 1, 1, 1), out * w1 + other * w2, out)
    if "cutmix" in p:
        out = torch.where(_inside(y0, y1, x0, x1, *y.shape[2:]), other, out)
    return out


def _mix_rows(y: torch.Tensor, p: _Params, n: int) -> torch.Tensor:
    """`_mix` with one or two ops per mixed row (CPU tensors): the `pil` pipeline's arithmetic."""
    for r, (q, w1, w2, (y0, y1, x0, x1)) in enumerate(zip(p["partner"].tolist(), p["mix_w1"].tolist(),
                                                           p["mix_w2"].tolist(), p["mix_box"].tolist())):
        if q == r:
            continue
        if y0 < 0:
            y[r].mul_(w1).add_(y[q] * w2)
        else:
            y[r, :, y0:y1, x0:x1] = y[q, :, y0:y1, x0:x1]
    return y[:n]

