"""The fine-tuning transfer run: data sets → `distill_pretrain.trainer.Trainer` (objective `finetune`) → one record.

- Data: the probe's table of torchvision data sets (`transfer.linear_probe.datasets`, `download=False`), optional
  `classes` (kept and relabelled 0..k-1 in sorted order), seeded subsets; each split is handed to the trainer as an
  `ImageSamples` (PIL RGB, label; unreadable images named) through `Trainer(datasets=...)`.
- Student: built by the trainer from `student.init` = the checkpoint, with the shape `transfer.features.load_backbone`
  read from it (the same spec parsing and strict load as the probes: keys outside the classifier and `allow_keys`
  are refused, naming them, before any training); the classifier is new (`student.reset_classifier`).
- Record: task `finetune`, top-1 / top-5 on the test split, `ci95` (binomial, as the probe), `loss` = mean training
  loss of the last epoch (diagnostic); `backbone` = the pretrained checkpoint's block (as the probes write it) with
  `pretrain` = the pretraining objective for `mae` / `dmae` / `tinymim` checkpoints (the D-MAE table's rows), the
  checkpoint's own `meta.pretrain` kept as `checkpoint_pretrain`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from torch.utils.data import Dataset, Subset

# checkpoints of these objectives are named by the objective in records (the D-MAE table's `pretrain` vocabulary)
OBJECTIVE_PRETRAIN = ("mae", "dmae", "tinymim")


@dataclass
class FinetuneData:
    """The train and test splits as the trainer takes them, their class count and the labels kept."""

    train: Dataset
    test: Dataset
    num_classes: int
    classes: list[int] | None


class _Relabelled:
    """`ImageSamples` loader: sample i of `dataset` with its label mapped through `relabel` (None: unchanged)."""

    def __init__(self, dataset: Dataset, relabel: Mapping[int, int] | None) -> None:
        self.dataset, self.relabel = dataset, relabel

    def __call__(self, index: int) -> tuple[Any, int]:
        image, label = self.dataset[index]
        return image, int(label) if self.relabel is None else self.relabel[int(label)]


def _split(name: str, root: str, split: str, classes: Sequence[int] | None, limit: int | None, seed: int,
           verify_md5: bool) -> tuple[Dataset, Dataset]:
    """(the kept, relabelled subset as `ImageSamples`, the whole split)."""
    from distill_pretrain.data import ImageSamples

    from ..cli_common import seeded_subset
    from ..features import dataset_fingerprint, dataset_targets
    from ..linear_probe.datasets import build_dataset
    full = build_dataset(name, root, split, verify_md5=verify_md5)
    kept: Dataset = full
    if classes is not None:
        keep = np.flatnonzero(np.isin(dataset_targets(full), list(classes)))
        if not len(keep):
            raise ValueError(f"--classes {list(classes)} matches no sample of {name} ({split}) under {root}")
        kept = Subset(full, keep.tolist())
    kept = seeded_subset(kept, limit, seed)
    relabel = {c: i for i, c in enumerate(sorted(classes))} if classes is not None else None
    identity = {"type": name, "split": split, "length": len(kept), "sha256": dataset_fingerprint(kept)}
    return ImageSamples(len(kept), _Relabelled(kept, relabel), identity,
                        describe=lambda i: f"{name} ({split}) sample {i} under {root}"), full


def build_data(name: str, root: str, *, classes: Sequence[int] | None = None, max_train: int | None = None,
               max_test: int | None = None, seed: int = 0, verify_md5: bool = True) -> FinetuneData:
    """Train / test splits of a probe data set (missing files: `DatasetNotFound` naming root and layout)."""
    from ..linear_probe.datasets import num_classes
    kept = sorted({int(c) for c in classes}) if classes else None
    train, full = _split(name, root, "train", kept, max_train, seed, verify_md5)
    test, _ = _split(name, root, "test", kept, max_test, seed + 1, verify_md5)
    return FinetuneData(train, test, len(kept) if kept else num_classes(full), kept)


def student_config(backbone: Any, checkpoint: str | Path | None, resolution: int,
                   allow_keys: Sequence[str] = (), **extra: Any) -> dict[str, Any]:
    """The trainer's `student` section for a loaded `transfer.features.Backbone`: its architecture (a ViT's shape as
    read from the checkpoint) at `resolution`, `init` = the checkpoint with a new classifier; `extra` (e.g.
    drop_path_rate) is added."""
    from distill_pretrain.student import student_meta
    model = backbone.model
    if hasattr(model, "vit_name"):
        meta = student_meta(model, {})
        student = dict(type="timm", arch=model.vit_name, patch_size=meta["patch_size"], depth=meta["depth"],
                       embed_dim=meta["embed_dim"], num_heads=meta["num_heads"])
    elif hasattr(model, "window_sizes"):
        student = dict(type="TinyViT", arch=model.arch)
    else:
        raise ValueError(f"backbone {backbone.name!r}: fine-tuning takes tinyvit-5m|11m|21m and "
                         f"vit-tiny|small|base[/patchN][@SIZE] specs")
    student.update(extra, img_size=int(resolution))
    if checkpoint is not None:
        student.update(init=str(checkpoint), init_allow_keys=list(allow_keys), reset_classifier=True)
    return student


def record_pretrain(block: Mapping[str, Any], checkpoint: str | Path | None, explicit: str | None) -> dict[str, Any]:
    """The record's backbone block with `pretrain` = `explicit`, else the objective of a `mae`/`dmae`/`tinymim`
    checkpoint of ours (its `meta.pretrain` kept as `checkpoint_pretrain`), else as described."""
    block = dict(block)
    if explicit or checkpoint is None:
        return block
    from backbones import CHECKPOINT_FORMAT, read_checkpoint
    obj = read_checkpoint(checkpoint)
    meta = obj.get("meta") or {}
    if obj.get("format") == CHECKPOINT_FORMAT and meta.get("objective") in OBJECTIVE_PRETRAIN:
        block["checkpoint_pretrain"] = block.get("pretrain")
        block["pretrain"] = meta["objective"]
    return block


def run_finetune(trainer_cfg: Mapping[str, Any], work_dir: str | Path, data: FinetuneData, *,
                 resume: bool = False, accept: bool | Sequence[str] = False) -> tuple[Any, dict[str, float] | None]:
    """Train (or resume: WORK_DIR/resume.pth checked against this run first, `accept` as in `Trainer.resume`) and
    evaluate on the test split: (trainer, {top1, top5, n_test, loss}); the result is None when the run stopped
    before its last step (`stop_after_steps`): nothing is measured until it is resumed."""
    from distill_pretrain.trainer import Trainer
    trainer = Trainer(trainer_cfg, work_dir, datasets={"train": data.train, "val": data.test})
    if resume:
        trainer.resume(accept=accept)
    history = trainer.train()
    if trainer.step < int(trainer.schedule["total_steps"]):
        return trainer, None
    metrics = trainer.evaluate(trainer.epoch - 1 if trainer.epoch else None)
    last = [h["loss"] for h in history[-trainer.steps_per_epoch:]]
    return trainer, {**metrics, "n_test": len(data.test), "loss": float(np.mean(last)) if last else float("nan")}


def finetune_record(trainer: Any, result: Mapping[str, float], backbone: Mapping[str, Any], dataset: str,
                    data: FinetuneData, config: Mapping[str, Any]) -> dict[str, Any]:
    """The `finetune` result record of a run (see the module doc)."""
    from contracts.records import make_record

    from ..linear_probe.probe import binomial_ci95
    cfg = trainer.cfg
    metrics = {"top1": result["top1"], "top5": result["top5"], "ci95": binomial_ci95(result["top1"], result["n_test"])}
    if not math.isnan(result["loss"]):
        metrics["loss"] = result["loss"]
    setting = {"method": "finetune", "objective": cfg.mode, "resolution": int(trainer.aug_cfg.img_size),
               "epochs": int(cfg.epochs), "steps": int(trainer.step), "lr": float(trainer.schedule["base_lr"]),
               "base_lr": float(cfg.optim.lr), "base_batch": int(cfg.optim.base_batch),
               "batch_size": int(trainer.total_batch), "layer_decay": cfg.optim.layer_decay,
               "weight_decay": float(cfg.optim.weight_decay), "label_smoothing": cfg.objective.get("label_smoothing"),
               "drop_path_rate": cfg.student.get("drop_path_rate"), "n_train": len(data.train),
               "n_test": int(result["n_test"]), "num_classes": data.num_classes, "classes": data.classes,
               "seed": int(cfg.seed), "device": str(trainer.device), "amp": trainer.amp_description,
               "ema": bool(cfg.ema.decay), "work_dir": str(trainer.work_dir),
               "finetuned_checkpoint": str(trainer.work_dir / "checkpoint.pth")}
    return make_record("finetune", dataset=dataset, split="test", metrics=metrics, backbone=backbone,
                       setting=setting, config=config)
