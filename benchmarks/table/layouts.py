"""The paper tables' shapes: each layout's columns (which of our numbers fill them, which paper number stands
beside them), the tasks whose stand-in records it lists, and the setting fields that split its rows."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import pandas as pd

from transfer.dataset_names import display_name
from transfer.tab5 import TAB5_FEW_SHOT, TAB5_PROBE, TAB5_SHOTS

from ..paper_numbers import paper_dataset_name

ROW = ["model", "pretrain", "source"]


def _same(a: Any, b: Any) -> bool:
    """Equal as join keys: both missing, equal numbers (5 == 5.0) or equal strings."""
    missing = [x is None or x is pd.NA or (isinstance(x, float) and math.isnan(x)) or x == "" for x in (a, b)]
    if any(missing):
        return all(missing)
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return str(a) == str(b)


@dataclass(frozen=True)
class Column:
    """One paper column: which of our numbers fill it and which paper number stands beside them.

    `dataset` None: any data set (architecture facts); `facts`: the paper row has no pretraining (params, MACs,
    V100 throughput); `join`: the row fields that must equal the paper row's; `compare` False: shown beside ours
    without a Δ (other hardware / teacher); `anchored` False: the paper has no such number (ours only)."""

    label: str
    task: str
    metric: str
    dataset: str | None = None
    shots: int | None = None
    paper_metric: str | None = None
    facts: bool = False
    join: tuple[str, ...] = ("model", "pretrain")
    compare: bool = True
    anchored: bool = True

    def takes(self, entry: Mapping[str, Any]) -> bool:
        return (entry["task"] == self.task and entry["metric"] == self.metric
                and (self.dataset is None or entry["paper_dataset"] == self.dataset)
                and (self.shots is None or _same(entry["shots"], self.shots)))

    def paper_value(self, paper: pd.DataFrame, row: Mapping[str, Any]) -> float | None:
        rows = paper[paper["metric"] == (self.paper_metric or self.metric)]
        if self.dataset is not None:
            rows = rows[rows["dataset"] == self.dataset]
        rows = rows[rows["shots"].isna()] if self.shots is None else rows[rows["shots"] == self.shots]
        if self.facts:
            rows = rows[rows["pretrain"] == ""]
        for key in self.join:
            rows = rows[rows[key].map(lambda v, want=row[key]: _same(v, want)).astype(bool)]
        return float(rows["value"].iloc[0]) if len(rows) else None


@dataclass(frozen=True)
class Layout:
    """A paper table: its title, the paper references it draws on, the columns, the tasks whose stand-in
    records it lists, the setting fields that split rows, and whether only the paper's own models are shown."""

    title: str
    refs: tuple[str, ...]
    columns: tuple[Column, ...]
    tasks: tuple[str, ...]
    row_keys: tuple[str, ...] = ()
    paper_models_only: bool = False
    note: str = ""


_COCO = (("bbox_ap", "AP^b"), ("bbox_ap50", "AP^b_50"), ("bbox_ap75", "AP^b_75"), ("bbox_ap_s", "AP^b_S"),
         ("bbox_ap_m", "AP^b_M"), ("bbox_ap_l", "AP^b_L"), ("segm_ap", "AP^m"))
_DMAE = ("flowers102", "oxford_pets", "fgvc_aircraft", "stanford_cars", "cifar100", "inat18")

