"""Result records → a pandas table laid out like TinyViT's Tab. 5 (linear probe | 5-shot | 20-shot | 50-shot), with
a fine-tuning group for `transfer.finetune` records."""
from __future__ import annotations

from typing import Iterable, Mapping

import pandas as pd

from .few_shot.datasets import DISPLAY_NAMES as FEW_SHOT_NAMES
from .linear_probe.datasets import DISPLAY_NAMES as PROBE_NAMES

PROBE_ORDER = ["CIFAR-10", "CIFAR-100", "Flowers", "Cars", "Pets", "Aircraft", "Fashion-MNIST", "ImageFolder"]
FEW_SHOT_ORDER = ["ISIC", "EuroSAT", "CropD", "ChestX", "Fashion-MNIST", "ImageFolder"]
_GROUPS = {"linear_probe": "Linear probe", "finetune": "Fine-tune"}  # column groups of the data-set tasks


def tab5_table(records: Iterable[Mapping]) -> pd.DataFrame:
    """Rows: backbone (name, source, pretrain, method); columns: ('Linear probe' | 'Fine-tune' | 'N-shot', data set);
    cells: top-1 in % (few-shot and fine-tune: 'mean ± ci95')."""
    cells: dict[tuple[str, str, str], dict[tuple[str, str], str]] = {}
    order: list[tuple[str, str]] = []
    for rec in records:
        setting, metrics, bb = rec["setting"], rec["metrics"], rec["backbone"]
        row = (bb["name"], str(bb.get("source")), str(bb.get("pretrain")), setting.get("method", ""))
        if rec["task"] in ("linear_probe", "finetune"):
            col = (_GROUPS[rec["task"]], PROBE_NAMES.get(rec["dataset"], rec["dataset"]))
            value = f"{100 * metrics['top1']:.1f}" + (f" ± {100 * metrics['ci95']:.1f}" if "ci95" in metrics
                                                       and rec["task"] == "finetune" else "")
        elif rec["task"] == "few_shot":
            col = (f"{setting['n_shot']}-shot", FEW_SHOT_NAMES.get(rec["dataset"], rec["dataset"]))
            value = f"{100 * metrics['top1']:.1f} ± {100 * metrics['ci95']:.1f}"
        else:
            continue
        cells.setdefault(row, {})[col] = value
        if col not in order:
            order.append(col)
    groups = [*_GROUPS.values()] + [f"{k}-shot" for k in sorted({int(g.split('-')[0]) for g, _ in order
                                                                  if g not in _GROUPS.values()})]
    names = {group: PROBE_ORDER for group in _GROUPS.values()}
    columns = [c for g in groups for n in (names.get(g, FEW_SHOT_ORDER) + sorted({d for gg, d in order}))
               for c in [(g, n)] if c in order]
    columns = list(dict.fromkeys(columns))
    index = pd.MultiIndex.from_tuples(list(cells), names=["backbone", "source", "pretrain", "method"])
    frame = pd.DataFrame([[cells[r].get(c, "") for c in columns] for r in cells], index=index,
                         columns=pd.MultiIndex.from_tuples(columns) if columns else None)
    return frame
