"""Linear-probe data sets through torchvision's own classes (`download=False` over a local root).

| name | class | train split | test split | files under ROOT |
|---|---|---|---|---|
| cifar10 | CIFAR10 | train | test | cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta} |
| cifar100 | CIFAR100 | train | test | cifar-100-python/{train,test,meta} |
| flowers102 | Flowers102 | train+val | test | flowers-102/{jpg/image_NNNNN.jpg,imagelabels.mat,setid.mat} |
| stanford_cars | StanfordCars | train | test | stanford_cars/{devkit/{cars_meta.mat,cars_train_annos.mat},cars_train/,cars_test/,cars_test_annos_withlabels.mat} |
| oxford_pets | OxfordIIITPet | trainval | test | oxford-iiit-pet/{images/*.jpg,annotations/{trainval,test}.txt} |
| fgvc_aircraft | FGVCAircraft (variant) | trainval | test | fgvc-aircraft-2013b/data/{images/*.jpg,variants.txt,images_variant_{trainval,test}.txt} |
| fashion_mnist | FashionMNIST | train | test | FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] |
| imagefolder | ImageFolder | ROOT/train | ROOT/test (or ROOT/val) | ROOT/{train,test}/<class>/<image> |

With `verify_md5=False` the CIFAR / Flowers102 classes skip their md5 checks (files still must exist in the exact
layout): for re-packed copies and the format tests; the official files pass either way.
"""
from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path
from typing import Any, Callable

from torch.utils.data import ConcatDataset, Dataset
from torchvision import datasets as tvd

from .. import dataset_names
from ..dataset_names import display_name

LAYOUTS = {
    "cifar10": "ROOT/cifar-10-batches-py/{data_batch_1..data_batch_5, test_batch, batches.meta} (python pickles)",
    "cifar100": "ROOT/cifar-100-python/{train, test, meta} (python pickles)",
    "flowers102": "ROOT/flowers-102/{jpg/image_00001.jpg..., imagelabels.mat, setid.mat}",
    "stanford_cars": "ROOT/stanford_cars/{devkit/{cars_meta.mat, cars_train_annos.mat}, cars_train/*.jpg, "
                     "cars_test/*.jpg, cars_test_annos_withlabels.mat}",
    "oxford_pets": "ROOT/oxford-iiit-pet/{images/*.jpg, annotations/{trainval.txt, test.txt}}",
    "fgvc_aircraft": "ROOT/fgvc-aircraft-2013b/data/{images/*.jpg, variants.txt, images_variant_trainval.txt, "
                     "images_variant_test.txt}",
    "fashion_mnist": "ROOT/FashionMNIST/raw/{train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
                     "t10k-labels-idx1-ubyte}[.gz]",
    "imagefolder": "ROOT/train/<class>/<image>, ROOT/test/<class>/<image> (or ROOT/val/)",
}


class DatasetNotFound(FileNotFoundError):
    """A data set's files are not where (or not in the layout that) its loader expects."""


def canonical_name(name: str) -> str:
    """Canonical linear-probe data set name ('CIFAR-100' → 'cifar100'); unknown names raise with the known ones."""
    return dataset_names.canonical_name(name, LAYOUTS, "linear-probe")


class _CIFAR10NoMD5(tvd.CIFAR10):
    train_list = [[f, None] for f, _ in tvd.CIFAR10.train_list]
    test_list = [[f, None] for f, _ in tvd.CIFAR10.test_list]
    meta = {**tvd.CIFAR10.meta, "md5": None}


class _CIFAR100NoMD5(tvd.CIFAR100):
    train_list = [[f, None] for f, _ in tvd.CIFAR100.train_list]
    test_list = [[f, None] for f, _ in tvd.CIFAR100.test_list]
    meta = {**tvd.CIFAR100.meta, "md5": None}


class _Flowers102NoMD5(tvd.Flowers102):
    _file_dict = {k: (f, None) for k, (f, _) in tvd.Flowers102._file_dict.items()}


def prepare_mnist_raw(root: str | Path, folder: str = "FashionMNIST") -> None:
    """Decompress `ROOT/<folder>/raw/*.gz` next to themselves when only the .gz files are there (what torchvision's
    own download step does after fetching), atomically; torchvision reads only the decompressed files."""
    raw = Path(root) / folder / "raw"
    for gz in sorted(raw.glob("*-ubyte.gz")):
        target = gz.with_suffix("")
        if target.exists():
            continue
        tmp = target.with_name(f".{target.name}.tmp")
        try:
            with gzip.open(gz, "rb") as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst)
            os.replace(tmp, target)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            raise DatasetNotFound(f"{gz}: cannot decompress to {target} ({err}); gunzip the files there") from err


def build_dataset(name: str, root: str | Path, split: str, transform: Callable | None = None, *,
                  verify_md5: bool = True) -> Dataset:
    """A data set's standard 'train' or 'test' split (see module table). Missing files → `DatasetNotFound` naming
    the root and the expected layout."""
    key = canonical_name(name)
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root = Path(root).expanduser()
    train = split == "train"
    try:
        if key == "cifar10":
            cls = tvd.CIFAR10 if verify_md5 else _CIFAR10NoMD5
            return cls(root, train=train, transform=transform, download=False)
        if key == "cifar100":
            cls = tvd.CIFAR100 if verify_md5 else _CIFAR100NoMD5
            return cls(root, train=train, transform=transform, download=False)
        if key == "flowers102":
            cls = tvd.Flowers102 if verify_md5 else _Flowers102NoMD5
            if train:
                return ConcatDataset([cls(root, split=s, transform=transform, download=False)
                                      for s in ("train", "val")])
            return cls(root, split="test", transform=transform, download=False)
        if key == "stanford_cars":
            return tvd.StanfordCars(root, split=split, transform=transform, download=False)
        if key == "oxford_pets":
            return tvd.OxfordIIITPet(root, split="trainval" if train else "test", transform=transform,
                                     download=False)
        if key == "fgvc_aircraft":
            return tvd.FGVCAircraft(root, split="trainval" if train else "test", annotation_level="variant",
                                    transform=transform, download=False)
        if key == "fashion_mnist":
            prepare_mnist_raw(root)
            return tvd.FashionMNIST(root, train=train, transform=transform, download=False)
        sub = root / split
        if not train and not sub.is_dir() and (root / "val").is_dir():
            sub = root / "val"
        if not sub.is_dir():
            raise FileNotFoundError(f"{sub} is not a directory")
        return tvd.ImageFolder(sub, transform=transform)
    except (RuntimeError, FileNotFoundError, OSError) as err:
        raise DatasetNotFound(f"{display_name(key)} ({split}) not found or incomplete under {root} "
                              f"({type(err).__name__}: {str(err).split('. You can use download')[0]}). Expected layout: {LAYOUTS[key]}") from err


def num_classes(dataset: Dataset) -> int:
    """Number of classes of a (possibly concatenated) torchvision data set."""
    if isinstance(dataset, ConcatDataset):
        return num_classes(dataset.datasets[0])
    classes: Any = getattr(dataset, "classes", None)
    if classes is not None and len(classes):
        return len(classes)
    from ..features import dataset_targets
    return int(dataset_targets(dataset).max()) + 1
