"""Detection's part of the dense harness: COCO data (`--data ANN IMG_DIR`, checks, `--skip-bad`), COCO metrics
in record names (fractions), the COCO table, and the `DETECTION` task spec the shared harness runs."""
from __future__ import annotations

import argparse
import json
import os.path as osp
from pathlib import Path
from typing import Any, Iterator

from mmengine.config import Config
from tabulate import tabulate

from contracts.fileio import atomic_write_text
from ..openmmlab.config import leaf_datasets, load_config  # noqa: F401 - load_config: benchmarks.detection_speed
from ..openmmlab.task import DenseTask, register_task
from .validate import CocoCheck, validate_coco

# mmdet CocoMetric suffix → record suffix (record names: bbox_ap, bbox_ap50, ..., segm_ap_l)
COCO_KEYS = {"mAP": "ap", "mAP_50": "ap50", "mAP_75": "ap75", "mAP_s": "ap_s", "mAP_m": "ap_m", "mAP_l": "ap_l"}
TABLE_HEADERS = ("AP", "AP50", "AP75", "APs", "APm", "APl")
DATALOADERS = ("train_dataloader", "val_dataloader", "test_dataloader")
EVALUATORS = ("val_evaluator", "test_evaluator")


def set_num_classes(model: dict, num_classes: int) -> None:
    """Set the class count of every RoI head (a cascade's list of bbox heads, the mask head)."""
    roi_head = model.get("roi_head", {})
    for key in ("bbox_head", "mask_head"):
        heads = roi_head.get(key)
        for head in heads if isinstance(heads, list) else [heads] if heads else []:
            head["num_classes"] = num_classes


def _evaluators(cfg: Config) -> Iterator[dict]:
    for key in EVALUATORS:
        evaluator = cfg.get(key)
        for metric in evaluator if isinstance(evaluator, list) else [evaluator] if evaluator else []:
            yield metric


def use_coco_data(cfg: Config, ann_file: str | Path, img_dir: str | Path) -> tuple[str, ...]:
    """Point every dataloader and evaluator of `cfg` at one COCO json + image folder; classes from the json."""
    ann_file, img_dir = Path(ann_file).resolve(), Path(img_dir).resolve()
    if not ann_file.is_file():
        raise FileNotFoundError(f"annotation file {ann_file} does not exist")
    categories = json.loads(ann_file.read_text()).get("categories")
    if not categories:
        raise ValueError(f"{ann_file}: no 'categories'")
    classes = tuple(c["name"] for c in sorted(categories, key=lambda c: c["id"]))
    for key in DATALOADERS:
        if cfg.get(key) is None:
            continue
        for dataset in leaf_datasets(cfg[key]["dataset"]):
            dataset.update(data_root="", ann_file=str(ann_file), data_prefix=dict(img=str(img_dir) + "/"),
                           metainfo=dict(classes=classes))
    for metric in _evaluators(cfg):
        metric["ann_file"] = str(ann_file)
    set_num_classes(cfg.model, len(classes))
    cfg.dataset_name = ann_file.parent.name
    return classes


def _dataset_paths(dataset: dict) -> tuple[str, str]:
    root = dataset.get("data_root") or ""
    ann_file = osp.join(root, dataset["ann_file"])
    img_dir = osp.join(root, (dataset.get("data_prefix") or {}).get("img", ""))
    return ann_file, img_dir


