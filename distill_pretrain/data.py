"""Image sources for distillation: every dataset yields (PIL RGB image, label) with label -1 when unlabeled.

``build_dataset(cfg)`` with ``cfg['type']`` one of:

* ``ImageFolder`` (``root``): torchvision ImageFolder, labels from sub-folders.
* ``ImageList`` (``root``): every image file under a folder, recursively, unlabeled (web-style data).
* ``FashionMNIST`` / any torchvision dataset class name (``root``, ``split``='train'|'test'): ``download=False``;
  grey images become 3-channel. ``root`` defaults to ``contracts.assets.fashion_mnist_root()`` for FashionMNIST.
* ``SkimagePhotos`` (``names``): real photos bundled in scikit-image (unlabeled).
* ``external`` (`EXTERNAL`): a data set the caller hands to ``Trainer(cfg, work_dir, datasets={'train': ...,
  'val': ...})`` (the transfer fine-tuning harness builds torchvision data sets that way); the dict only describes
  it (free keys, e.g. ``name``, ``split``), it cannot be built from the config.

Common keys: ``limit`` (first N samples); ``on_error`` = ``'stop'`` (default: an unreadable image raises
`BadImageError` naming the file) or ``'skip'`` (it is replaced by a grey stand-in and reported, see `load_sample`,
so consumers drop it and count it); torchvision data sets also take ``classes`` (keep only these labels, before
``limit``). Every dataset has ``identity``: type, length and the sha256 of its sample list (file paths + labels, or
pixel bytes + labels), which the logit store records (``on_error`` is not part of it).
"""
from __future__ import annotations

import hashlib
import struct
import zlib
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")
ON_ERROR = ("stop", "skip")
EXTERNAL = "external"
# What PIL raises on a truncated / corrupt / non-image file.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, zlib.error, struct.error, Image.DecompressionBombError)
SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field",
                  "colorwheel", "camera", "coins", "moon", "brick", "grass", "gravel", "clock", "page", "text")


class BadImageError(ValueError):
    """An image file of a data set cannot be decoded (the message names the file)."""


class ImageSamples(Dataset):
    """A list of samples, each loaded by ``load(i) -> (PIL image, label)``; images are decoded and converted to RGB.

    ``describe(i)`` names sample i in error messages (its file); ``on_error`` is one of `ON_ERROR`.
    """

    def __init__(self, length: int, load: Callable[[int], tuple[Image.Image, int]], identity: Mapping[str, Any],
                 describe: Callable[[int], str] | None = None, on_error: str = "stop"):
        if on_error not in ON_ERROR:
            raise ValueError(f"dataset key 'on_error' must be one of {ON_ERROR}, got {on_error!r}")
        self._length = length
        self._load = load
        self._describe = describe or (lambda i: f"{identity.get('type', 'dataset')} sample {i}")
        self.on_error = on_error
        self.identity = dict(identity)

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: int) -> tuple[Image.Image, int]:
        img, label, _ = self.load(index)
        return img, label

    def load(self, index: int) -> tuple[Image.Image, int, str | None]:
        """(RGB image, label, None), or with ``on_error='skip'`` (grey stand-in, -1, message) for a bad file."""
        if not 0 <= index < self._length:
            raise IndexError(f"index {index} out of range for dataset of length {self._length}")
        try:
            img, label = self._load(index)
            img.load()
            return (img.convert("RGB") if img.mode != "RGB" else img), label, None
        except _DECODE_ERRORS as err:
            msg = f"{self._describe(index)}: unreadable image ({type(err).__name__}: {err})"
            if self.on_error == "stop":
                raise BadImageError(f"{msg}; set the dataset's on_error='skip' to skip such files") from err
            return Image.new("RGB", (32, 32), (128, 128, 128)), -1, msg


def load_sample(dataset: Dataset, index: int) -> tuple[Image.Image, int, str | None]:
    """(image, label, error message or None) of any dataset; only `ImageSamples` with on_error='skip' report errors."""
    if isinstance(dataset, ImageSamples):
        return dataset.load(index)
    img, label = dataset[index]
    return img, label, None


def _identity(kind: str, length: int, parts: Sequence[bytes]) -> dict[str, Any]:
    h = hashlib.sha256()
    for p in parts:
        h.update(hashlib.sha256(p).digest())
    return {"type": kind, "length": length, "sha256": h.hexdigest()}


def _limit(n: int, cfg: Mapping[str, Any]) -> int:
    limit = cfg.get("limit")
    return n if limit is None else min(n, int(limit))


