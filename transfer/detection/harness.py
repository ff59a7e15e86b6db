"""What `transfer.detection.train` and `.test` share: config preparation, data checks, the COCO table, records."""
from __future__ import annotations

import json
import os.path as osp
from pathlib import Path
from typing import Any, Iterator

from mmengine.config import Config, ConfigDict
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from tabulate import tabulate

from contracts.fileio import atomic_write_text
from contracts.records import make_record, write_record
from .validate import CocoCheck, validate_coco

COCO_KEYS = {"mAP": "AP", "mAP_50": "AP50", "mAP_75": "AP75", "mAP_s": "APs", "mAP_m": "APm", "mAP_l": "APl"}
DATALOADERS = ("train_dataloader", "val_dataloader", "test_dataloader")
EVALUATORS = ("val_evaluator", "test_evaluator")


def load_config(config: str | Path, cfg_options: dict | None = None, work_dir: str | None = None) -> Config:
    """Read CONFIG, apply --cfg-options, and set work_dir (default ./work_dirs/<config name>)."""
    if not Path(config).is_file():
        raise FileNotFoundError(f"config file {config} does not exist")
    cfg = Config.fromfile(str(config))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get("work_dir") is None:
        cfg.work_dir = osp.join("work_dirs", Path(config).stem)
    cfg.setdefault("config_name", Path(config).stem)
    return cfg


def set_num_classes(model: dict, num_classes: int) -> None:
    """Set the class count of every RoI head (a cascade's list of bbox heads, the mask head)."""
    roi_head = model.get("roi_head", {})
    for key in ("bbox_head", "mask_head"):
        heads = roi_head.get(key)
        for head in heads if isinstance(heads, list) else [heads] if heads else []:
            head["num_classes"] = num_classes


def _leaf_datasets(dataset: dict) -> Iterator[dict]:
    """The CocoDataset configs inside a dataset config (through Repeat/ClassBalanced/Concat wrappers)."""
    if "datasets" in dataset:
        for inner in dataset["datasets"]:
            yield from _leaf_datasets(inner)
    elif "dataset" in dataset:
        yield from _leaf_datasets(dataset["dataset"])
    else:
        yield dataset


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
        for dataset in _leaf_datasets(cfg[key]["dataset"]):
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
        for dataset in _leaf_datasets(cfg[key]["dataset"]):
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


def check_backbone_init(cfg: Config) -> None:
    """A backbone `init_cfg` naming a missing local file fails now, with the fix, not deep inside the runner."""
    init_cfg = cfg.model.get("backbone", {}).get("init_cfg")
    if isinstance(init_cfg, dict) and init_cfg.get("type") == "Pretrained":
        path = str(init_cfg.get("checkpoint", ""))
        if "://" not in path and not Path(path).is_file():
            raise FileNotFoundError(
                f"backbone checkpoint {path!r} (model.backbone.init_cfg.checkpoint) does not exist: pass "
                "--cfg-options model.backbone.init_cfg.checkpoint=PATH, or model.backbone.init_cfg=None to train "
                "the backbone from scratch")


def coco_metrics(raw: dict[str, Any], iou_types: tuple[str, ...] = ("bbox", "segm")) -> dict[str, float]:
    """mmdet CocoMetric output ('coco/bbox_mAP_50', ...) → record names ('bbox_AP50', ...).

    mmdet returns no metrics when a model made no detection at all; that is AP 0 (every ground truth missed),
    so all of `iou_types` are reported as 0.0 then.
    """
    if not any(str(k).startswith("coco/") for k in raw):
        return {f"{kind}_{name}": 0.0 for kind in iou_types for name in COCO_KEYS.values()}
    metrics = {}
    for key, value in raw.items():
        name = key.split("/")[-1]
        for kind in ("bbox", "segm"):
            suffix = name[len(kind) + 1:] if name.startswith(kind + "_") else None
            if suffix in COCO_KEYS:
                metrics[f"{kind}_{COCO_KEYS[suffix]}"] = float(value)
    return metrics


def coco_table(metrics: dict[str, float]) -> str:
    """The COCO table: one row per IoU type (bbox, segm), columns AP AP50 AP75 APs APm APl (in %)."""
    rows = []
    for kind in ("bbox", "segm"):
        if any(k.startswith(kind + "_") for k in metrics):
            rows.append([kind] + [100 * metrics.get(f"{kind}_{c}", float("nan")) for c in COCO_KEYS.values()])
    return tabulate(rows, headers=["", *COCO_KEYS.values()], tablefmt="github", floatfmt=".1f")


