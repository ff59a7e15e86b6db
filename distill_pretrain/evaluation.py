"""Evaluation of a student on a labelled data set and its `distill` result record.

`measure` counts top-1 / top-5 against the labels and the agreement with the teacher over one pass of the eval
loader (every rank its shard, counts summed across ranks); `write_distill_record` writes what it measured as a
validated record (contract 3) naming the weights evaluated. `Trainer.evaluate` drives both.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from backbones import TinyViT, optimize

from .dist import DistInfo

AMP_NAMES = {torch.float16: "fp16", torch.bfloat16: "bf16"}  # autocast dtype → `optimize`'s amp


class EvalDataset(Dataset):
    """(image, label) of a labelled data set through the deterministic eval transform (resize, centre crop)."""

    def __init__(self, dataset: Dataset, train_aug: Any) -> None:
        from .augment import AugmentConfig
        self.dataset = dataset
        self.transform = AugmentConfig.coerce({**train_aug.to_dict(), "mode": "eval"}).build_transform()

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image, label = self.dataset[i]
        if hasattr(image, "convert"):
            image = image.convert("RGB")
        return self.transform(image), -1 if label is None else int(label)


def eval_loader(val_set: Dataset, dist_info: DistInfo, batch_size: int, workers: int, seed: int) -> DataLoader:
    """This rank's shard of `val_set` in order; an own generator: evaluating must not draw from the global RNG the
    training steps use."""
    shard = list(range(dist_info.rank, len(val_set), dist_info.world_size))
    return DataLoader(Subset(val_set, shard), batch_size=batch_size, num_workers=workers,
                      pin_memory=dist_info.device.type == "cuda", persistent_workers=workers > 0,
                      generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def measure(model: nn.Module, loader: DataLoader, device: torch.device, *, teacher: nn.Module | None,
            num_classes: int, world_size: int, amp_dtype: torch.dtype, use_amp: bool, labels_index_classes: bool
            ) -> tuple[dict[str, float], int]:
    """(metrics, images seen): top1/top5 against labels (when they index the classes), and with a teacher its
    top-1 agreement, its top-1 within the student's top-5 and the score of always predicting its most frequent
    class. `model` is put in eval mode; a TinyViT runs as its inference copy (`backbones.optimize`)."""
    model.eval()
    if isinstance(model, TinyViT):
        model = optimize(model, device=device, amp=AMP_NAMES[amp_dtype] if use_amp else None)
    counts = torch.zeros(5, dtype=torch.float64)  # seen, top1, top5, agree top-1, teacher top-1 in top-5
    teacher_votes = torch.zeros(max(num_classes, 1), dtype=torch.float64)
    for images, labels in loader:
        images = images.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
            logits = model(images).float()
            t_top1 = teacher(images).argmax(-1) if teacher is not None else None
        counts[0] += len(labels)
        labels = labels.to(device)
        top5 = logits.topk(min(5, logits.shape[1]), dim=-1).indices
        counts[1] += (top5[:, 0] == labels).sum().item()
        counts[2] += (top5 == labels[:, None]).any(1).sum().item()
        if t_top1 is not None:
            counts[3] += (t_top1 == top5[:, 0]).sum().item()
            counts[4] += (top5 == t_top1[:, None]).any(1).sum().item()
            votes = torch.bincount(t_top1.cpu(), minlength=len(teacher_votes))
            teacher_votes += votes[:len(teacher_votes)].double()
    if world_size > 1:
        dist.all_reduce(counts)
    seen = max(counts[0].item(), 1)
    metrics = {"top1": counts[1].item() / seen, "top5": counts[2].item() / seen} if labels_index_classes else {}
    if teacher is not None:
        if world_size > 1:
            dist.all_reduce(teacher_votes)
        metrics["teacher_agreement_top1"] = counts[3].item() / seen
        metrics["teacher_top1_in_student_top5"] = counts[4].item() / seen
        # what a constant student predicting the teacher's most frequent class would score
        metrics["teacher_majority_baseline"] = teacher_votes.max().item() / seen
    return metrics, int(seen)


def evaluated_file(work_dir: Path, ema: bool, checkpoint: str | Path | None, step: int,
                   init: str | None) -> Path | None:
    """The file holding the weights just evaluated: `checkpoint` when given, else the run's (EMA) checkpoint once a
    step was trained, else the student's init (None: random weights)."""
    if checkpoint is not None:
        return Path(checkpoint)
    path = work_dir / ("checkpoint_ema.pth" if ema else "checkpoint.pth")
    if path.is_file() and step > 0:
        return path
    return Path(init) if init else None


def write_distill_record(cfg: Any, metrics: Mapping[str, float], weights: Path | None, student: str,
                         setting: Mapping[str, Any], records_dir: Path) -> Path:
    """A validated `distill` record of `metrics` for the weights in `weights` (`student` names the model);
    `setting` completes `mode` (the objective's name, by which `benchmarks.table` groups distill records)."""
    from backbones.provenance import describe_checkpoint
    from contracts.records import make_record, write_record
    rec = make_record("distill", dataset=str(cfg.data.val.get("type", "val")), split="val", metrics=metrics,
                      config=cfg.to_dict(), backbone=describe_checkpoint(weights, student),
                      setting={"mode": cfg.mode, **setting})
    return write_record(rec, records_dir)