def _image_folder(cfg: Mapping[str, Any]) -> ImageSamples:
    from torchvision.datasets import ImageFolder
    root = Path(_require(cfg, "root"))
    if not root.is_dir():
        raise FileNotFoundError(f"dataset root {root} (key 'root') is not a folder")
    ds = ImageFolder(str(root))
    n = _limit(len(ds), cfg)
    samples = ds.samples[:n]
    ident = _identity("ImageFolder", n, [f"{Path(p).relative_to(root)}\t{y}".encode() for p, y in samples])
    return ImageSamples(n, lambda i: (ds.loader(samples[i][0]), samples[i][1]), ident,
                        describe=lambda i: str(samples[i][0]), on_error=cfg.get("on_error", "stop"))


def _image_list(cfg: Mapping[str, Any]) -> ImageSamples:
    root = Path(_require(cfg, "root"))
    if not root.is_dir():
        raise FileNotFoundError(f"dataset root {root} (key 'root') is not a folder")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) under {root}")
    files = files[:_limit(len(files), cfg)]
    ident = _identity("ImageList", len(files), [str(p.relative_to(root)).encode() for p in files])
    return ImageSamples(len(files), lambda i: (Image.open(files[i]), -1), ident, describe=lambda i: str(files[i]),
                        on_error=cfg.get("on_error", "stop"))


def _torchvision(cfg: Mapping[str, Any], name: str) -> ImageSamples:
    import torchvision.datasets as tvd
    cls = getattr(tvd, name, None)
    if cls is None:
        raise ValueError(f"dataset type {name!r} is neither a known type nor a torchvision dataset")
    root = cfg.get("root")
    if root is None and name == "FashionMNIST":
        from contracts.assets import fashion_mnist_root
        root = fashion_mnist_root()
    split = cfg.get("split", "train")
    if split not in ("train", "test"):
        raise ValueError(f"dataset key 'split' must be 'train' or 'test', got {split!r}")
    ds = cls(str(_require({"root": root}, "root")), train=split == "train", download=False)
    all_targets = np.asarray(ds.targets, dtype=np.int64)
    keep = np.arange(len(all_targets))
    classes = cfg.get("classes")
    if classes is not None:
        keep = np.flatnonzero(np.isin(all_targets, list(classes)))
        if not len(keep):
            raise ValueError(f"dataset key 'classes' {list(classes)} matches no sample of {name} ({split})")
    keep = keep[:_limit(len(keep), cfg)]
    n = len(keep)
    data = np.asarray(ds.data)[keep]
    targets = all_targets[keep]
    ident = _identity(name, n, [data.tobytes(), targets.tobytes()])
    ident["split"] = split
    if classes is not None:
        ident["classes"] = sorted(int(c) for c in classes)
    mode = "L" if data.ndim == 3 else "RGB"
    return ImageSamples(n, lambda i: (Image.fromarray(data[i], mode=mode), int(targets[i])), ident,
                        on_error=cfg.get("on_error", "stop"))


def _skimage(cfg: Mapping[str, Any]) -> ImageSamples:
    import skimage.data
    names = list(cfg.get("names", SKIMAGE_PHOTOS))
    images = []
    for name in names:
        if name not in SKIMAGE_PHOTOS:
            raise ValueError(f"skimage photo {name!r} (key 'names') is not bundled offline; use {SKIMAGE_PHOTOS}")
        images.append(np.ascontiguousarray(getattr(skimage.data, name)()))
    images = images[:_limit(len(images), cfg)]
    ident = _identity("SkimagePhotos", len(images), [n.encode() + a.tobytes() for n, a in zip(names, images)])
    return ImageSamples(len(images), lambda i: (Image.fromarray(images[i]), -1), ident,
                        on_error=cfg.get("on_error", "stop"))


def _require(cfg: Mapping[str, Any], key: str) -> Any:
    if cfg.get(key) is None:
        raise ValueError(f"dataset config {dict(cfg)} needs key {key!r}")
    return cfg[key]


def build_dataset(cfg: Mapping[str, Any]) -> ImageSamples:
    """Build an image dataset from a config dict (see module doc); ``.identity`` describes it for the store."""
    cfg = dict(cfg)
    kind = _require(cfg, "type")
    if kind == EXTERNAL:
        raise ValueError(f"dataset {cfg}: type {EXTERNAL!r} is a data set built by the caller and passed as "
                         "Trainer(cfg, work_dir, datasets={'train': ..., 'val': ...}); it cannot be built from "
                         "the config")
    if kind == "ImageFolder":
        return _image_folder(cfg)
    if kind == "ImageList":
        return _image_list(cfg)
    if kind == "SkimagePhotos":
        return _skimage(cfg)
    return _torchvision(cfg, kind)


def dataset_identity(dataset: Dataset) -> dict[str, Any]:
    """The identity a store records for a dataset (ImageSamples carry one; others get length + class name)."""
    ident = getattr(dataset, "identity", None)
    if ident is None:
        raise ValueError(f"{type(dataset).__name__} has no 'identity'; build it with build_dataset()")
    return dict(ident)
