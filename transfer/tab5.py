"""TinyViT's Tab. 5 (linear probe | 5-shot | 20-shot | 50-shot): its data sets and shots in the paper's order, and
our records in its shape (`tab5_table`, ours only, with a fine-tuning group for `transfer.finetune` records: what
the transfer commands print). `benchmarks.table` builds its paper-joined 'tab5' layout from the same constants."""
from __future__ import annotations

from typing import Iterable, Mapping

import pandas as pd

from .dataset_names import display_name

TAB5_PROBE = ("cifar10", "cifar100", "flowers102", "stanford_cars", "oxford_pets")
TAB5_FEW_SHOT = ("isic2018", "eurosat", "cropdisease", "chestx")
TAB5_SHOTS = (5, 20, 50)
# column order of `tab5_table`: the paper's data sets, then our harnesses' others
PROBE_ORDER = [display_name(d) for d in (*TAB5_PROBE, "fgvc_aircraft", "fashion_mnist", "imagefolder")]
FEW_SHOT_ORDER = [display_name(d) for d in (*TAB5_FEW_SHOT, "fashion_mnist", "imagefolder")]
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
            col = (_GROUPS[rec["task"]], display_name(rec["dataset"]))
            value = f"{100 * metrics['top1']:.1f}" + (f" ± {100 * metrics['ci95']:.1f}" if "ci95" in metrics
                                                       and rec["task"] == "finetune" else "")
        elif rec["task"] == "few_shot":
            col = (f"{setting['n_shot']}-shot", display_name(rec["dataset"]))
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
