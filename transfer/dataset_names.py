"""Data-set names, in one table: the name the harnesses and their records use, the label tables print, the key the
papers' tables use (`benchmarks.paper_numbers`; None where no paper measured it) and the other spellings accepted.

Spellings match ignoring case and every character but letters and digits: 'CIFAR-10', 'cifar_10' and 'cifar10'
are one name, as are 'Oxford-IIIT-Pet' and 'oxfordiiitpet'.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable


@dataclass(frozen=True)
class DatasetName:
    """One data set's names: `name` (records, harnesses), `label` (tables), `paper` (paper tables), `aliases`."""

    name: str
    label: str
    paper: str | None = None
    aliases: tuple[str, ...] = ()


DATASETS = (
    DatasetName("cifar10", "CIFAR-10", "cifar10"),
    DatasetName("cifar100", "CIFAR-100", "cifar100"),
    DatasetName("flowers102", "Flowers", "flowers", ("flowers", "oxford_flowers102")),
    DatasetName("stanford_cars", "Cars", "cars", ("cars",)),
    DatasetName("oxford_pets", "Pets", "pets", ("pets", "oxford_iiit_pet")),
    DatasetName("fgvc_aircraft", "Aircraft", "aircraft", ("aircraft",)),
    DatasetName("fashion_mnist", "Fashion-MNIST"),
    DatasetName("imagefolder", "ImageFolder"),
    DatasetName("isic2018", "ISIC", "isic", ("isic",)),
    DatasetName("eurosat", "EuroSAT", "eurosat"),
    DatasetName("cropdisease", "CropD", "cropdisease", ("cropdiseases", "cropd")),
    DatasetName("chestx", "ChestX", "chestx", ("chestxray8", "chestxray")),
    DatasetName("inat18", "iNat18", "inat18"),
    DatasetName("coco", "COCO", "coco", ("coco2017", "coco_val2017")),
    DatasetName("ade20k", "ADE20K", "ade20k"),
    DatasetName("imagenet-1k", "ImageNet-1k", "imagenet-1k", ("imagenet", "in1k")),
    DatasetName("imagenet-21k", "ImageNet-21k", "imagenet-21k", ("imagenet22k", "in21k")),
    DatasetName("imagenet-real", "ImageNet-ReaL", "imagenet-real"),
    DatasetName("imagenet-v2", "ImageNet-V2", "imagenet-v2"),
)


def normalise(name: str) -> str:
    """A spelling as names are matched: lower case, letters and digits only ('Fashion-MNIST' → 'fashionmnist')."""
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def spelling_index(datasets: Iterable[DatasetName]) -> dict[str, DatasetName]:
    """{normalised spelling: entry} of a names table; ValueError if one spelling names two data sets."""
    index: dict[str, DatasetName] = {}
    for entry in datasets:
        for spelling in (entry.name, *entry.aliases):
            other = index.setdefault(normalise(spelling), entry)
            if other is not entry:
                raise ValueError(f"data-set spelling {spelling!r} names both {other.name!r} and {entry.name!r}")
    return index


_BY_SPELLING = spelling_index(DATASETS)


def find_dataset(name: str) -> DatasetName | None:
    """The table entry any spelling of a data set names, or None for a name not in the table."""
    return _BY_SPELLING.get(normalise(name))


def display_name(name: str) -> str:
    """The label tables print for a data set ('oxford_pets' → 'Pets'); a name not in the table is returned as is."""
    entry = find_dataset(name)
    return entry.label if entry is not None else name


def canonical_name(name: str, known: Iterable[str], what: str) -> str:
    """The harness name of a data set that must be one of ``known`` ('CIFAR-100' → 'cifar100'); ValueError naming
    the ``what`` data sets otherwise."""
    entry = find_dataset(name)
    key = entry.name if entry is not None else name.lower()
    if key not in known:
        raise ValueError(f"unknown {what} data set {name!r}; known: {sorted(known)}")
    return key