def check_datasets(cfg: Config, skip_bad: bool = False, splits: tuple[str, ...] = DATALOADERS) -> list[CocoCheck]:
    """Validate every COCO json the chosen dataloaders read (`validate_coco`); raises `BadCocoInput`.

    With `skip_bad`, a json with problems is replaced by a cleaned copy under `<work_dir>/checked_data/` (the
    dataloaders and evaluators that read it are re-pointed), and the skip counts are printed.
    """
    checks: dict[tuple[str, str], CocoCheck] = {}
    replaced: dict[str, str] = {}
    for key in splits:
        if cfg.get(key) is None:
            continue
        for dataset in leaf_datasets(cfg[key]["dataset"]):
            ann_file, img_dir = _dataset_paths(dataset)
            if (ann_file, img_dir) not in checks:
                check = validate_coco(ann_file, img_dir, skip_bad=skip_bad)
                checks[(ann_file, img_dir)] = check
                print(f"[detection] data check: {check.summary()}", flush=True)
                if check.num_skipped:
                    clean = Path(cfg.work_dir).resolve() / "checked_data" / f"{len(replaced)}_{Path(ann_file).name}"
                    atomic_write_text(clean, json.dumps(check.dataset))
                    replaced[ann_file] = str(clean)
            if ann_file in replaced:
                dataset.update(ann_file=replaced[ann_file], data_root="",
                               data_prefix=dict(img=str(Path(img_dir).resolve()) + "/"))
    for metric in _evaluators(cfg):
        if metric.get("ann_file") in replaced:
            metric["ann_file"] = replaced[metric["ann_file"]]
    return list(checks.values())


def coco_metrics(raw: dict[str, Any], iou_types: tuple[str, ...] = ("bbox", "segm")) -> dict[str, float | None]:
    """mmdet CocoMetric output ('coco/bbox_mAP_50', ...) → record names ('bbox_ap50', ...), fractions.

    mmdet returns no metrics when a model made no detection at all; that is AP 0 (every ground truth missed),
    so all of `iou_types` are reported as 0.0 then. COCOeval's -1 (no ground truth of that size) becomes None.
    """
    if not any(str(k).startswith("coco/") for k in raw):
        return {f"{kind}_{name}": 0.0 for kind in iou_types for name in COCO_KEYS.values()}
    metrics: dict[str, float | None] = {}
    for key, value in raw.items():
        name = key.split("/")[-1]
        for kind in ("bbox", "segm"):
            suffix = name[len(kind) + 1:] if name.startswith(kind + "_") else None
            if suffix in COCO_KEYS:
                metrics[f"{kind}_{COCO_KEYS[suffix]}"] = float(value) if float(value) >= 0 else None
    return metrics


def coco_table(metrics: dict[str, float | None]) -> str:
    """The COCO table: one row per IoU type (bbox, segm), columns AP AP50 AP75 APs APm APl (in %)."""
    rows = []
    for kind in ("bbox", "segm"):
        if any(k.startswith(kind + "_") for k in metrics):
            values = (metrics.get(f"{kind}_{c}") for c in COCO_KEYS.values())
            rows.append([kind] + [float("nan") if v is None else 100 * v for v in values])
    return tabulate(rows, headers=["", *TABLE_HEADERS], tablefmt="github", floatfmt=".1f")


def _use_data(cfg: Config, values: list[str]) -> None:
    use_coco_data(cfg, *values)


def _check_data(cfg: Config, splits: tuple[str, ...], args: argparse.Namespace) -> None:
    check_datasets(cfg, skip_bad=args.skip_bad, splits=splits)


def _setting(cfg: Config) -> dict[str, Any]:
    scale = None
    for step in cfg.get("test_dataloader", {}).get("dataset", {}).get("pipeline", []):
        if step.get("type") == "Resize":
            scale = step.get("scale")
    classes = cfg.get("test_dataloader", {}).get("dataset", {}).get("metainfo", {}).get("classes", ())
    return {"test_scale": list(scale) if scale else None, "num_classes": len(classes) or None}


def _add_arguments(parser: argparse.ArgumentParser, mode: str) -> None:
    parser.add_argument("--skip-bad", action="store_true",
                        help="drop bad images/annotations (counted) instead of stopping with an error")
    if mode == "train":
        parser.add_argument("--no-test", action="store_true", help="do not evaluate the test split after training")


DETECTION = register_task(DenseTask(
    name="detection", scope="mmdet", model_word="detector", record_metrics=coco_metrics, format_metrics=coco_table,
    use_data=_use_data, data_metavar=("ANN_FILE", "IMG_DIR"), check_data=_check_data, setting=_setting,
    record_split_after_train="test", add_arguments=_add_arguments, default_dataset="coco"))
