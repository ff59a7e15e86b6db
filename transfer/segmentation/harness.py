"""Segmentation's part of the dense harness: mmseg data (`--data ROOT`, checks), inference mode, mmseg's metrics
converted once from percent to the record's fractions, and the `SEGMENTATION` task spec the shared harness runs."""
from __future__ import annotations

import argparse
from typing import Any

from mmengine.config import Config, ConfigDict

from ..openmmlab.config import leaf_datasets
from ..openmmlab.task import DenseTask, register_task
from .validation import validate_seg_dataset

IOU_METRIC_TYPES = ("IoUMetric", "mmseg.IoUMetric")
SUMMARY_KEYS = {"mIoU": "miou", "mAcc": "macc", "aAcc": "aacc"}


def seg_metrics(raw: dict[str, Any]) -> dict[str, Any]:
    """mmseg's IoUMetric output (percent: mIoU, mAcc, aAcc, IoU.<class>) → record metrics (fractions:
    miou, macc, aacc, iou_per_class)."""
    metrics: dict[str, Any] = {name: raw[key] / 100.0 for key, name in SUMMARY_KEYS.items() if key in raw}
    per_class = {key[4:]: value / 100.0 for key, value in raw.items() if key.startswith("IoU.")}
    if per_class:
        metrics["iou_per_class"] = per_class
    return metrics


def format_metrics(metrics: dict[str, Any]) -> str:
    """mIoU / mAcc / aAcc, then per-class IoU, one per line (in %)."""
    lines = ["  ".join(f"{key} {100 * metrics[name]:.2f}" for key, name in SUMMARY_KEYS.items() if name in metrics)]
    lines += [f"  {name:<20s} {100 * value:6.2f}" for name, value in metrics.get("iou_per_class", {}).items()]
    return "\n".join(lines)


def _use_data(cfg: Config, values: list[str]) -> None:
    for key in ("train_dataloader", "val_dataloader", "test_dataloader"):
        if cfg.get(key) is not None:
            for dataset in leaf_datasets(cfg[key]["dataset"]):
                dataset["data_root"] = values[0]


def _check_data(cfg: Config, splits: tuple[str, ...], args: argparse.Namespace) -> None:
    seen = []
    for name in splits:
        loader = cfg.get(name)
        if not loader or loader["dataset"] in seen:
            continue
        seen.append(loader["dataset"])
        n = validate_seg_dataset(loader["dataset"], progress=True)
        print(f"[segmentation] {name}: {n} samples checked", flush=True)


def _prepare(cfg: Config, args: argparse.Namespace) -> None:
    """--mode / --stride, and mmseg's IoUMetric → PerClassIoUMetric (the same numbers plus per-class IoU)."""
    test_cfg = cfg.model.setdefault("test_cfg", ConfigDict(mode="whole"))
    if args.mode:
        test_cfg.mode = args.mode
    if test_cfg.get("mode") == "slide":
        crop = tuple(test_cfg.get("crop_size") or cfg.get("crop_size") or (512, 512))
        test_cfg.crop_size = crop
        test_cfg.stride = tuple(args.stride or test_cfg.get("stride") or (crop[0] * 2 // 3, crop[1] * 2 // 3))
    for key in ("val_evaluator", "test_evaluator"):
        evaluator = cfg.get(key)
        if isinstance(evaluator, dict) and evaluator.get("type") in IOU_METRIC_TYPES:
            evaluator.type = "PerClassIoUMetric"


def _setting(cfg: Config) -> dict[str, Any]:
    test_cfg = cfg.model.get("test_cfg", {})
    setting = {"inference": test_cfg.get("mode", "whole"), "crop_size": list(cfg.get("crop_size") or []),
               "norm": cfg.model.get("decode_head", {}).get("norm_cfg", {}).get("type")}
    if test_cfg.get("mode") == "slide":
        setting["stride"] = list(test_cfg.stride)
    return setting


def _add_arguments(parser: argparse.ArgumentParser, mode: str) -> None:
    parser.add_argument("--mode", choices=["whole", "slide"],
                        help="inference: whole image or sliding window (default: the config's model.test_cfg)")
    parser.add_argument("--stride", type=int, nargs=2, metavar=("H", "W"),
                        help="sliding-window stride (default: the config's, else 2/3 of crop_size)")


SEGMENTATION = register_task(DenseTask(
    name="segmentation", scope="mmseg", model_word="segmentor", record_metrics=seg_metrics,
    format_metrics=format_metrics, use_data=_use_data, data_metavar=("DATA_ROOT",), check_data=_check_data,
    setting=_setting, record_split_after_train="val", prepare=_prepare, add_arguments=_add_arguments))
