"""Dataset checks run before training/testing: every image and label map exists, sizes agree, values are known."""
from __future__ import annotations

import copy
import os.path as osp
from typing import Any, Mapping

import numpy as np
from PIL import Image
from tqdm import tqdm


class SegDataError(ValueError):
    """A segmentation data set is unusable; the message names the file and what is wrong."""


def _label_array(path: str) -> np.ndarray:
    # the same decoding as mmseg's LoadAnnotations (pillow, 'unchanged'): palette PNGs give class indices
    with Image.open(path) as im:
        arr = np.array(im)
    if arr.ndim == 3:
        if arr.shape[2] == 1 or (arr[..., :1] == arr).all():
            return arr[..., 0]
        raise SegDataError(f"{path}: label map has {arr.shape[2]} colour channels; expected one channel of class "
                           "indices (a grey or palette PNG)")
    return arr


def _check_paths(dataset_cfg: Mapping[str, Any]) -> None:
    root = dataset_cfg.get("data_root") or ""
    if root and not osp.isdir(root):
        raise SegDataError(f"data_root {root}: folder not found")
    for key, path in dict(dataset_cfg.get("data_prefix") or {}).items():
        full = osp.join(root, path) if path else root
        if not osp.isdir(full):
            raise SegDataError(f"data_prefix.{key} {full}: folder not found")
    ann_file = dataset_cfg.get("ann_file") or ""
    if ann_file:
        full = osp.join(root, ann_file) if not osp.isabs(ann_file) else ann_file
        if not osp.exists(full):
            raise SegDataError(f"ann_file {full}: file not found")


def validate_seg_dataset(dataset_cfg: Mapping[str, Any], *, progress: bool = False) -> int:
    """Build an mmseg dataset from its config and check every sample; returns the number of samples.

    Raises `SegDataError` naming the file for: a missing folder / split file / image / label map, a label map
    whose size differs from its image, or label values that are neither a class (after the dataset's
    `reduce_zero_label` / `label_map`) nor the ignore index.
    """
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS

    _check_paths(dataset_cfg)
    init_default_scope("mmseg")
    cfg = copy.deepcopy(dict(dataset_cfg))
    cfg["pipeline"] = []
    cfg["lazy_init"] = True
    dataset = DATASETS.build(cfg)
    dataset.full_init()
    num_classes = len(dataset.metainfo["classes"])
    ignore_index = dataset.ignore_index
    for i in tqdm(range(len(dataset)), desc="validating segmentation data", disable=not progress):
        info = dataset.get_data_info(i)
        img_path, seg_path = info["img_path"], info.get("seg_map_path")
        if not osp.isfile(img_path):
            raise SegDataError(f"{img_path}: image file not found")
        if seg_path is None:
            continue
        if not osp.isfile(seg_path):
            raise SegDataError(f"{seg_path}: label map not found (image {img_path})")
        try:
            with Image.open(img_path) as im:
                width, height = im.size
        except OSError as err:
            raise SegDataError(f"{img_path}: not a readable image ({err})") from err
        try:
            label = _label_array(seg_path)
        except OSError as err:
            raise SegDataError(f"{seg_path}: not a readable label map ({err})") from err
        if label.shape != (height, width):
            raise SegDataError(f"{seg_path}: label map is {label.shape[1]}x{label.shape[0]} (WxH) but image "
                               f"{img_path} is {width}x{height}")
        values = np.unique(label).astype(np.int64)
        if info.get("reduce_zero_label", False):  # as mmseg's LoadAnnotations: 0 and 255 become 255
            values = np.where((values == 0) | (values == 255), 255, values - 1)
        label_map = info.get("label_map") or {}
        if label_map:
            values = np.array([label_map.get(int(v), v) for v in values], dtype=np.int64)
        bad = values[(values != ignore_index) & ((values < 0) | (values >= num_classes))]
        if bad.size:
            raise SegDataError(f"{seg_path}: label values {sorted(set(bad.tolist()))} are outside the "
                               f"{num_classes} classes [0, {num_classes - 1}] and are not the ignore index "
                               f"{ignore_index}")
    return len(dataset)
