"""Result records → one long frame: a row per (record, numeric metric) in display units, with the record's identity
(model, pretraining, data set, setting keys) and the paper keys (`benchmarks.paper_numbers`) the layouts join on."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd

from contracts.records import TASKS

from ..paper_numbers import paper_dataset_name, paper_model_name

DASH = "—"  # no value


def _setting(setting: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        if setting.get(key) is not None:
            return setting[key]
    return None


def _scale(task: str, metric: str) -> float:
    """Display factor: fractions print as percent, every other unit as recorded."""
    return 100.0 if TASKS[task].metrics[metric].unit == "fraction" else 1.0


def records_frame(records: Iterable[Mapping[str, Any]], diagnostics: bool = False) -> pd.DataFrame:
    """One row per (record, numeric metric) in display units (fractions → %), with the record's identity and the
    95% interval of the same record's main metric (`ci95`) beside each accuracy. `diagnostics` selects the
    diagnostic metrics instead of the main ones."""
    rows = []
    for rec in records:
        task, backbone, setting = rec["task"], rec.get("backbone") or {}, rec["setting"]
        schema = TASKS[task].metrics
        resolution = _setting(setting, "resolution", "img_size", "input_size", "crop_size", "size")
        if isinstance(resolution, (list, tuple)):
            resolution = resolution[0]
        ci = rec["metrics"].get("ci95")
        base = {
            "task": task, "dataset": rec["dataset"], "paper_dataset": paper_dataset_name(rec["dataset"]),
            "split": rec["split"], "backbone": backbone.get("name", DASH), "source": backbone.get("source", DASH),
            "model": paper_model_name(backbone.get("name", DASH)), "pretrain": backbone.get("pretrain", DASH),
            "resolution": resolution, "shots": _setting(setting, "n_shot", "shots"),
            "method": _setting(setting, "method"), "detector": _setting(setting, "detector"),
            "K": _setting(setting, "K", "k", "topk"), "format": _setting(setting, "format"),
            "mode": _setting(setting, "mode"), "setting": setting, "machine": rec["machine"],
            "date": str(rec["date"]), "commit": rec["git_commit"], "record": Path(rec.get("_path", "")).name,
        }
        for metric, value in rec["metrics"].items():
            spec = schema[metric]
            if spec.diagnostic != diagnostics or metric == "ci95" or spec.unit not in ("fraction", "number", "count"):
                continue
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            scale = _scale(task, metric)
            rows.append({**base, "metric": metric, "ours": float(value) * scale,
                         "ci95": float(ci) * scale if ci is not None and metric == "top1" else None})
    columns = ["task", "dataset", "paper_dataset", "split", "backbone", "source", "model", "pretrain", "resolution",
               "shots", "method", "detector", "K", "format", "mode", "setting", "machine", "date", "commit",
               "record", "metric", "ours", "ci95"]
    return pd.DataFrame(rows, columns=columns)