def backbone_description(cfg: Config) -> dict[str, Any]:
    """Record `backbone` field from the config: name, source of its initial weights, their sha256."""
    from backbones import file_sha256, read_checkpoint
    from backbones.checkpoint import convert_state_dict

    backbone = cfg.model.get("backbone", {})
    kind = backbone.get("type", "unknown")
    if kind == "TinyViT":
        arch = backbone.get("arch", "5m")
        name = f"tinyvit-{arch}" if isinstance(arch, str) else "tinyvit-custom"
    elif kind == "SwinTransformer" and backbone.get("embed_dims") == 96 and list(backbone.get("depths", [])) == [2, 2, 6, 2]:
        name = "swin-t"
    else:
        name = str(kind).lower()
    init_cfg = backbone.get("init_cfg")
    checkpoint = init_cfg.get("checkpoint") if isinstance(init_cfg, dict) else None
    if not checkpoint or not Path(str(checkpoint)).is_file():
        return {"name": name, "source": "random" if not checkpoint else "pretrained", "checkpoint_sha256": None}
    source = "pretrained"
    if kind == "TinyViT":
        try:
            obj = read_checkpoint(checkpoint)
            source = "distill" if obj.get("format") else convert_state_dict(obj.get("state_dict", obj.get("model", obj)))[1]
        except (ValueError, OSError, RuntimeError):
            source = "pretrained"
    return {"name": name, "source": source, "checkpoint_sha256": file_sha256(checkpoint)}


def write_detection_record(cfg: Config, metrics: dict[str, float], *, split: str, detector_checkpoint: str | None,
                           results_dir: str | None = None, extra_metrics: dict | None = None) -> Path:
    """Write the task-'detection' record of one evaluation; returns its path."""
    scale = None
    for step in cfg.get("test_dataloader", {}).get("dataset", {}).get("pipeline", []):
        if step.get("type") == "Resize":
            scale = step.get("scale")
    setting = {"config": cfg.get("config_name"), "detector": cfg.model.get("type"),
               "detector_checkpoint": Path(detector_checkpoint).name if detector_checkpoint else None,
               "test_scale": list(scale) if scale else None,
               "num_classes": len(cfg.get("test_dataloader", {}).get("dataset", {}).get("metainfo", {}).get("classes", ()))
               or None}
    record = make_record("detection", dataset=cfg.get("dataset_name", "coco"), split=split,
                         metrics={**metrics, **(extra_metrics or {})}, backbone=backbone_description(cfg),
                         setting=setting, config=cfg.to_dict())
    return write_record(record, results_dir)


@HOOKS.register_module()
class MetricHistoryHook(Hook):
    """Keeps every validation's COCO metrics with its iteration: `<work_dir>/metric_history.json` (the AP curve)."""

    priority = "LOW"

    def __init__(self) -> None:
        self.history: list[dict[str, Any]] = []

    def before_train(self, runner) -> None:  # noqa: ANN001 - mmengine's signature
        """On --resume, keep the history written up to the resumed iteration."""
        path = Path(runner.work_dir) / "metric_history.json"
        if path.is_file() and runner.iter > 0:
            self.history = [h for h in json.loads(path.read_text()) if h["iter"] <= runner.iter]

    def after_val_epoch(self, runner, metrics: dict[str, float] | None = None) -> None:  # noqa: ANN001 - mmengine
        if runner.rank != 0:
            return
        self.history.append({"iter": runner.iter, "epoch": runner.epoch, **coco_metrics(metrics or {})})
        atomic_write_text(Path(runner.work_dir) / "metric_history.json", json.dumps(self.history, indent=1) + "\n")


def add_harness_hooks(cfg: Config) -> None:
    """Add `MetricHistoryHook` and `PlainCheckpointHook` to the config's custom hooks (once each)."""
    hooks = list(cfg.get("custom_hooks") or [])
    for name in ("MetricHistoryHook", "PlainCheckpointHook"):
        if not any(h.get("type") == name for h in hooks):
            hooks.append(ConfigDict(type=name))
    cfg.custom_hooks = hooks
