"""Check a COCO-format json + image folder before mmdet reads it: every problem is named with its file and id.

What is checked (mmdet itself would crash deep inside a worker, or drop the item silently):
- the json parses and has `images`, `annotations`, `categories`; ids are unique; annotation ids are ≥ 1
  (pycocotools' COCOeval treats a ground-truth id 0 as unmatched, which silently lowers AP);
- every image file exists, is not empty, has a readable header, and its size equals the json's width/height;
- every annotation names a known image and category; its bbox is 4 finite numbers with w > 0, h > 0 that overlap
  the image; its segmentation (if any) is polygons of ≥ 3 points (even length, finite, non-zero area) or an
  RLE of the image's size.

`skip_bad=False` (default): the first problems raise `BadCocoInput` (up to 10 listed, with the total count).
`skip_bad=True`: bad images (with their annotations) and bad annotations are dropped; `CocoCheck.skipped`
counts them by reason, and `CocoCheck.dataset` is the cleaned json to hand to mmdet.
Ids, structure and a duplicate id are always errors (there is nothing sensible to skip).
"""
from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

MAX_LISTED = 10


class BadCocoInput(ValueError):
    """A COCO json or its images cannot be used; the message names the file and the ids."""


@dataclass
class CocoCheck:
    """Result of `validate_coco`: the (cleaned) dataset dict and what was dropped, by reason."""

    ann_file: Path
    img_dir: Path
    dataset: dict[str, Any]
    skipped: Counter = field(default_factory=Counter)

    @property
    def num_skipped(self) -> int:
        return sum(self.skipped.values())

    def summary(self) -> str:
        kept = f"{len(self.dataset['images'])} images, {len(self.dataset['annotations'])} annotations"
        if not self.skipped:
            return f"{self.ann_file}: OK ({kept})"
        reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(self.skipped.items()))
        return f"{self.ann_file}: kept {kept}; skipped {reasons}"


def _finite_numbers(values: Any) -> bool:
    return isinstance(values, (list, tuple)) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values)


def _polygon_problem(polygon: Any) -> str | None:
    if not _finite_numbers(polygon) or len(polygon) % 2:
        return "polygon is not an even-length list of finite numbers"
    if len(polygon) < 6:
        return f"polygon has {len(polygon) // 2} points (< 3)"
    xs, ys = polygon[0::2], polygon[1::2]
    twice_area = sum(xs[i] * ys[i - 1] - xs[i - 1] * ys[i] for i in range(len(xs)))
    if abs(twice_area) == 0:
        return "polygon has zero area"
    return None


def _annotation_problem(ann: dict, image: dict) -> tuple[str, str] | None:
    """(reason key, detail) of the first problem of one annotation, or None."""
    bbox = ann.get("bbox")
    if not _finite_numbers(bbox) or len(bbox) != 4:
        return "bad bbox", f"bbox {bbox!r} is not 4 finite numbers"
    x, y, w, h = bbox
    if w <= 0 or h <= 0:
        return "degenerate bbox", f"bbox {bbox!r} has non-positive width/height"
    if x >= image["width"] or y >= image["height"] or x + w <= 0 or y + h <= 0:
        return "bbox outside image", f"bbox {bbox!r} lies outside the {image['width']}x{image['height']} image"
    seg = ann.get("segmentation")
    if seg is None:
        return None
    if isinstance(seg, dict):
        if "counts" not in seg or list(seg.get("size", [])) != [image["height"], image["width"]]:
            return "bad segmentation", (f"RLE needs 'counts' and size [{image['height']}, {image['width']}], "
                                        f"got keys {sorted(seg)} size {seg.get('size')}")
        return None
    if not isinstance(seg, list) or not seg:
        return "bad segmentation", f"segmentation {str(seg)[:60]} is neither polygons nor an RLE"
    for polygon in seg:
        problem = _polygon_problem(polygon)
        if problem:
            return "invalid polygon", f"{problem}: {str(polygon)[:60]}"
    return None


