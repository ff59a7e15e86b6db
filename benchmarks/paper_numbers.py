"""The papers' own numbers, kept as data in `paper_numbers.csv` (one number a row, each with its reference).

Columns: `ref` (e.g. 'TinyViT Tab. 4'), `model` (paper spelling, e.g. 'TinyViT-21M'), `pretrain` (the records'
`backbone.pretrain` vocabulary: `in1k` = trained from scratch on IN-1k, `in1k-distill`, `in21k`, `in21k-clean`,
`in21k-distill`, or the method for the D-MAE rows: `mae`, `dmae`, `mocov3`, ...; empty for architecture facts),
`protocol` (`finetune-in1k`, `linear_probe`, `few_shot`, `cascade_mask_rcnn_1x`, `model` (params/MACs), `v100`
(throughput), `store`, `fast_distill`, `online_distill`, `finetune`, `upernet_ade20k`), `dataset` (the key
`paper_dataset_name` maps record data sets to), `metric` (the records' metric names where one exists: `top1`,
`bbox_ap`, `bbox_ap_s`, `params_m`, `macs_g`, ...), `value`, `resolution`, `shots`, `note`.
Percentages are in percent (84.8, not 0.848; records hold fractions, the tables convert them by their unit).
Sources: /work/shared/seeds (TinyViT paper + supp., the D-MAE poster, TinyMIM supp.); cells garbled in those texts were left out, never guessed (see each row's `note`).
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import pandas as pd

from transfer.dataset_names import find_dataset, normalise

PAPER_CSV = Path(__file__).with_name("paper_numbers.csv")
COLUMNS = ("ref", "model", "pretrain", "protocol", "dataset", "metric", "value", "resolution", "shots", "note")


def load_paper_numbers(path: str | Path = PAPER_CSV) -> pd.DataFrame:
    """The table of paper numbers; a malformed file raises naming the file, row and column."""
    path = Path(path)
    frame = pd.read_csv(path, dtype={"shots": "Int64", "resolution": "Int64"}, keep_default_na=False,
                        na_values={"shots": [""], "resolution": [""], "value": [""]})
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: lacks columns {missing}")
    values = pd.to_numeric(frame["value"], errors="coerce")
    bad = frame.index[values.isna()]
    if len(bad):
        row = bad[0]
        raise ValueError(f"{path}: row {row + 2} ({frame.loc[row, 'ref']}, {frame.loc[row, 'model']}, "
                         f"{frame.loc[row, 'metric']}): value {frame.loc[row, 'value']!r} is not a number")
    frame["value"] = values.astype(float)
    return frame


@lru_cache(maxsize=4)
def _cached(path: str) -> pd.DataFrame:
    return load_paper_numbers(path)


def paper_numbers(path: str | Path = PAPER_CSV) -> pd.DataFrame:
    """Cached copy of `load_paper_numbers` (do not mutate it)."""
    return _cached(str(path))


_MODEL_PATTERNS = (
    (re.compile(r"tiny[_-]?vit[_-]?(5|11|21)m", re.I), lambda m: f"TinyViT-{m.group(1)}M"),
    (re.compile(r"swin[_-]?(t\b|tiny)", re.I), lambda m: "Swin-T"),
    (re.compile(r"deit[_-]?(ti\b|tiny)", re.I), lambda m: "DeiT-Ti"),
    (re.compile(r"deit[_-]?(s\b|small)", re.I), lambda m: "DeiT-S"),
    (re.compile(r"vit[_-]?(tiny|ti\b)", re.I), lambda m: "ViT-Tiny"),
)


def paper_model_name(name: str) -> str:
    """Map a record's backbone name ('tinyvit-5m', 'tiny_vit_21m_224.dist_in22k_ft_in1k') to the paper's spelling."""
    for pattern, spell in _MODEL_PATTERNS:
        match = pattern.search(name)
        if match:
            return spell(match)
    return name


def paper_dataset_name(name: str) -> str:
    """Map a record's data set name ('oxford_pets', 'CIFAR-100', 'fgvc_aircraft') to the paper table's key
    (`transfer.dataset_names`); a data set no paper measured keeps its name, lower case, letters and digits only."""
    entry = find_dataset(name)
    return entry.paper if entry is not None and entry.paper is not None else normalise(name)