LAYOUTS: dict[str, Layout] = {
    "tab4": Layout(
        "Model size, MACs, throughput and IN-1k top-1 (TinyViT Tab. 4)", ("TinyViT Tab. 4",),
        (Column("#Params (M)", "throughput", "params_m", facts=True, join=("model", "resolution")),
         Column("MACs (G)", "throughput", "macs_g", facts=True, join=("model", "resolution")),
         Column("Throughput (img/s; paper: V100)", "throughput", "ours_img_s", paper_metric="images_per_s",
                facts=True, join=("model", "resolution"), compare=False),
         Column("timm (img/s)", "throughput", "timm_img_s", anchored=False),
         Column("IN-1k top-1", "finetune", "top1", dataset="imagenet-1k", join=("model", "pretrain", "resolution")),
         Column("IN-1k top-5", "finetune", "top5", dataset="imagenet-1k", join=("model", "pretrain", "resolution"))),
        ("throughput",), row_keys=("resolution",),
        note="Throughput: ours on this machine, the paper's on a V100 (no Δ: other hardware)."),
    "tab5": Layout(
        "Linear probe and few-shot transfer (TinyViT Tab. 5)", ("TinyViT Tab. 5",),
        (*(Column(f"{display_name(d)} (probe)", "linear_probe", "top1", dataset=paper_dataset_name(d))
           for d in TAB5_PROBE),
         *(Column(f"{display_name(d)} {k}-shot", "few_shot", "top1", dataset=paper_dataset_name(d), shots=k)
           for k in TAB5_SHOTS for d in TAB5_FEW_SHOT)),
        ("linear_probe", "few_shot"), row_keys=("method",)),
    "tab6": Layout(
        "COCO detection and instance segmentation, Cascade Mask R-CNN (TinyViT Tab. 6)", ("TinyViT Tab. 6",),
        tuple(Column(label, "detection", metric, dataset="coco") for metric, label in _COCO),
        ("detection",), row_keys=("detector",)),
    "dmae": Layout(
        "D-MAE transfer (ViT-Tiny, full fine-tuning; D-MAE poster)", ("D-MAE poster transfer table",),
        (*(Column(display_name(d), "finetune", "top1", dataset=paper_dataset_name(d)) for d in _DMAE),
         Column("COCO AP^b", "detection", "bbox_ap", dataset="coco"),
         Column("COCO AP^m", "detection", "segm_ap", dataset="coco")),
        ("finetune",), paper_models_only=True),
    "ade20k": Layout(
        "ADE20K semantic segmentation, UperNet 512² (TinyMIM protocol)", ("TinyMIM supp. Tab. 3",),
        (Column("mIoU", "segmentation", "miou", dataset="ade20k"), Column("mAcc", "segmentation", "macc",
                                                                            dataset="ade20k"),
         Column("aAcc", "segmentation", "aacc", dataset="ade20k")),
        ("segmentation",), row_keys=("resolution",),
        note="The seed text gives TinyMIM's UperNet protocol (512² crops, 160k iterations, batch 16, lr 1e-4), "
             "not its mIoU numbers: the paper cells stay empty rather than guessed."),
    "distill": Layout(
        "Distillation cost (TinyViT supp. §D)", ("TinyViT supp. §D",),
        (Column("scratch s/step", "distill_speed", "scratch_step_s"),
         Column("stored s/step", "distill_speed", "stored_step_s"),
         Column("online s/step", "distill_speed", "online_step_s"),
         Column("stored/scratch", "distill_speed", "stored_over_scratch"),
         Column("online/stored", "distill_speed", "online_over_stored", join=(), compare=False)),
        ("distill_speed",), row_keys=("resolution",),
        note="Paper: Florence teacher on V100s, GPU-days (online / stored-logit training = 330.9 / 140.0); ours: "
             "seconds per step on this machine and teacher, so no Δ."),
}
STORE_TITLE = "Sparse-logit store: storage vs K (TinyViT Fig. 5)"
OTHER_TITLE = "Other measurements (no paper anchor)"
LAYOUT_NAMES = (*LAYOUTS, "fig5", "other")
FIG5_REFS = ("TinyViT Fig. 5",)


def row_columns(layout_keys: Sequence[str]) -> list[str]:
    """The row-key columns of a layout: model, pretraining, source, then the layout's setting fields."""
    return [*ROW, *layout_keys]


def layout_title(name: str) -> str:
    """The title of a layout name (`LAYOUT_NAMES`)."""
    return LAYOUTS[name].title if name in LAYOUTS else STORE_TITLE if name == "fig5" else OTHER_TITLE


def layout_tasks(name: str) -> list[str]:
    """The record tasks a layout name (`LAYOUT_NAMES`) draws on."""
    if name in LAYOUTS:
        return sorted({c.task for c in LAYOUTS[name].columns})
    return ["store"] if name == "fig5" else ["distill", "iteration_time", "probe_speed", "probe_fit", "replay"]
