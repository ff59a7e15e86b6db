"""What `train` and `test` share: config loading + command-line overrides, data checks, result records."""
from __future__ import annotations

import argparse
import os.path as osp
from pathlib import Path
from typing import Any, Sequence

from mmengine.config import Config, ConfigDict, DictAction

from contracts.records import make_record, write_record

from .metrics import SUMMARY_KEYS
from .validation import validate_seg_dataset

IOU_METRIC_TYPES = ("IoUMetric", "mmseg.IoUMetric")


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """Options both entry points take."""
    parser.add_argument("--work-dir", help="where logs and checkpoints go (default work_dirs/<config name>)")
    parser.add_argument("--mode", choices=["whole", "slide"], help="inference: whole image or sliding window "
                        "(default: the config's model.test_cfg)")
    parser.add_argument("--stride", type=int, nargs=2, metavar=("H", "W"),
                        help="sliding-window stride (default: the config's, else 2/3 of crop_size)")
    parser.add_argument("--pretrained", help="backbone checkpoint (any format backbones.load_pretrained reads); "
                        "for test: the one the segmentor was fine-tuned from, recorded by its sha256")
    parser.add_argument("--results-dir", help="where the JSON record goes (default results/records)")
    parser.add_argument("--no-validate-data", action="store_true",
                        help="skip the up-front check of every image / label map")
    parser.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none",
                        help="job launcher (torchrun: pytorch)")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, default={},
                        help="override config keys, e.g. train_cfg.max_iters=100")


def load_config(args: argparse.Namespace) -> Config:
    """Read CONFIG, apply the command-line options, and make mmseg's standard metric report per-class IoU."""
    if not osp.isfile(args.config):
        raise FileNotFoundError(f"config {args.config}: file not found")
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    cfg.work_dir = args.work_dir or cfg.get("work_dir") or osp.join("work_dirs", Path(args.config).stem)
    if args.pretrained:
        if not osp.isfile(args.pretrained):
            raise FileNotFoundError(f"--pretrained {args.pretrained}: file not found")
        cfg.model.backbone.init_cfg = ConfigDict(type="Pretrained", checkpoint=args.pretrained)
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
    cfg.setdefault("custom_hooks", [])
    cfg.custom_hooks = [*cfg.custom_hooks, ConfigDict(type="MetricHistoryHook"), ConfigDict(type="PlainCheckpointHook")]
    return cfg


def validate_data(cfg: Config, loaders: Sequence[str]) -> None:
    """Check the data sets of the named dataloaders (e.g. 'train_dataloader') before any model is built."""
    seen = []
    for name in loaders:
        loader = cfg.get(name)
        if not loader:
            continue
        dataset_cfg = loader["dataset"]
        if dataset_cfg in seen:
            continue
        seen.append(dataset_cfg)
        n = validate_seg_dataset(dataset_cfg, progress=True)
        print(f"[segmentation] {name}: {n} samples checked", flush=True)


def _backbone_checkpoint(cfg: Config) -> str | None:
    init_cfg = cfg.model.backbone.get("init_cfg") or {}
    path = init_cfg.get("checkpoint") if isinstance(init_cfg, dict) else None
    return path if path and osp.isfile(path) else None


def format_metrics(metrics: dict[str, Any]) -> str:
    """mIoU / mAcc / aAcc, then per-class IoU, one per line."""
    lines = ["  ".join(f"{k} {metrics[k]:.2f}" for k in ("mIoU", "mAcc", "aAcc") if k in metrics)]
    lines += [f"  {k[4:]:<20s} {v:6.2f}" for k, v in metrics.items() if k.startswith("IoU.")]
    return "\n".join(lines)


def write_segmentation_record(cfg: Config, config_path: str, metrics: dict[str, Any], *, split: str,
                              results_dir: str | None, extra_setting: dict[str, Any] | None = None,
                              curve: list[dict[str, Any]] | None = None) -> Path:
    """The contract-3 record of one evaluation (metrics in percent, as mmseg reports them)."""
    from backbones import file_sha256

    checkpoint = _backbone_checkpoint(cfg)
    record_metrics: dict[str, Any] = {k: metrics[k] for k in SUMMARY_KEYS if k in metrics}
    record_metrics["IoU_per_class"] = {k[4:]: v for k, v in metrics.items() if k.startswith("IoU.")}
    if curve:
        record_metrics["curve"] = curve
    test_cfg = cfg.model.get("test_cfg", {})
    setting = {
        "config": osp.relpath(config_path) if osp.isabs(config_path) else config_path,
        "metric_unit": "percent",
        "inference": test_cfg.get("mode", "whole"),
        "crop_size": list(cfg.get("crop_size") or []),
        "max_iters": cfg.get("train_cfg", {}).get("max_iters"),
        "batch_size": cfg.get("train_dataloader", {}).get("batch_size"),
        "lr": cfg.optim_wrapper.get("optimizer", {}).get("lr"),
        "optim_wrapper": cfg.optim_wrapper.get("type"),
        "norm": cfg.model.get("decode_head", {}).get("norm_cfg", {}).get("type"),
        "launcher": cfg.get("launcher"),
        **(extra_setting or {}),
    }
    if test_cfg.get("mode") == "slide":
        setting["stride"] = list(test_cfg.stride)
    backbone = {"name": cfg.get("backbone_name") or cfg.model.backbone.type,
                "checkpoint_sha256": file_sha256(checkpoint) if checkpoint else None,
                "source": "checkpoint" if checkpoint else "random"}
    record = make_record("segmentation", dataset=cfg.get("dataset_name") or cfg.train_dataloader.dataset.type,
                         split=split, metrics=record_metrics, backbone=backbone, setting=setting, config=cfg)
    return write_record(record, results_dir)


def history_hook(runner):  # noqa: ANN001, ANN201 - mmengine Runner → MetricHistoryHook
    """The runner's MetricHistoryHook (added by `load_config`)."""
    from .hooks import MetricHistoryHook

    return next(hook for hook in runner.hooks if isinstance(hook, MetricHistoryHook))
