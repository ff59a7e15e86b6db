"""CD-FSL (Guo et al., ECCV 2020) target data sets in the IBM cdfsl-benchmark's on-disk layouts.

| name | layout under ROOT | classes |
|---|---|---|
| cropdisease | ROOT/dataset/train/<class>/<image>  (ImageFolder, as the benchmark reads it) | 38 |
| eurosat | ROOT/<class>/<image>  (the 2750/ folder of EuroSAT RGB) | 10 |
| isic2018 | ROOT/ISIC2018_Task3_Training_GroundTruth/ISIC2018_Task3_Training_GroundTruth.csv (image,MEL,NV,BCC,AKIEC,BKL,DF,VASC one-hot) + ROOT/ISIC2018_Task3_Training_Input/<image>.jpg | 7 |
| chestx | ROOT/Data_Entry_2017.csv ('Image Index', 'Finding Labels', ...) + ROOT/images/<image>.png; single-label images of Atelectasis, Cardiomegaly, Effusion, Infiltration, Mass, Nodule, Pneumothorax | 7 |
| imagefolder | ROOT/<class>/<image> | any |
| fashion_mnist | torchvision FashionMNIST test split under ROOT | 10 |
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Callable

from PIL import Image
from torch.utils.data import Dataset
from torchvision import datasets as tvd

from .. import dataset_names
from ..dataset_names import display_name
from ..linear_probe.datasets import DatasetNotFound, build_dataset

CHESTX_LABELS = ("Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumothorax")
ISIC_CSV = "ISIC2018_Task3_Training_GroundTruth/ISIC2018_Task3_Training_GroundTruth.csv"
ISIC_IMAGES = "ISIC2018_Task3_Training_Input"
LAYOUTS = {
    "cropdisease": "ROOT/dataset/train/<class>/<image>",
    "eurosat": "ROOT/<class>/<image> (EuroSAT's 2750/ folder)",
    "isic2018": f"ROOT/{ISIC_CSV} + ROOT/{ISIC_IMAGES}/<image>.jpg",
    "chestx": "ROOT/Data_Entry_2017.csv + ROOT/images/<image>.png",
    "imagefolder": "ROOT/<class>/<image>",
    "fashion_mnist": "ROOT/FashionMNIST/raw/t10k-*-ubyte[.gz]",
}


class LabelledImages(Dataset):
    """Images listed with integer labels (the CSV-indexed CD-FSL sets); PIL RGB images, `targets`, `classes`."""

    def __init__(self, root: Path, image_paths: list[Path], targets: list[int], classes: list[str],
                 transform: Callable | None = None) -> None:
        self.root = root
        self.image_paths = image_paths
        self.targets = targets
        self.classes = classes
        self.transform = transform

    def __len__(self) -> int:
        return len(self.image_paths)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image = Image.open(self.image_paths[index]).convert("RGB")
        return (self.transform(image) if self.transform else image), self.targets[index]


def _isic(root: Path, transform: Callable | None) -> LabelledImages:
    csv_path = root / ISIC_CSV
    with open(csv_path, newline="") as f:
        rows = list(csv.reader(f))
    header, rows = rows[0], [r for r in rows[1:] if r]
    classes = header[1:]
    paths, targets = [], []
    for row in rows:
        scores = [float(v) for v in row[1:]]
        if len(scores) != len(classes):
            raise ValueError(f"{csv_path}: row {row[0]!r} has {len(scores)} label columns, header has {len(classes)}")
        paths.append(root / ISIC_IMAGES / f"{row[0]}.jpg")
        targets.append(max(range(len(scores)), key=scores.__getitem__))
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} images listed in {csv_path} are missing, e.g. {missing[0]}")
    return LabelledImages(root, paths, targets, classes, transform)


def _chestx(root: Path, transform: Callable | None) -> LabelledImages:
    csv_path = root / "Data_Entry_2017.csv"
    with open(csv_path, newline="") as f:
        reader = csv.DictReader(f)
        for col in ("Image Index", "Finding Labels"):
            if col not in (reader.fieldnames or []):
                raise ValueError(f"{csv_path}: no {col!r} column (columns: {reader.fieldnames})")
        rows = list(reader)
    index = {name: i for i, name in enumerate(CHESTX_LABELS)}
    paths, targets = [], []
    for row in rows:
        label = row["Finding Labels"].strip()
        if label in index:  # single-label images of the 7 benchmark classes ('|' joins multiple labels)
            paths.append(root / "images" / row["Image Index"])
            targets.append(index[label])
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} images listed in {csv_path} are missing, e.g. {missing[0]}")
    return LabelledImages(root, paths, targets, list(CHESTX_LABELS), transform)


def canonical_name(name: str) -> str:
    """Canonical few-shot data set name ('CropDiseases' → 'cropdisease'); unknown names raise with the known ones."""
    return dataset_names.canonical_name(name, LAYOUTS, "few-shot")


def build_few_shot_dataset(name: str, root: str | Path, transform: Callable | None = None) -> Dataset:
    """A CD-FSL target set (or any ImageFolder / Fashion-MNIST's test split) with `targets`; missing files →
    `DatasetNotFound` naming the root and the expected layout."""
    key = canonical_name(name)
    root = Path(root).expanduser()
    try:
        if key == "cropdisease":
            return tvd.ImageFolder(root / "dataset" / "train", transform=transform)
        if key in ("eurosat", "imagefolder"):
            return tvd.ImageFolder(root, transform=transform)
        if key == "isic2018":
            return _isic(root, transform)
        if key == "chestx":
            return _chestx(root, transform)
        return build_dataset("fashion_mnist", root, "test", transform)
    except DatasetNotFound:
        raise
    except (FileNotFoundError, OSError) as err:
        raise DatasetNotFound(f"{display_name(key)} not found or incomplete under {root} "
                              f"({type(err).__name__}: {err}). Expected layout: {LAYOUTS[key]}") from err
