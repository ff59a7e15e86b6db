"""Seed-encoded augmentation with exact replay (paper §3.1 "data augmentation encoding").

Every sample's augmentation is a pure function of one uint32 seed, and the seed is a pure function of
(base seed, epoch, dataset index) — so it does not depend on world size, workers, batch size or which epochs a
machine saved (the official implementation's seeds do, Cream #109). timm / torchvision transforms are reused as
they are: their randomness (python `random`, numpy's and torch's global generators) is seeded from the record
seed around each call and restored afterwards, so no global RNG state leaks in or out.

Mixup / CutMix are done per sample: the partner index, whether to mix, Mixup-vs-CutMix, λ and the CutMix box are
drawn from the sample's own seed; the partner image is the partner's own augmentation of the same epoch.

Student-only colour jitter (``student_color_jitter``, TinyMIM supp. Tab. 1): a sample then has two views. The
teacher's (``teacher_image``) is the augmentation without it — the very pixels the same seed gives with the option
off; the student's (``image``) is that view with torchvision's ColorJitter(b = c = s = value) applied after the
crop, flip and any shared colour op, its factors drawn from a seed derived from the sample's. Erasing and
Mixup/CutMix are the same for both views (same boxes, same partner, each mixed with the partner's same view).
"""
from __future__ import annotations

import contextlib
import dataclasses
import random
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

import numpy as np
import torch
from torch.utils.data import Dataset

from .data import load_sample
from .store import config_hash

PIPELINE = "pil"  # this module's replay pipeline, as a store's manifest names it
_MASK64 = (1 << 64) - 1
_MIX_SALT = 0x6D69785F73616C74  # "mix_salt"
_STUDENT_JITTER_SALT = 0x73747564656E74  # "student"
TEACHER_IMAGE = "teacher_image"  # the batch key of the teacher's view (present only with student_color_jitter)


def splitmix64(x: int) -> int:
    """SplitMix64's output function of a 64-bit state: the mixer every per-sample seed is derived with."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def sample_seed(base_seed: int, epoch: int, index: int) -> int:
    """The uint32 augmentation seed of dataset sample ``index`` at ``epoch`` (a pure function)."""
    h = splitmix64(int(base_seed) & _MASK64)
    h = splitmix64(h ^ (int(epoch) & _MASK64))
    h = splitmix64(h ^ (int(index) & _MASK64))
    return h >> 32


def sample_seeds(base_seed: int, epoch: int, indices: np.ndarray) -> np.ndarray:
    """Vectorized `sample_seed` over an array of indices (uint32)."""
    with np.errstate(over="ignore"):
        def mix(x: np.ndarray) -> np.ndarray:
            x = x + np.uint64(0x9E3779B97F4A7C15)
            x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            return x ^ (x >> np.uint64(31))
        h = np.uint64(splitmix64(splitmix64(int(base_seed) & _MASK64) ^ (int(epoch) & _MASK64)))
        out = mix(h ^ np.asarray(indices, dtype=np.int64).astype(np.uint64))
    return (out >> np.uint64(32)).astype(np.uint32)


@contextlib.contextmanager
def preserved_global_rngs(numpy: bool = True) -> Iterator[None]:
    """Restore python `random`, numpy's (unless not ``numpy``) and torch's (CPU) global generators after a block."""
    py_state, torch_state = random.getstate(), torch.get_rng_state()
    np_state = np.random.get_state() if numpy else None  # ~0.1 ms: the costliest part
    try:
        yield
    finally:
        random.setstate(py_state)
        if numpy:
            np.random.set_state(np_state)
        torch.set_rng_state(torch_state)


@contextlib.contextmanager
def seeded_global_rngs(seed: int, numpy: bool = True) -> Iterator[None]:
    """Seed python `random`, numpy's and torch's (CPU) global generators for a block; restore them after.
    ``numpy=False`` leaves numpy's alone (for code that draws from its own `numpy_rng`)."""
    with preserved_global_rngs(numpy):
        random.seed(seed)
        if numpy:
            np.random.seed(seed & 0xFFFFFFFF)
        torch.default_generator.manual_seed(seed)  # torch.manual_seed also seeds every accelerator (slow)
        yield


