"""The records the dense harness writes: the backbone a model was fine-tuned from, the setting, the metrics."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from mmengine.config import Config

from backbones.provenance import describe_checkpoint
from contracts.fileio import file_sha256
from contracts.records import make_record, write_record
from .config import backbone_checkpoint
from .task import DenseTask

# the block describing the backbone's initial weights, stored in the config (hence in every checkpoint's meta)
BACKBONE_KEY = "backbone_record"


def backbone_name(cfg: Config) -> str:
    """`backbone_name` from the config, else 'tinyvit-<arch>' / 'swin-t' / the type in lower case."""
    if cfg.get("backbone_name"):
        return str(cfg.backbone_name)
    backbone = cfg.model.get("backbone", {})
    kind = backbone.get("type", "unknown")
    if kind == "TinyViT":
        arch = backbone.get("arch", "5m")
        return f"tinyvit-{arch}" if isinstance(arch, str) else "tinyvit-custom"
    if kind == "SwinTransformer" and backbone.get("embed_dims") == 96 and list(backbone.get("depths", [])) == [2, 2, 6, 2]:
        return "swin-t"
    return str(kind).lower()


def describe_backbone(cfg: Config, pretrain: str | None = None) -> dict[str, Any]:
    """The record's backbone block for the weights `model.backbone.init_cfg` loads (random when none)."""
    path = backbone_checkpoint(cfg)
    init_cfg = cfg.model.backbone.get("init_cfg") or {}
    return describe_checkpoint(path, backbone_name(cfg), pretrain=pretrain,
                               allow_pickle=bool(init_cfg.get("allow_pickle", False)))


def trained_from(meta: dict[str, Any], pretrain: str | None = None) -> dict[str, Any] | None:
    """The backbone block of the weights a whole-model checkpoint was fine-tuned from, read from its meta: the
    block the harness stored at training time, else the backbone checkpoint named by the stored config (when that
    file is here). None when the meta says neither."""
    text = meta.get("cfg")
    if not isinstance(text, str):
        return None
    try:
        cfg = Config.fromstring(text, file_format=".py")
    except (SyntaxError, ImportError, KeyError, ValueError, TypeError):
        return None  # a config this checkout cannot read says nothing usable; the caller falls back
    if cfg.get(BACKBONE_KEY):
        block = cfg[BACKBONE_KEY].to_dict()
        return {**block, "pretrain": pretrain} if pretrain and block.get("source") != "random" else block
    path = backbone_checkpoint(cfg)
    if path is not None and Path(path).is_file():
        return describe_backbone(cfg, pretrain)
    return None


def _setting(task: DenseTask, cfg: Config, checkpoint: str | None, seed: int | None) -> dict[str, Any]:
    """What identifies the evaluated model (training settings live in the config, hashed as config_sha256), and
    the seed it was trained with."""
    setting = {
        "config": cfg.get("config_name"),
        task.model_word: cfg.model.get("type"),
        f"{task.model_word}_checkpoint": Path(checkpoint).name if checkpoint else None,
        f"{task.model_word}_checkpoint_sha256": file_sha256(checkpoint) if checkpoint else None,
        "launcher": cfg.get("launcher"),
        "seed": seed,
    }
    return {**setting, **task.setting(cfg)}


def write_dense_record(task: DenseTask, cfg: Config, metrics: dict[str, Any], *, split: str,
                       backbone: dict[str, Any], checkpoint: str | None, results_dir: str | None,
                       seed: int | None = None, curve: list[dict[str, Any]] | None = None) -> Path:
    """Write the record of one evaluation (`metrics` already in record names and fractions) of a model trained
    with `seed` (MMEngine's, given or drawn; a checkpoint's meta keeps it); returns its path."""
    record_metrics = {**metrics, **({"curve": curve} if curve else {})}
    record = make_record(task.name, dataset=cfg.get("dataset_name") or task.default_dataset, split=split,
                         metrics=record_metrics, backbone=backbone, setting=_setting(task, cfg, checkpoint, seed),
                         config=cfg.to_dict())
    return write_record(record, results_dir)
