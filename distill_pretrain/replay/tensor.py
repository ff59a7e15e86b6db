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

from ..augment import (TEACHER_IMAGE, AugmentConfig, ReplayDataset, _splitmix64, collate_meta, mix_params,
                       numpy_rng, sample_seed, seeded_global_rngs, student_jitter_seed)
from ..data import load_sample
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


def _affine_matrix(name: str, arg: float, w: int, h: int) -> tuple[float, ...]:
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
                ops[slot], args[slot] = kernels.AFFINE, _affine_matrix(base, float(level[0]), w, h)
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
                    offset = _splitmix64(seed ^ _ERASE_SALT ^ (k << 40)) & ((1 << NOISE_BITS) - 1)
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


def _rows(x: torch.Tensor, rows: list[int]) -> torch.Tensor:
    """Rows ``rows`` of ``x`` (a copy)."""
    return x.index_select(0, torch.tensor(rows, device=x.device))


def _set_rows(x: torch.Tensor, rows: list[int], values: torch.Tensor) -> None:
    """``x[rows] = values``: one indexed copy on an accelerator; on the CPU a copy per row (uint8 index_copy_ /
    index_put_ there are ~20× slower than the memory copies)."""
    if x.device.type != "cpu":
        x.index_copy_(0, torch.tensor(rows, device=x.device), values)
        return
    for k, r in enumerate(rows):
        x[r].copy_(values[k])


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
        _NOISE[device] = torch.randn(1 << NOISE_BITS, generator=gen, dtype=torch.float32).to(device)
    return _NOISE[device]


class TensorAugment:
    """The device half of the ``tensor`` pipeline: a collated batch → the batch with final float ``image`` (and
    ``teacher_image`` with a student-only jitter) on ``device`` (``raw`` removed)."""

    def __init__(self, cfg: AugmentConfig | Mapping[str, Any] | None) -> None:
        self.cfg = AugmentConfig.coerce(cfg)
        self.plan = DrawPlan(self.cfg)

    def __call__(self, batch: Mapping[str, Any], device: torch.device | str) -> dict[str, Any]:
        device = torch.device(device)
        raw = batch["raw"]
        x = raw["image"].to(device, non_blocking=True, copy=True)  # the ops below work in place; the batch stays
        flip = raw["flip"].nonzero()[:, 0].tolist()
        if flip:
            _set_rows(x, flip, _rows(x, flip).flip(-1))
        self._ops(x, raw, range(self.plan.shared_slots))
        views = {}
        if self.plan.student_jitter is not None:
            views[TEACHER_IMAGE] = self._float(x.clone(), raw, len(batch["index"]))
            self._ops(x, raw, range(self.plan.shared_slots, self.plan.num_slots))
        views["image"] = self._float(x, raw, len(batch["index"]))
        return {**{k: v for k, v in batch.items() if k != "raw"}, **views}

    def _ops(self, x: torch.Tensor, raw: Mapping[str, torch.Tensor], slots: range) -> None:
        """The pixel ops of ``slots`` in place on the uint8 rows ``x``, each op on the rows that drew it (all rows:
        no gather / scatter)."""
        if not len(slots):
            return
        fill = torch.tensor(self.plan.fill, dtype=torch.uint8, device=x.device)
        ops = raw["ops"][:, slots.start:slots.stop].T.tolist()
        for k, slot in enumerate(slots):
            groups: dict[int, list[int]] = {}
            for r, op in enumerate(ops[k]):
                if op >= 0:
                    groups.setdefault(op, []).append(r)
            for op, rows in groups.items():
                if len(rows) == len(x):
                    x.copy_(kernels.apply(op, x, raw["args"][:, slot].to(x.device), fill))
                    continue
                out = kernels.apply(op, _rows(x, rows), raw["args"][rows, slot].to(x.device), fill)
                _set_rows(x, rows, out)

    def _float(self, x: torch.Tensor, raw: Mapping[str, torch.Tensor], n: int) -> torch.Tensor:
        """uint8 rows → normalized float, erased and mixed: the final images of the ``n`` samples."""
        mean, std = (torch.tensor(v, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
                     for v in (self.cfg.mean, self.cfg.std))
        y = x.to(torch.float32).div_(255).sub_(mean).div_(std)  # ToTensor + Normalize, their very ops
        self._erase(y, raw["erase"], x.device)
        return self._mix(y, raw, n)

    def _erase(self, y: torch.Tensor, erase: torch.Tensor, device: torch.device) -> None:
        """Fill each drawn box (top, left, h, w, noise offset) with noise-table values (timm's modes)."""
        boxes = [(r, box) for r, row in enumerate(erase.tolist()) for box in row if box[2] > 0]  # a few per batch
        if not boxes:
            return
        mode = self.plan.erasing.mode
        c, h, w = y.shape[1:]
        table = noise_table(device)
        where = _positions(c, h if mode == "pixel" else 1, w if mode == "pixel" else 1, device)
        for r, (top, left, bh, bw, off) in boxes:
            box = y[r, :, top:top + bh, left:left + bw]
            if mode == "pixel":
                box.copy_(table[(where[:, top:top + bh, left:left + bw] + off) & ((1 << NOISE_BITS) - 1)])
            elif mode == "rand":
                box.copy_(table[(where + off) & ((1 << NOISE_BITS) - 1)].expand_as(box))
            else:
                box.zero_()

    @staticmethod
    def _mix(y: torch.Tensor, raw: Mapping[str, torch.Tensor], n: int) -> torch.Tensor:
        """Rows 0..n-1 mixed in place with their partner rows (which follow them): x·λ + partner·(1−λ) (Mixup,
        the `pil` pipeline's arithmetic), or the partner's box (CutMix). One or two ops per mixed row: on the
        CPU 2-4× faster than one masked op over all mixed rows (measured), which only an accelerator might prefer."""
        boxes = raw["mix_box"].tolist()
        for r, (p, w1, w2) in enumerate(zip(raw["mix_row"].tolist(), raw["mix_w1"].tolist(), raw["mix_w2"].tolist())):
            if p < 0:
                continue
            y0, y1, x0, x1 = boxes[r]
            if y0 < 0:
                y[r].mul_(w1).add_(y[p] * w2)
            else:
                y[r, :, y0:y1, x0:x1] = y[p, :, y0:y1, x0:x1]
        return y[:n]