_NUMPY_RNG = np.random.RandomState()


def numpy_rng(seed: int) -> np.random.RandomState:
    """A numpy generator in the state ``np.random.seed(seed)`` puts the global one in (the same draws), without
    saving and restoring the global's state; one shared instance, reseeded on every call."""
    _NUMPY_RNG.seed(seed & 0xFFFFFFFF)
    return _NUMPY_RNG


def student_jitter_seed(seed: int) -> int:
    """The seed the student-only colour jitter of a sample draws its factors from (derived from its own)."""
    return splitmix64(seed ^ _STUDENT_JITTER_SALT) >> 32


@dataclass
class AugmentConfig:
    """The augmentation of one sample (timm names). ``mode='eval'`` gives resize + centre crop, no randomness."""

    img_size: int = 224
    mode: str = "train"
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip: float = 0.5
    color_jitter: float | None = 0.4
    auto_augment: str | None = "rand-m9-mstd0.5-inc1"
    interpolation: str = "bicubic"
    re_prob: float = 0.25
    re_mode: str = "pixel"
    re_count: int = 1
    mixup_alpha: float = 0.8
    cutmix_alpha: float = 1.0
    mix_prob: float = 1.0
    switch_prob: float = 0.5
    crop_pct: float = 0.875
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    student_color_jitter: float | None = None  # jitter the student's view only (train mode); see the module doc

    def __post_init__(self) -> None:
        if self.mode not in ("train", "eval"):
            raise ValueError(f"AugmentConfig.mode must be 'train' or 'eval', got {self.mode!r}")
        if self.student_color_jitter is not None and not float(self.student_color_jitter) > 0:
            raise ValueError(f"AugmentConfig.student_color_jitter must be None or > 0, got "
                             f"{self.student_color_jitter!r}")
        for name in ("scale", "ratio", "mean", "std"):
            setattr(self, name, tuple(float(v) for v in getattr(self, name)))

    @classmethod
    def coerce(cls, cfg: "AugmentConfig | Mapping[str, Any] | None") -> "AugmentConfig":
        """Accept an AugmentConfig, a dict (unknown keys are an error naming them) or None (defaults)."""
        if isinstance(cfg, cls):
            return cfg
        cfg = dict(cfg or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise ValueError(f"unknown augmentation option(s) {unknown}; known: {sorted(known)}")
        return cls(**cfg)

    def to_dict(self) -> dict[str, Any]:
        """Plain types; ``student_color_jitter`` only when set, so stores saved before it existed keep their hash."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
                if k != "student_color_jitter" or v is not None}

    def hash(self) -> str:
        """Stable sha256 of the configuration (what the store's manifest records as transform_hash)."""
        return config_hash(self.to_dict())

    @property
    def mixes(self) -> bool:
        return self.mode == "train" and self.mix_prob > 0 and (self.mixup_alpha > 0 or self.cutmix_alpha > 0)

    def student_jitter(self):
        """torchvision's ColorJitter of the student's view, or None (option off, or eval mode: no randomness)."""
        if self.mode != "train" or not self.student_color_jitter:
            return None
        from torchvision.transforms import ColorJitter
        value = float(self.student_color_jitter)
        return ColorJitter(value, value, value)

    def build_parts(self) -> tuple[list, list, list]:
        """timm's train transform in its three parts: primary (crop, flip), secondary (RandAugment or colour jitter),
        final (to tensor, normalize, random erasing). The tensor pipeline reads its random draws from them."""
        from timm.data.transforms_factory import transforms_imagenet_train
        parts = transforms_imagenet_train(
            self.img_size, scale=self.scale, ratio=self.ratio, hflip=self.hflip,
            color_jitter=self.color_jitter or 0.0, auto_augment=self.auto_augment, interpolation=self.interpolation,
            re_prob=self.re_prob, re_mode=self.re_mode, re_count=self.re_count, mean=self.mean, std=self.std,
            separate=True)
        return tuple(list(p.transforms) for p in parts)

    def build_transform(self):
        """The per-image timm transform (PIL image → normalized float tensor C×H×W)."""
        from timm.data import create_transform
        from torchvision import transforms
        if self.mode == "eval":
            return create_transform(self.img_size, is_training=False, interpolation=self.interpolation,
                                    crop_pct=self.crop_pct, mean=self.mean, std=self.std)
        primary, secondary, final = self.build_parts()
        return transforms.Compose(primary + secondary + final)


@dataclass
class MixParams:
    """What a sample is mixed with: the partner, λ (weight of the sample itself) and the CutMix box if any."""

    partner: int
    lam: float
    box: tuple[int, int, int, int] | None = field(default=None)  # (y0, y1, x0, x1)


def mix_params(seed: int, index: int, length: int, cfg: AugmentConfig, hw: tuple[int, int]) -> MixParams | None:
    """Mixup/CutMix decision for one sample, a pure function of its seed (timm's semantics per sample)."""
    if not cfg.mixes or length < 2:
        return None
    from timm.data.mixup import cutmix_bbox_and_lam
    with seeded_global_rngs(splitmix64(seed ^ _MIX_SALT) >> 32):
        if np.random.rand() >= cfg.mix_prob:
            return None
        partner = int(np.random.randint(length - 1))
        partner += partner >= index
        use_cutmix = cfg.cutmix_alpha > 0 and (cfg.mixup_alpha <= 0 or np.random.rand() < cfg.switch_prob)
        if use_cutmix:
            lam = float(np.random.beta(cfg.cutmix_alpha, cfg.cutmix_alpha))
            (y0, y1, x0, x1), lam = cutmix_bbox_and_lam(hw, lam, correct_lam=True)
            return MixParams(partner, float(lam), (int(y0), int(y1), int(x0), int(x1)))
        return MixParams(partner, float(np.random.beta(cfg.mixup_alpha, cfg.mixup_alpha)))


def _label_of(target: Any) -> int:
    return -1 if target is None else int(target)


class ReplayDataset(Dataset):
    """Wraps a dataset of (PIL image, label) and returns the seeded augmentation of (epoch, index).

    Item: ``{"image": float C×H×W, "index": int, "seed": int, "label": int (-1 unlabeled),
    "mix": None | (partner_index, lam, partner_label), "error": None | str}``, and ``"teacher_image"`` with
    ``student_color_jitter`` (``image`` is then the student's view). The same (base_seed, epoch, index)
    gives the same tensor bit for bit in any process, worker or batch. ``error`` names an unreadable image (own or
    Mixup/CutMix partner) that a dataset built with ``on_error='skip'`` replaced by a stand-in.
    """

    pipeline = PIPELINE

    def __init__(self, dataset: Dataset, aug_cfg: AugmentConfig | Mapping[str, Any] | None = None,
                 base_seed: int = 0, epoch: int = 0):
        self.dataset = dataset
        self.cfg = AugmentConfig.coerce(aug_cfg)
        self.base_seed = int(base_seed)
        self.epoch = int(epoch)
        self._setup()

    def _setup(self) -> None:
        self.transform = self.cfg.build_transform()
        self.student_jitter = self.cfg.student_jitter()
        if self.student_jitter is not None:  # the student's jitter goes between the shared colour ops and `final`
            from torchvision import transforms
            primary, secondary, final = self.cfg.build_parts()
            self.front, self.final = transforms.Compose(primary + secondary), transforms.Compose(final)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose augmentation ``__getitem__`` replays (call before creating the iterator)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def seed(self, index: int, epoch: int | None = None) -> int:
        return sample_seed(self.base_seed, self.epoch if epoch is None else epoch, index)

    def augment(self, index: int, seed: int) -> tuple[torch.Tensor, int]:
        """The un-mixed augmentation (the student's view) of one sample under ``seed``, and its label."""
        views, label, _ = self._augment(index, seed)
        return views["image"], label

    def _augment(self, index: int, seed: int) -> tuple[dict[str, torch.Tensor], int, str | None]:
        """The un-mixed views of one sample: ``image``, and ``teacher_image`` with a student-only jitter."""
        img, target, error = load_sample(self.dataset, index)
        with seeded_global_rngs(seed):
            if self.student_jitter is None:
                return {"image": self.transform(img)}, _label_of(target), error
            shared = self.front(img)
            with seeded_global_rngs(student_jitter_seed(seed)):
                jittered = self.student_jitter(shared)
            with preserved_global_rngs():  # both views draw the same erasing
                teacher = self.final(shared)
            return {"image": self.final(jittered), TEACHER_IMAGE: teacher}, _label_of(target), error

    def get(self, index: int, epoch: int) -> dict[str, Any]:
        """The replayed sample ``index`` of ``epoch`` (mixing included)."""
        index = int(index)
        seed = sample_seed(self.base_seed, epoch, index)
        views, label, error = self._augment(index, seed)
        mix = None
        params = mix_params(seed, index, len(self), self.cfg, tuple(views["image"].shape[-2:]))
        if params is not None:
            pviews, plabel, perror = self._augment(params.partner,
                                                   sample_seed(self.base_seed, epoch, params.partner))
            error = error or perror
            views = {k: _mixed(x, pviews[k], params) for k, x in views.items()}
            mix = (params.partner, params.lam, plabel)
        return {**views, "index": index, "seed": seed, "label": label, "mix": mix, "error": error}

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        """Sample ``key`` of the epoch set by `set_epoch`, or ``key = (epoch, index)``: a sampler that yields such
        pairs lets persistent DataLoader workers (which never see `set_epoch`) serve every epoch."""
        if isinstance(key, tuple):
            return self.get(key[1], key[0])
        return self.get(key, self.epoch)


def _mixed(x: torch.Tensor, partner: torch.Tensor, params: MixParams) -> torch.Tensor:
    """``x`` mixed with its partner's image: x·λ + partner·(1−λ) (Mixup), or the partner's box pasted (CutMix)."""
    if params.box is None:
        return x * params.lam + partner * (1.0 - params.lam)
    y0, y1, x0, x1 = params.box
    x = x.clone()
    x[:, y0:y1, x0:x1] = partner[:, y0:y1, x0:x1]
    return x


def collate_replay(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """Collate ReplayDataset items: stacked images (and teacher views), int64 tensors for index/seed/label, mix as
    tensors.

    ``mix_index`` is -1 and ``mix_lam`` 1.0 for samples that were not mixed; ``valid`` is False for samples
    whose image was unreadable (their messages in ``errors``).
    """
    views = {k: torch.stack([b[k] for b in batch]) for k in ("image", TEACHER_IMAGE) if k in batch[0]}
    return {**views, **collate_meta(batch)}


def collate_meta(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """The per-sample bookkeeping of a replay batch (everything but the pixels), shared by both pipelines."""
    mixes = [b["mix"] for b in batch]
    return {
        "index": torch.tensor([b["index"] for b in batch], dtype=torch.int64),
        "seed": torch.tensor([b["seed"] for b in batch], dtype=torch.int64),
        "label": torch.tensor([b["label"] for b in batch], dtype=torch.int64),
        "mix_index": torch.tensor([m[0] if m else -1 for m in mixes], dtype=torch.int64),
        "mix_lam": torch.tensor([m[1] if m else 1.0 for m in mixes], dtype=torch.float32),
        "mix_label": torch.tensor([m[2] if m else -1 for m in mixes], dtype=torch.int64),
        "valid": torch.tensor([b["error"] is None for b in batch], dtype=torch.bool),
        "errors": [b["error"] for b in batch if b["error"] is not None],
    }