def _image_problem(path: Path, image: dict) -> tuple[str, str] | None:
    if not path.is_file():
        return "missing image file", f"image file {path} does not exist"
    if path.stat().st_size == 0:
        return "empty image file", f"image file {path} is empty (0 bytes)"
    try:
        with Image.open(path) as im:
            size = im.size
    except (UnidentifiedImageError, OSError) as err:
        return "unreadable image file", f"image file {path} cannot be read ({err})"
    if size != (image["width"], image["height"]):
        return "image size mismatch", (f"image file {path} is {size[0]}x{size[1]} but the json says "
                                       f"{image['width']}x{image['height']}")
    return None


def _structure(ann_file: Path) -> dict[str, Any]:
    if not ann_file.is_file():
        raise BadCocoInput(f"annotation file {ann_file} does not exist")
    try:
        dataset = json.loads(ann_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BadCocoInput(f"{ann_file}: not valid JSON ({err})") from None
    if not isinstance(dataset, dict):
        raise BadCocoInput(f"{ann_file}: top level is {type(dataset).__name__}, not a COCO dict")
    missing = [k for k in ("images", "annotations", "categories") if not isinstance(dataset.get(k), list)]
    if missing:
        raise BadCocoInput(f"{ann_file}: missing or non-list keys {missing}")
    for key in ("images", "annotations", "categories"):
        ids = Counter(item.get("id") if isinstance(item, dict) else None for item in dataset[key])
        if None in ids:
            raise BadCocoInput(f"{ann_file}: {ids[None]} entries of '{key}' have no 'id'")
        dup = [i for i, n in ids.items() if n > 1]
        if dup:
            raise BadCocoInput(f"{ann_file}: duplicate {key} ids {dup[:MAX_LISTED]}")
    for image in dataset["images"]:
        bad = [k for k in ("file_name", "width", "height") if k not in image]
        if bad:
            raise BadCocoInput(f"{ann_file}: image id {image['id']} lacks {bad}")
    if any(a["id"] == 0 for a in dataset["annotations"]):
        raise BadCocoInput(f"{ann_file}: annotation id 0 found; pycocotools' COCOeval treats a ground-truth id "
                           "0 as unmatched (wrong AP): renumber annotation ids from 1")
    return dataset


def validate_coco(ann_file: str | Path, img_dir: str | Path, *, skip_bad: bool = False) -> CocoCheck:
    """Check `ann_file` against the images in `img_dir` (see the module doc). Raises `BadCocoInput`."""
    ann_file, img_dir = Path(ann_file), Path(img_dir)
    dataset = _structure(ann_file)
    problems: list[str] = []
    skipped: Counter = Counter()
    good_images = []
    for image in dataset["images"]:
        problem = _image_problem(img_dir / image["file_name"], image)
        if problem:
            skipped[problem[0]] += 1
            problems.append(f"image id {image['id']}: {problem[1]}")
        else:
            good_images.append(image)
    images = {im["id"]: im for im in dataset["images"]}
    good_ids = {im["id"] for im in good_images}
    category_ids = {c["id"] for c in dataset["categories"]}
    good_anns = []
    for ann in dataset["annotations"]:
        if ann.get("image_id") not in images:
            problem: tuple[str, str] | None = ("unknown image_id", f"image_id {ann.get('image_id')!r} is not in 'images'")
        elif ann.get("category_id") not in category_ids:
            problem = ("unknown category_id", f"category_id {ann.get('category_id')!r} is not in 'categories'")
        else:
            problem = _annotation_problem(ann, images[ann["image_id"]])
        if problem:
            skipped[problem[0]] += 1
            problems.append(f"annotation id {ann['id']} (image id {ann.get('image_id')}): {problem[1]}")
        elif ann["image_id"] in good_ids:
            good_anns.append(ann)
        else:
            skipped["annotation of a skipped image"] += 1
    if problems and not skip_bad:
        listed = "\n  ".join(problems[:MAX_LISTED])
        more = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
        raise BadCocoInput(f"{ann_file} (images in {img_dir}): {len(problems)} problems "
                           f"({dict(skipped)}):\n  {listed}{more}\n"
                           "Fix the data, or pass skip_bad=True (--skip-bad) to drop these and count them.")
    cleaned = {**dataset, "images": good_images, "annotations": good_anns}
    return CocoCheck(ann_file, img_dir, cleaned, skipped)
