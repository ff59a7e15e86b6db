"""Comparison tables: result records (contract 3) joined with the paper's own numbers, in the paper's layouts.

    python -m benchmarks.table [--records DIR] [--format md|csv|latex] [--layout tab4|tab5|tab6|seg|store|distill|
                               speed|paper|all] [--out FILE]

Reads only records (never re-runs anything). Every row carries `ours`, `paper`, `delta` (ours − paper where the
two measure the same thing, '—' otherwise), the paper reference, and the record's machine, date and commit.

Metric names expected per task (aliases in `METRIC_ALIASES` are accepted; unknown metrics are still listed):
- linear_probe: `top1` (+ optional `ci95`); setting `shots`/`ways` unused. Fractions (≤ 1) are shown as percent.
- few_shot: `top1`, `ci95`; setting `shots`, `ways`, `episodes`.
- detection: `bbox_AP`, `bbox_AP50`, `bbox_AP75`, `bbox_APs/APm/APl` and `segm_*` alike (mmdet's `coco/bbox_mAP`,
  `coco/bbox_mAP_50`, `coco/bbox_mAP_s`, ... are mapped); fractions are shown as percent.
- segmentation: `mIoU`, `mAcc`, `aAcc` (mmseg's percent values); per-class `IoU.<class>`/`Acc.<class>` are left
  out of the table.
- throughput / backbone: `params_m`, `macs_g`, `images_per_s` (alias `ours_img_s`), `timm_images_per_s`
  (alias `timm_img_s`), `speedup_vs_timm`; setting `img_size`, `batch`, `device`, `amp`.
- store: `bytes_per_sample`, `storage_GiB` (whole data set × epochs), any rates; setting (or metric) `K`, `format`.
- distill_speed / distill / replay: per-step seconds (`stored_step_s`, `online_step_s`, `scratch_step_s`) and
  ratios (`online_over_stored` ↔ supp. §D training-only 2.36, `online_over_fast_total` ↔ 1.42 with logit saving,
  `online_over_scratch` ↔ Sec. 5.2's 2.4, `saving_pct`); any other numeric metric is listed.
- iteration_time / probe_speed: any numeric metrics (listed, no paper anchor).
"""
from __future__ import annotations

import argparse
import math
import re
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import pandas as pd

from .paper_numbers import paper_dataset_name, paper_model_name, paper_numbers, record_pretrain
from contracts.records import DEFAULT_RESULTS_DIR, read_records
from contracts.fileio import atomic_write_text

DASH = "—"
TRACE = ["machine", "date", "commit"]
METRIC_ALIASES = {
    "params_m": "params_M", "params_millions": "params_M", "macs_g": "macs_G", "gmacs": "macs_G",
    "ours_img_s": "images_per_s", "img_s": "images_per_s", "throughput": "images_per_s",
    "timm_img_s": "timm_images_per_s", "ratio_vs_timm": "speedup_vs_timm",
    "accuracy": "top1", "acc": "top1", "top1_acc": "top1", "top1_ci95": "ci95",
    "miou": "mIoU", "macc": "mAcc", "aacc": "aAcc", "bytes_per_record": "bytes_per_sample",
}
RAW_SCALES = {"params": ("params_M", 1e-6), "macs": ("macs_G", 1e-9)}
PERCENT = re.compile(r"^(top1|top5|ci95|(bbox|segm)_AP.*)$")
_COCO = re.compile(r"^(?:coco/)?(bbox|segm)_mAP(?:_(50|75|s|m|l))?$")


def canonical_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Numeric metrics under the names above; accuracies/APs given as fractions become percent."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            continue
        name = key.split("/", 1)[1] if key.startswith(("coco/", "ade20k/", "val/")) and not _COCO.match(key) else key
        coco = _COCO.match(name)
        if coco:
            suffix = coco.group(2) or ""
            name = f"{coco.group(1)}_AP{suffix}"
        elif name.lower() in RAW_SCALES and value > 1e4:
            name, scale = RAW_SCALES[name.lower()]
            value = value * scale
        else:
            name = METRIC_ALIASES.get(name.lower(), METRIC_ALIASES.get(name, name))
        out[name] = float(value)
    percents = [v for k, v in out.items() if PERCENT.match(k)]
    if percents and all(abs(v) <= 1.0 for v in percents):
        out = {k: v * 100.0 if PERCENT.match(k) else v for k, v in out.items()}
    return out


