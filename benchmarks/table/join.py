"""Our numbers beside the paper's: the long frame (`frame.records_frame`) pivoted into one wide table per layout —
`label | ours`, `label | ±95`, `label | paper`, `label | Δ` cells — plus the stand-in, Fig. 5, other and diagnostics
tables, and the paper's own rows of a layout (`paper_reference`)."""
from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

import pandas as pd

from ..paper_numbers import paper_numbers
from .frame import records_frame
from .layouts import FIG5_REFS, LAYOUTS, row_columns


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
    keys = row_columns(layout.row_keys)
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
    fig5 = paper[paper["ref"].isin(FIG5_REFS)]
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


def paper_reference(layout: str, paper: pd.DataFrame | None = None) -> pd.DataFrame:
    """The paper's own rows for a layout (`LAYOUTS` or 'fig5'), pivoted to model × (data set : metric) columns."""
    paper = paper_numbers() if paper is None else paper
    refs = LAYOUTS[layout].refs if layout in LAYOUTS else FIG5_REFS if layout == "fig5" else ()
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
