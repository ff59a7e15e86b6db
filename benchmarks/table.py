"""Paper-shaped comparison tables from result records (contract 3): ours beside the papers' numbers.

    python -m benchmarks.table [--records DIR] [--layout tab4 tab5 tab6 dmae ade20k fig5 distill other | all]
                               [--format md|csv|latex] [--diagnostics] [--out FILE]

Reads records only, never re-runs anything. Each layout has the paper's shape: one row per model + pretraining
(+ source and the setting that distinguishes runs: method, detector, resolution), and every paper column becomes
three cells: ours (± the record's 95% interval when it has one), the paper's number and Δ = ours − paper.
Fractions (the records' unit for accuracies, APs and mIoU, `contracts.records.TASKS`) print as percent; no other
conversion, no unit guessing. Only columns that hold at least one of our numbers are shown; the paper's full table
follows each layout in Markdown.

Join rule: a record's `backbone.name` maps to the paper's model (`paper_model_name`: tinyvit-21m → TinyViT-21M,
vit-tiny → ViT-Tiny), its `backbone.pretrain` must equal the paper row's pretraining (in21k-distill, mae, dmae,
...), its data set maps to the paper's key (`paper_dataset_name`), its metric is the paper row's metric (few-shot
also its `n_shot`; Tab. 4 also its resolution). A record on a data set the paper did not measure (Fashion-MNIST,
mini COCO / VOC) is a stand-in: it is listed in the layout's stand-in section, never beside a paper number.
Fig. 5 joins bytes per sample by K alone (a property of the store format, not of the data).
Diagnostics (`best_c`, `fit_s`, `val_top1`, ...) go to their own table with `--diagnostics`. A layout asked for
by name that has no records says so.
"""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import pandas as pd

from contracts.fileio import atomic_write_text
from contracts.records import DEFAULT_RESULTS_DIR, TASKS, read_records
from transfer.dataset_names import display_name
from transfer.tab5 import TAB5_FEW_SHOT, TAB5_PROBE, TAB5_SHOTS

from .paper_numbers import paper_dataset_name, paper_model_name, paper_numbers

DASH = "—"
ROW = ["model", "pretrain", "source"]


# ------------------------------------------------------------------------------------------------ records
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


# ------------------------------------------------------------------------------------------------ layouts
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
_STORE_TITLE = "Sparse-logit store: storage vs K (TinyViT Fig. 5)"
_OTHER_TITLE = "Other measurements (no paper anchor)"
LAYOUT_NAMES = (*LAYOUTS, "fig5", "other")
_FIG5_REFS = ("TinyViT Fig. 5",)


def _row_label(layout_keys: Sequence[str]) -> list[str]:
    return [*ROW, *layout_keys]