def _setting(rec: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        if rec["setting"].get(key) is not None:
            return rec["setting"][key]
    return None


def records_frame(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per (record, metric): the record's identity, the canonical metric and its value, the trace."""
    rows = []
    for rec in records:
        backbone = rec.get("backbone") or {}
        name = str(backbone.get("name", "?"))
        resolution = _setting(rec, "img_size", "resolution", "input_size", "crop_size")
        if isinstance(resolution, (list, tuple)):
            resolution = resolution[0]
        base = {
            "task": rec["task"], "dataset": rec["dataset"], "split": rec["split"], "backbone": name,
            "model": paper_model_name(name), "source": backbone.get("source"),
            "pretrain": record_pretrain(backbone, rec["setting"]),
            "checkpoint": (backbone.get("checkpoint_sha256") or "")[:12] or None,
            "resolution": resolution, "shots": _setting(rec, "shots", "n_shot", "k_shot"),
            "K": _setting(rec, "K", "k", "topk"), "setting": rec["setting"],
            "machine": rec["machine"], "date": str(rec["date"])[:10], "commit": rec["git_commit"],
            "record": Path(rec.get("_path", "")).name,
        }
        metrics = canonical_metrics(rec["metrics"])
        if base["K"] is None and "K" in metrics:
            base["K"] = metrics.pop("K")
        for metric, value in metrics.items():
            rows.append({**base, "metric": metric, "ours": value})
    columns = ["task", "dataset", "split", "backbone", "model", "source", "pretrain", "checkpoint", "resolution",
               "shots", "K", "setting", "machine", "date", "commit", "record", "metric", "ours"]
    return pd.DataFrame(rows, columns=columns)


def _paper_value(paper: pd.DataFrame, **match: Any) -> tuple[float | None, str | None]:
    rows = paper
    for key, value in match.items():
        if value is None:
            rows = rows[rows[key].isna() | (rows[key] == "")] if key in ("shots", "resolution", "pretrain") else rows
            continue
        rows = rows[rows[key] == value]
    if rows.empty:
        return None, None
    return float(rows["value"].iloc[0]), str(rows["ref"].iloc[0])


def _finish(frame: pd.DataFrame, keys: Sequence[str], lookup: Callable[[pd.Series], tuple], comparable:
            Callable[[pd.Series], bool]) -> pd.DataFrame:
    """Add paper/delta/ref columns via `lookup(row) -> (value, ref)` and keep the layout's columns."""
    if frame.empty:
        return pd.DataFrame(columns=[*keys, "metric", "ours", "paper", "delta", "paper_ref", *TRACE])
    found = frame.apply(lambda r: lookup(r), axis=1, result_type="expand")
    frame = frame.assign(paper=found[0], paper_ref=found[1])
    frame["delta"] = [o - p if p is not None and not pd.isna(p) and comparable(r) else None
                      for o, p, (_, r) in zip(frame["ours"], frame["paper"], frame.iterrows())]
    return frame[[*keys, "metric", "ours", "paper", "delta", "paper_ref", *TRACE]].reset_index(drop=True)


def layout_tab4(frame: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """Throughput / model size (TinyViT Tab. 4): params and MACs vs the paper, images/s vs timm and V100."""
    rows = frame[frame["task"].isin(["throughput", "backbone"])].copy()
    rows["resolution"] = rows["resolution"].fillna(224).astype(int)
    rows["device"] = [s.get("device") for s in rows["setting"]]
    rows["batch"] = [s.get("batch") for s in rows["setting"]]
    rows["amp"] = [s.get("amp") for s in rows["setting"]]

    def lookup(r: pd.Series) -> tuple:
        metric = {"params_M": "params_M", "macs_G": "macs_G", "images_per_s": "images_per_s"}.get(r["metric"])
        if metric is None:
            return None, None
        return _paper_value(paper[paper["ref"] == "TinyViT Tab. 4"], model=r["model"], metric=metric,
                            resolution=int(r["resolution"]))

    def comparable(r: pd.Series) -> bool:  # images/s only compare on the paper's GPU
        return r["metric"] != "images_per_s" or "V100" in str(r["machine"])
    return _finish(rows, ["model", "backbone", "resolution", "device", "batch", "amp"], lookup, comparable)


def layout_tab5(frame: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """Linear probe and few-shot (TinyViT Tab. 5): top-1 % per data set (and shots), ± ci95 where given."""
    rows = frame[frame["task"].isin(["linear_probe", "few_shot"])]
    ci = rows[rows["metric"] == "ci95"].set_index("record")["ours"]
    rows = rows[rows["metric"] != "ci95"].copy()
    rows["ci95"] = rows["record"].map(ci)
    rows["shots"] = rows["shots"].astype("Int64") if len(rows) else rows["shots"]

    def lookup(r: pd.Series) -> tuple:
        if r["pretrain"] is None:
            return None, None
        shots = None if pd.isna(r["shots"]) or r["task"] == "linear_probe" else int(r["shots"])
        return _paper_value(paper[paper["ref"] == "TinyViT Tab. 5"], model=r["model"], pretrain=r["pretrain"],
                            protocol=r["task"], dataset=paper_dataset_name(r["dataset"]), metric=r["metric"],
                            shots=shots)
    return _finish(rows, ["task", "dataset", "shots", "backbone", "source", "pretrain", "ci95"], lookup,
                   lambda r: True)


def layout_tab6(frame: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """Detection / instance segmentation (TinyViT Tab. 6, Cascade Mask R-CNN on COCO): AP in percent."""
    rows = frame[frame["task"] == "detection"].copy()
    rows["detector"] = [s.get("detector", s.get("model")) for s in rows["setting"]]

    def lookup(r: pd.Series) -> tuple:
        if r["pretrain"] is None or paper_dataset_name(r["dataset"]) != "coco":
            return None, None
        return _paper_value(paper[paper["ref"] == "TinyViT Tab. 6"], model=r["model"], pretrain=r["pretrain"],
                            metric=r["metric"])
    return _finish(rows, ["dataset", "split", "detector", "backbone", "source", "pretrain"], lookup, lambda r: True)


def layout_seg(frame: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """Semantic segmentation (UperNet; the seeds give TinyMIM's ADE20K protocol but no mIoU): mIoU/mAcc/aAcc."""
    rows = frame[(frame["task"] == "segmentation") & ~frame["metric"].str.contains(".", regex=False)].copy()
    rows["crop"] = rows["resolution"]
    return _finish(rows, ["dataset", "split", "backbone", "source", "crop"], lambda r: (None, None), lambda r: True)


def layout_store(frame: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """Logit store (TinyViT Fig. 5): bytes/sample vs K (the paper's derived from its GB figures, any data set),
    total storage for the paper's data set and K, read/write rates."""
    rows = frame[frame["task"] == "store"].copy()
    rows["format"] = [s.get("format") for s in rows["setting"]]
    fig5 = paper[paper["ref"] == "TinyViT Fig. 5"]
    k_of = {d: float(fig5[(fig5["dataset"] == d) & (fig5["metric"] == "K")]["value"].iloc[0])
            for d in fig5["dataset"].unique()}

    def lookup(r: pd.Series) -> tuple:
        if pd.isna(r["K"]):
            return None, None
        if r["metric"] == "bytes_per_sample":
            for dataset, k in k_of.items():
                if k == float(r["K"]):
                    return _paper_value(fig5, dataset=dataset, metric="bytes_per_sample")
        if r["metric"] in ("storage_GiB", "storage_GB"):
            dataset = paper_dataset_name(r["dataset"])
            if k_of.get(dataset) == float(r["K"]):
                return _paper_value(fig5, dataset=dataset, metric="storage_GB")
        return None, None
    return _finish(rows, ["dataset", "K", "format", "backbone"], lookup, lambda r: True)


_DISTILL_ANCHORS = {"online_over_stored": ("TinyViT supp. §D", "online_over_stored"),
                    "online_over_scratch": ("TinyViT Sec. 5.2", "online_over_scratch"),
                    "online_over_fast_total": ("TinyViT supp. §D", "online_over_fast_total"),
                    "saving_pct": ("TinyViT supp. §D", "saving_pct")}


def layout_distill(frame: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """Distillation cost (TinyViT supp. §D): per-step times and ratios; the paper's ratios (Florence teacher on
    V100, GPU-days) are shown as anchors without a delta — the teacher and hardware differ."""
    rows = frame[frame["task"].isin(["distill_speed", "distill", "replay"])].copy()
    rows["mode"] = [s.get("mode") for s in rows["setting"]]

    def lookup(r: pd.Series) -> tuple:
        if r["metric"] not in _DISTILL_ANCHORS:
            return None, None
        ref, metric = _DISTILL_ANCHORS[r["metric"]]
        return _paper_value(paper[paper["ref"] == ref], metric=metric)
    return _finish(rows, ["task", "dataset", "mode", "backbone", "resolution"], lookup, lambda r: False)


def layout_speed(frame: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """Iteration cost of the transfer harnesses (detection/segmentation/probe): no paper anchor."""
    rows = frame[frame["task"].isin(["iteration_time", "probe_speed"])].copy()
    rows["harness"] = [s.get("harness", s.get("model", t)) for s, t in zip(rows["setting"], rows["task"])]
    return _finish(rows, ["task", "harness", "dataset", "backbone", "resolution"], lambda r: (None, None),
                   lambda r: True)


LAYOUTS: dict[str, tuple[str, Callable[[pd.DataFrame, pd.DataFrame], pd.DataFrame], Sequence[str]]] = {
    "tab4": ("Model size and throughput (TinyViT Tab. 4)", layout_tab4, ["TinyViT Tab. 4"]),
    "tab5": ("Linear probe and few-shot (TinyViT Tab. 5)", layout_tab5, ["TinyViT Tab. 5"]),
    "tab6": ("Detection, Cascade Mask R-CNN (TinyViT Tab. 6)", layout_tab6, ["TinyViT Tab. 6"]),
    "seg": ("Semantic segmentation, UperNet (TinyMIM protocol)", layout_seg, ["TinyMIM supp. Tab. 3"]),
    "store": ("Sparse-logit store: bytes per sample vs K (TinyViT Fig. 5)", layout_store, ["TinyViT Fig. 5"]),
    "distill": ("Distillation cost (TinyViT supp. §D)", layout_distill, ["TinyViT supp. §D", "TinyViT Sec. 5.2"]),
    "speed": ("Transfer harness iteration cost", layout_speed, []),
}


def paper_reference(layout: str, paper: pd.DataFrame | None = None) -> pd.DataFrame:
    """The paper's own rows for a layout, pivoted to the paper's table shape (model × dataset/metric)."""
    paper = paper_numbers() if paper is None else paper
    refs = LAYOUTS[layout][2] if layout in LAYOUTS else sorted(paper["ref"].unique())
    rows = paper[paper["ref"].isin(refs)]
    if rows.empty:
        return pd.DataFrame()
    column = rows["dataset"] + ":" + rows["metric"] + rows["shots"].map(
        lambda s: "" if pd.isna(s) else f"@{int(s)}shot")
    keyed = rows.assign(column=column, resolution=rows["resolution"].astype("string").fillna(""))
    table = pd.pivot_table(keyed, values="value", index=["ref", "model", "resolution", "pretrain"],
                           columns="column", aggfunc="first", sort=False).reset_index()
    # architecture facts (params, MACs, V100 images/s) have no pretraining: spread them over the model's rows
    facts = table[table["pretrain"] == ""].set_index(["ref", "model", "resolution"])
    trained = table[table["pretrain"] != ""]
    filled = trained.set_index(["ref", "model", "resolution"]).combine_first(facts).reset_index()
    lone = facts.index.difference(trained.set_index(["ref", "model", "resolution"]).index)
    order = {key: i for i, key in enumerate(dict.fromkeys(zip(table["ref"], table["model"], table["resolution"])))}
    merged = pd.concat([filled, facts.loc[lone].reset_index()], ignore_index=True)
    merged = merged.iloc[sorted(range(len(merged)), key=lambda i: order[tuple(merged.loc[i, ["ref", "model",
                                                                                          "resolution"]])])]
    columns = ["ref", "model", "pretrain", "resolution", *[c for c in table.columns if ":" in c]]
    return merged[columns].reset_index(drop=True)


def build_tables(records: Sequence[Mapping[str, Any]], layouts: Sequence[str] = ("all",),
                 paper: pd.DataFrame | None = None) -> dict[str, pd.DataFrame]:
    """{layout: table} for the requested layouts ('all': every layout that has records)."""
    paper = paper_numbers() if paper is None else paper
    frame = records_frame(records)
    names = list(LAYOUTS) if "all" in layouts else list(layouts)
    unknown = [n for n in names if n not in LAYOUTS and n != "paper"]
    if unknown:
        raise ValueError(f"unknown layout(s) {unknown}; known: {[*LAYOUTS, 'paper', 'all']}")
    tables = {}
    for name in names:
        if name == "paper":
            tables[name] = paper.drop(columns=["note"])
            continue
        table = LAYOUTS[name][1](frame, paper)
        if not table.empty or "all" not in layouts:
            tables[name] = table
    return tables


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return DASH
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _display(table: pd.DataFrame) -> pd.DataFrame:
    shown = table.copy()
    for col in shown.columns:
        if col == "delta":
            shown[col] = [DASH if v is None or pd.isna(v) else f"{v:+.3g}" for v in shown[col]]
        else:
            shown[col] = [_fmt(v) for v in shown[col]]
    return shown


def render(tables: Mapping[str, pd.DataFrame], fmt: str = "md", paper: pd.DataFrame | None = None) -> str:
    """Tables as Markdown (with the paper's own table under each), one CSV (with a `layout` column), or LaTeX."""
    paper = paper_numbers() if paper is None else paper
    if fmt == "csv":
        frames = [t.assign(layout=name) for name, t in tables.items() if name != "paper"]
        if "paper" in tables:
            frames.append(tables["paper"].assign(layout="paper"))
        return pd.concat(frames, ignore_index=True).to_csv(index=False) if frames else ""
    parts = []
    for name, table in tables.items():
        title = LAYOUTS[name][0] if name in LAYOUTS else "The papers' numbers"
        reference = paper_reference(name, paper) if name in LAYOUTS else pd.DataFrame()
        if fmt == "md":
            parts.append(f"## {title}\n\n" + (_display(table).to_markdown(index=False) if not table.empty
                                             else "_no records_"))
            if not reference.empty:
                parts.append(f"Paper ({', '.join(LAYOUTS[name][2])}):\n\n" +
                             _display(reference).to_markdown(index=False))
        elif fmt == "latex":
            parts.append(f"% {title}\n" + _display(table).to_latex(index=False, caption=title,
                                                                   label=f"tab:{name}"))
        else:
            raise ValueError(f"unknown format {fmt!r}; use md, csv or latex")
    return "\n\n".join(parts) + "\n"


def main(argv: Sequence[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", default=str(DEFAULT_RESULTS_DIR), help="results directory (recursive)")
    parser.add_argument("--format", default="md", choices=["md", "csv", "latex"])
    parser.add_argument("--layout", nargs="+", default=["all"], choices=[*LAYOUTS, "paper", "all"])
    parser.add_argument("--out", default=None, help="write here (atomically) instead of only printing")
    args = parser.parse_args(argv)
    records_dir = Path(args.records)
    if not records_dir.is_dir():
        parser.error(f"--records {records_dir}: no such directory")
    text = render(build_tables(read_records(records_dir), args.layout), args.format)
    if args.out:
        atomic_write_text(args.out, text)
    sys.stdout.write(text)
    return text


if __name__ == "__main__":
    main()