def _cells(value: Any, ci: Any = None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    text = f"{value:.4g}" if abs(value) >= 1000 or abs(value) < 0.01 else f"{value:.1f}" if abs(value) >= 10 \
        else f"{value:.3g}"
    if ci is not None and not (isinstance(ci, float) and math.isnan(ci)):
        text += f" ± {ci:.1f}"
    return text


def _wide(entries: pd.DataFrame, keys: Sequence[str], columns: Sequence[tuple[str, Callable, Callable | None, bool]]
          ) -> pd.DataFrame:
    """Numeric wide table: rows = unique `keys` of `entries`; per column (label, takes(entry), paper(row), compare)
    the cells `label | ours`, `label | ±95`, `label | paper`, `label | Δ` (empty columns dropped); the latest record
    wins where two fill one cell; trace columns (date, commit) last."""
    if entries.empty:
        return pd.DataFrame()
    entries = entries.sort_values("date")
    rows: dict[tuple, dict[str, Any]] = {}
    for _, e in entries.iterrows():
        key = tuple(None if pd.isna(e[k]) else e[k] for k in keys)
        row = rows.setdefault(key, {**dict(zip(keys, key)), "_dates": set(), "_commits": set(), "_machines": set()})
        for label, takes, _, _ in columns:
            if takes(e):
                row[f"{label} | ours"] = e["ours"]
                row[f"{label} | ±95"] = e["ci95"]
                row["_dates"].add(e["date"][:10])
                row["_commits"].add(e["commit"])
                row["_machines"].add(e["machine"])
    out = []
    for row in rows.values():
        if not row["_dates"]:
            continue
        for label, _, paper, compare in columns:
            ours = row.get(f"{label} | ours")
            value = paper(row) if paper is not None and ours is not None else None
            row[f"{label} | paper"] = value
            row[f"{label} | Δ"] = ours - value if compare and value is not None and ours is not None else None
        row["date"] = ", ".join(sorted(row.pop("_dates")))
        row["commit"] = ", ".join(sorted(row.pop("_commits")))
        row["machine"] = "; ".join(sorted(row.pop("_machines")))
        out.append(row)
    if not out:
        return pd.DataFrame()
    frame = pd.DataFrame(out)
    ordered = list(keys)
    for label, _, paper, compare in columns:
        kinds = ("ours", "±95") + (("paper",) if paper is not None else ()) + (("Δ",) if paper and compare else ())
        cells = [f"{label} | {kind}" for kind in kinds]
        if frame.get(cells[0]) is None or frame[cells[0]].isna().all():
            continue
        ordered += [c for c in cells if not (c.endswith("±95") and frame[c].isna().all())]
    return frame[[*ordered, "date", "commit", "machine"]].reset_index(drop=True)


def layout_table(name: str, frame: pd.DataFrame, paper: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(table joined to the paper, stand-in table) for one of `LAYOUTS`."""
    layout = LAYOUTS[name]
    refs = paper[paper["ref"].isin(layout.refs)]
    keys = _row_label(layout.row_keys)
    mine = frame[frame.apply(lambda e: any(c.takes(e) for c in layout.columns), axis=1)] if len(frame) else frame
    if layout.paper_models_only and len(mine):
        mine = mine[mine["model"].isin(set(refs["model"]))]
    columns = [(c.label, c.takes, (lambda row, c=c: c.paper_value(refs, row)) if c.anchored else None, c.compare)
               for c in layout.columns]
    joined = _wide(mine, keys, columns)
    datasets = {c.dataset for c in layout.columns}
    stand_in = frame[frame["task"].isin(layout.tasks) & ~frame["paper_dataset"].isin(datasets)] \
        if None not in datasets and len(frame) else frame.iloc[0:0]
    return joined, _stand_in_table(stand_in, keys)


def _stand_in_table(entries: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """Our numbers on stand-in data sets: rows by data set + keys, one column per (protocol, metric); no paper."""
    if entries.empty:
        return pd.DataFrame()
    labels = list(dict.fromkeys(f"{_protocol(t, s)}{m}" for t, s, m in zip(entries["task"], entries["shots"],
                                                                             entries["metric"])))
    columns = [(label, (lambda e, label=label: f"{_protocol(e['task'], e['shots'])}{e['metric']}" == label), None,
                False) for label in labels]
    return _wide(entries, ["dataset", *keys], columns)


def _protocol(task: str, shots: Any) -> str:
    """Column prefix of a stand-in number: 'probe ', '5-shot ' or ''."""
    if shots is not None and not (isinstance(shots, float) and math.isnan(shots)):
        return f"{int(shots)}-shot "
    return "probe " if task == "linear_probe" else ""


def layout_fig5(frame: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """Store records: bytes per sample vs K beside the paper's (derived from its GB figures, joined by K) and total
    storage beside the paper's where the data set and K are the paper's."""
    fig5 = paper[paper["ref"].isin(_FIG5_REFS)]
    k_of = {d: float(fig5[(fig5["dataset"] == d) & (fig5["metric"] == "K")]["value"].iloc[0])
            for d in fig5["dataset"].unique()}
    entries = frame[frame["task"] == "store"]

    def bytes_paper(row: Mapping[str, Any]) -> float | None:
        for dataset, k in k_of.items():
            if row["K"] is not None and k == float(row["K"]):
                rows = fig5[(fig5["dataset"] == dataset) & (fig5["metric"] == "bytes_per_sample")]
                return float(rows["value"].iloc[0])
        return None

    def storage_paper(row: Mapping[str, Any]) -> float | None:
        if row["K"] is None or k_of.get(row["paper_dataset"]) != float(row["K"]):
            return None
        rows = fig5[(fig5["dataset"] == row["paper_dataset"]) & (fig5["metric"] == "storage_GB")]
        return float(rows["value"].iloc[0])
    columns = [("bytes/sample", lambda e: e["metric"] == "bytes_per_sample", bytes_paper, True),
               ("storage (GiB)", lambda e: e["metric"] == "storage_GiB", storage_paper, True),
               ("bytes vs official", lambda e: e["metric"] == "ratio_vs_official", None, False)]
    return _wide(entries, ["dataset", "paper_dataset", "K", "format"], columns).drop(columns="paper_dataset",
                                                                                      errors="ignore")


def layout_other(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """{task: table} of the tasks no paper table holds (trainer evaluations, harness timings, ...): ours only."""
    placed = {t for layout in LAYOUTS.values() for t in layout.tasks} | {"store"} | \
             {c.task for layout in LAYOUTS.values() for c in layout.columns}
    out = {}
    for task, entries in frame[~frame["task"].isin(placed)].groupby("task", sort=True):
        metrics = list(dict.fromkeys(entries["metric"]))
        columns = [(m, (lambda e, m=m: e["metric"] == m), None, False) for m in metrics]
        out[task] = _wide(entries, ["dataset", "backbone", "source", "pretrain", "mode", "method", "resolution"],
                          columns)
    return out


def diagnostics_table(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The diagnostic metrics (best_c, best_lr, fit_s, val_top1, ...) of every record, one row per record."""
    frame = records_frame(records, diagnostics=True)
    if frame.empty:
        return pd.DataFrame()
    metrics = list(dict.fromkeys(frame["metric"]))
    columns = [(m, (lambda e, m=m: e["metric"] == m), None, False) for m in metrics]
    table = _wide(frame, ["task", "dataset", "model", "pretrain", "source", "method", "shots", "record"], columns)
    return table.drop(columns=[c for c in table.columns if c.endswith("| ±95")])


# ------------------------------------------------------------------------------------------------ building
@dataclass
class Section:
    """One titled table of the output (`kind`: joined, stand-in, paper, other, diagnostics, empty)."""

    layout: str
    kind: str
    title: str
    table: pd.DataFrame
    note: str = ""


def build_tables(records: Sequence[Mapping[str, Any]], layouts: Sequence[str] = ("all",), *,
                 diagnostics: bool = False, paper: pd.DataFrame | None = None) -> list[Section]:
    """The sections for the requested layouts. 'all': every layout that has records (none at all: one empty
    section saying so); a layout named explicitly without records gets an empty section saying so."""
    paper = paper_numbers() if paper is None else paper
    names = list(LAYOUT_NAMES) if "all" in layouts else list(layouts)
    unknown = [n for n in names if n not in LAYOUT_NAMES]
    if unknown:
        raise ValueError(f"unknown layout(s) {unknown}; known: {[*LAYOUT_NAMES, 'all']}")
    frame = records_frame(records)
    sections: list[Section] = []
    for name in names:
        found: list[Section] = []
        if name in LAYOUTS:
            layout = LAYOUTS[name]
            joined, stand_in = layout_table(name, frame, paper)
            if not joined.empty:
                found.append(Section(name, "joined", layout.title, joined, layout.note))
            if not stand_in.empty:
                found.append(Section(name, "stand-in", f"{layout.title}: stand-in data sets (ours only, never "
                                                       f"compared with the paper)", stand_in))
            if found:
                found.append(Section(name, "paper", f"{layout.title}: the paper's numbers",
                                     paper_reference(name, paper)))
        elif name == "fig5":
            table = layout_fig5(frame, paper)
            if not table.empty:
                found.append(Section(name, "joined", _STORE_TITLE, table,
                                     "Paper bytes/sample derived from its GB figures (K×(2+2)+4 bytes)."))
        else:
            found += [Section(name, "other", f"{_OTHER_TITLE}: {task}", table)
                      for task, table in layout_other(frame).items() if not table.empty]
        if not found and "all" not in layouts:
            found.append(Section(name, "empty", _title(name), pd.DataFrame(),
                                 f"no records for layout {name!r} (tasks {', '.join(_tasks(name))})"))
        sections += found
    if diagnostics:
        table = diagnostics_table(records)
        if not table.empty:
            sections.append(Section("diagnostics", "diagnostics", "Diagnostics (model selection, fit times)", table))
    if not sections:
        sections.append(Section("all", "empty", "No records", pd.DataFrame(), "no records to tabulate"))
    return sections


def _title(name: str) -> str:
    return LAYOUTS[name].title if name in LAYOUTS else _STORE_TITLE if name == "fig5" else _OTHER_TITLE


def _tasks(name: str) -> list[str]:
    if name in LAYOUTS:
        return sorted({c.task for c in LAYOUTS[name].columns})
    return ["store"] if name == "fig5" else ["distill", "iteration_time", "probe_speed", "probe_fit", "replay"]


def paper_reference(layout: str, paper: pd.DataFrame | None = None) -> pd.DataFrame:
    """The paper's own rows for a layout (`LAYOUTS` or 'fig5'), pivoted to model × (data set : metric) columns."""
    paper = paper_numbers() if paper is None else paper
    refs = LAYOUTS[layout].refs if layout in LAYOUTS else _FIG5_REFS if layout == "fig5" else ()
    rows = paper[paper["ref"].isin(refs)]
    if rows.empty:
        return pd.DataFrame()
    column = rows["dataset"] + ":" + rows["metric"] + rows["shots"].map(
        lambda s: "" if pd.isna(s) else f"@{int(s)}shot")
    keyed = rows.assign(column=column, resolution=rows["resolution"].astype("string").fillna(""))
    table = pd.pivot_table(keyed, values="value", index=["model", "pretrain", "resolution"], columns="column",
                           aggfunc="first", sort=False).reset_index()
    # architecture facts (params, MACs, V100 images/s) have no pretraining: spread them over the model's rows
    facts = table[table["pretrain"] == ""].set_index(["model", "resolution"])
    trained = table[table["pretrain"] != ""]
    if len(facts) and len(trained):
        filled = trained.set_index(["model", "resolution"]).combine_first(facts.drop(columns="pretrain"))
        lone = facts.index.difference(filled.index)
        table = pd.concat([filled.reset_index(), facts.loc[lone].reset_index()], ignore_index=True)
    columns = ["model", "pretrain", "resolution", *[c for c in table.columns if ":" in str(c)]]
    return table[columns].reset_index(drop=True)


# ------------------------------------------------------------------------------------------------ rendering
def _display(table: pd.DataFrame) -> pd.DataFrame:
    """Strings for Markdown / LaTeX: `ours ± ci` in one cell, '—' for no number, signed Δ."""
    shown = pd.DataFrame(index=table.index)
    for col in table.columns:
        if str(col).endswith("| ±95"):
            continue
        if str(col).endswith("| ours"):
            ci = table.get(str(col).replace("| ours", "| ±95"))
            shown[col] = [_cells(v, c) for v, c in zip(table[col], ci if ci is not None else [None] * len(table))]
        elif str(col).endswith("| Δ"):
            shown[col] = [DASH if v is None or pd.isna(v) else f"{v:+.1f}" if abs(v) >= 0.1 else f"{v:+.2g}"
                          for v in table[col]]
        elif " | " not in str(col) and ":" not in str(col) and pd.api.types.is_float_dtype(table[col]):  # keys
            shown[col] = [DASH if pd.isna(v) else str(int(v)) if float(v).is_integer() else str(v) for v in table[col]]
        elif pd.api.types.is_float_dtype(table[col]) or str(col).endswith("| paper") or ":" in str(col):
            shown[col] = [_cells(v) if isinstance(v, (int, float)) else DASH for v in table[col]]
        else:
            shown[col] = [DASH if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
                          for v in table[col]]
    return shown


_TEX = (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("#", r"\#"), ("&", r"\&"), ("^", r"\^{}"),
        ("±", r"$\pm$"), ("Δ", r"$\Delta$"), ("—", "--"), ("§", r"\S{}"), ("²", r"$^2$"))


def _tex(text: str) -> str:
    for char, escaped in _TEX:
        text = text.replace(char, escaped)
    return text


def _latex(section: Section) -> str:
    """A booktabs table; `X | ours`, `X | paper`, `X | Δ` become a multicolumn `X` over ours / paper / Δ."""
    shown = _display(section.table)
    shown.columns = pd.MultiIndex.from_tuples([tuple(_tex(p) for p in (str(c).split(" | ") if " | " in str(c)
                                                                         else (str(c), ""))) for c in shown.columns])
    shown = shown.map(_tex)
    return shown.to_latex(index=False, caption=_tex(section.title), label=f"tab:{section.layout}-{section.kind}",
                          multicolumn=True, multicolumn_format="c", column_format="l" * len(shown.columns))


def render(sections: Sequence[Section], fmt: str = "md") -> str:
    """Markdown (titled tables, notes, the paper's table under each layout), one CSV (numbers, with `layout` and
    `section` columns) or LaTeX (booktabs, one table environment per section)."""
    if fmt == "csv":
        frames = [s.table.round(6).assign(layout=s.layout, section=s.kind) for s in sections if not s.table.empty]
        return pd.concat(frames, ignore_index=True).to_csv(index=False) if frames else ""
    parts = []
    for section in sections:
        if fmt == "md":
            head = f"## {section.title}" if section.kind != "paper" else f"#### {section.title}"
            shown = _display(section.table).rename(columns=lambda c: str(c).replace(" | ", " "))
            body = shown.to_markdown(index=False) if not section.table.empty else f"_{section.note}_"
            note = f"\n\n_{section.note}_" if section.note and not section.table.empty else ""
            parts.append(f"{head}\n\n{body}{note}")
        elif fmt == "latex":
            parts.append(f"% {section.title}: {section.note}" if section.table.empty else _latex(section))
        else:
            raise ValueError(f"unknown format {fmt!r}; use md, csv or latex")
    return "\n\n".join(parts) + "\n"


def main(argv: Sequence[str] | None = None) -> str:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.table", description=__doc__.splitlines()[0])
    parser.add_argument("--records", default=str(DEFAULT_RESULTS_DIR), help="results directory (recursive)")
    parser.add_argument("--format", default="md", choices=["md", "csv", "latex"])
    parser.add_argument("--layout", nargs="+", default=["all"], choices=[*LAYOUT_NAMES, "all"])
    parser.add_argument("--diagnostics", action="store_true", help="add the diagnostics table (best_c, fit_s, ...)")
    parser.add_argument("--out", default=None, help="write here (atomically) as well as printing")
    args = parser.parse_args(argv)
    records_dir = Path(args.records)
    if not records_dir.is_dir():
        parser.error(f"--records {records_dir}: no such directory")
    text = render(build_tables(read_records(records_dir), args.layout, diagnostics=args.diagnostics), args.format)
    if args.out:
        atomic_write_text(args.out, text)
    sys.stdout.write(text)
    return text


if __name__ == "__main__":
    main()
