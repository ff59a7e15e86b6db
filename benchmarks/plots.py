"""Figures from result records and logs, with the paper's numbers beside ours (matplotlib Agg, PNG + PDF).

    python -m benchmarks.plots [--records DIR] [--out DIR] [--logs LOG ...]

- `accuracy_vs_cost`: IN-1k top-1 vs MACs and vs params (TinyViT Fig. 6 / Tab. 4); our throughput records place
  TinyViT at our *measured* MACs/params (at the paper's top-1: ImageNet itself is not available here).
- `storage_vs_k`: store bytes per sample vs K (Fig. 5): our store records, the paper's (derived from its GB
  figures), and the format's K·(2+2)+4 line.
- `distill_cost`: supp. §D GPU-days (fast = save logits + train from store, vs conventional online) beside our
  per-step seconds from `distill_speed` records.
- `training_curves`: one panel per logged scalar. Log format: JSON lines (one object per line, MMEngine's
  `scalars.json` is one) or CSV with a header; a `step` column (else `iter`, else `epoch`) is the x axis and every
  other numeric field is a curve; one line per log file, labelled by the file's folder/name.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from .paper_numbers import paper_numbers  # noqa: E402
from contracts.records import DEFAULT_RESULTS_DIR, read_records  # noqa: E402
from .table import paper_reference, records_frame  # noqa: E402

DEFAULT_PLOTS_DIR = DEFAULT_RESULTS_DIR.parent / "plots"
BYTES_VALUE, BYTES_INDEX, BYTES_SEED = 2, 2, 4
STEP_METRIC = re.compile(r"step_s_(\w+)|(\w+)_step_s")


def save_figure(fig: plt.Figure, out_dir: str | Path, name: str) -> list[Path]:
    """Write `name`.png and `name`.pdf atomically; returns both paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "pdf"):
        fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{name}.", suffix=f".{ext}")
        os.close(fd)
        try:
            fig.savefig(tmp, format=ext, dpi=130, bbox_inches="tight")
            os.replace(tmp, out_dir / f"{name}.{ext}")
        finally:
            Path(tmp).unlink(missing_ok=True)
        paths.append(out_dir / f"{name}.{ext}")
    plt.close(fig)
    return paths


def plot_accuracy_vs_cost(records: Sequence[Mapping[str, Any]], out_dir: str | Path,
                          paper: pd.DataFrame | None = None) -> list[Path]:
    """Top-1 vs MACs and vs params: the paper's Tab. 4 models, TinyViT (scratch / distilled), our measurements."""
    paper = paper_numbers() if paper is None else paper
    tab4 = paper_reference("tab4", paper)
    ours = records_frame(records)
    ours = ours[ours["task"] == "throughput"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, metric, label in ((axes[0], "imagenet-1k:macs_g", "MACs (G)"),
                              (axes[1], "imagenet-1k:params_m", "#Params (M)")):
        rows = tab4.dropna(subset=["imagenet-1k:top1", metric])
        tiny = rows["model"].str.startswith("TinyViT")
        others = rows[~tiny]
        ax.scatter(others[metric], others["imagenet-1k:top1"], c="grey", s=18, label="paper: other models")
        for _, r in others.iterrows():
            ax.annotate(r["model"], (r[metric], r["imagenet-1k:top1"]), fontsize=6, color="grey",
                        xytext=(2, 2), textcoords="offset points")
        for pretrain, style, name in (("in1k", "o-", "paper: TinyViT (IN-1k)"),
                                      ("in21k-distill", "*-", "paper: TinyViT ⚗ (IN-21k distill)")):
            line = rows[tiny & (rows["pretrain"] == pretrain)].sort_values(metric)
            ax.plot(line[metric], line["imagenet-1k:top1"], style, label=name, markersize=8)
        metric_name = metric.split(":")[1]
        measured = ours[ours["metric"] == metric_name]
        first = True
        for _, r in measured.iterrows():
            res = str(int(r["resolution"])) if pd.notna(r["resolution"]) else "224"  # paper: "" = any
            match = rows[(rows["model"] == r["model"]) & (rows["resolution"].isin([res, ""]))]
            for top1 in match["imagenet-1k:top1"]:
                ax.scatter([r["ours"]], [top1], facecolors="none", edgecolors="red", s=90, linewidths=1.5,
                           label="ours: measured cost (paper top-1)" if first else None, zorder=5)
                first = False
        ax.set_xlabel(label)
        ax.set_ylabel("ImageNet-1k top-1 (%)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="lower right")
    fig.suptitle("Accuracy vs cost (TinyViT Tab. 4 / Fig. 6)")
    return save_figure(fig, out_dir, "accuracy_vs_cost")


def plot_storage_vs_k(records: Sequence[Mapping[str, Any]], out_dir: str | Path,
                      paper: pd.DataFrame | None = None) -> list[Path]:
    """Bytes per stored sample vs K (Fig. 5): ours, the paper's, and the format's K·(value+index)+seed line."""
    paper = paper_numbers() if paper is None else paper
    frame = records_frame(records)
    ours = frame[(frame["task"] == "store") & (frame["metric"] == "bytes_per_sample")].dropna(subset=["K"])
    fig5 = paper[paper["ref"] == "TinyViT Fig. 5"]
    paper_points = [(fig5[(fig5["dataset"] == d) & (fig5["metric"] == "K")]["value"].iloc[0],
                     fig5[(fig5["dataset"] == d) & (fig5["metric"] == "bytes_per_sample")]["value"].iloc[0], d)
                    for d in fig5["dataset"].unique()]
    ks = sorted({1, 5, 10, 20, 50, 100, 200, *[float(k) for k in ours["K"]]})
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.plot(ks, [k * (BYTES_VALUE + BYTES_INDEX) + BYTES_SEED for k in ks], "--", color="grey",
            label="K·(2+2)+4 bytes (fp16 value, int16 index, seed)")
    ax.scatter([p[0] for p in paper_points], [p[1] for p in paper_points], marker="*", s=140, color="C1",
               label="paper (derived from Fig. 5 GB)", zorder=4)
    for k, b, d in paper_points:
        ax.annotate(d, (k, b), fontsize=7, xytext=(4, -10), textcoords="offset points")
    ours = ours.assign(format=[s.get("format", "") for s in ours["setting"]])
    for (dataset, fmt), group in ours.groupby(["dataset", "format"]):
        group = group.sort_values("K")
        ax.plot(group["K"].astype(float), group["ours"], "o-", label=f"ours: {dataset} {fmt}".strip(), zorder=5)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("K (stored logits per sample)")
    ax.set_ylabel("bytes per sample")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    ax.set_title("Sparse-logit storage vs K (TinyViT Fig. 5)")
    return save_figure(fig, out_dir, "storage_vs_k")


def plot_distill_cost(records: Sequence[Mapping[str, Any]], out_dir: str | Path,
                      paper: pd.DataFrame | None = None) -> list[Path]:
    """Supp. §D GPU-days (stacked: save logits + train) beside our seconds per step by distillation mode."""
    paper = paper_numbers() if paper is None else paper
    supp = paper[paper["ref"] == "TinyViT supp. §D"].set_index("metric")["value"]
    frame = records_frame(records)
    steps = frame[(frame["task"] == "distill_speed") & frame["metric"].str.fullmatch(STEP_METRIC)].copy()
    steps["mode"] = [next(g for g in STEP_METRIC.fullmatch(m).groups() if g) for m in steps["metric"]]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    ax = axes[0]
    ax.bar(["fast (stored logits)"], [supp["gpu_days_save_logits"]], color="C1", label="save top-100 logits")
    ax.bar(["fast (stored logits)"], [supp["gpu_days_train_stored"]], bottom=[supp["gpu_days_save_logits"]],
           color="C0", label="train from store")
    ax.bar(["conventional (online)"], [supp["gpu_days_train_online"]], color="C3", label="online distillation")
    ax.set_ylabel("GPU days (V100)")
    ax.set_title(f"paper, Florence teacher: {supp['saving_pct']:.1f}% saved (supp. §D)", fontsize=9)
    ax.legend(fontsize=7)
    ax = axes[1]
    if steps.empty:
        ax.text(0.5, 0.5, "no distill_speed records", ha="center", va="center", transform=ax.transAxes)
    else:
        means = steps.groupby("mode")["ours"].mean()
        labels = list(means.index)
        ax.bar(labels, means.values, color=[{"online": "C3", "stored": "C0"}.get(x, "C2") for x in labels])
        for i, v in enumerate(means.values):
            ax.annotate(f"{v:.3g}s", (i, v), ha="center", fontsize=8, xytext=(0, 2), textcoords="offset points")
        machine = steps["machine"].iloc[0]
        ax.set_title(f"ours: seconds per step\n{machine}", fontsize=8)
    ax.set_ylabel("seconds per training step")
    fig.suptitle("Distillation cost")
    return save_figure(fig, out_dir, "distill_cost")


def read_log(path: str | Path) -> pd.DataFrame:
    """A training log (JSON lines or CSV, see module doc) as a frame indexed by step; bad lines raise."""
    path = Path(path)
    text = path.read_text()
    first = text.lstrip()[:1]
    if first in ("{", ""):
        rows = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise ValueError(f"{path}:{number}: not a JSON object ({err})") from err
        frame = pd.DataFrame(rows)
    else:
        frame = pd.DataFrame(list(csv.DictReader(text.splitlines())))
        frame = frame.apply(pd.to_numeric, errors="coerce")
    axis = next((c for c in ("step", "iter", "epoch") if c in frame.columns), None)
    if axis is None:
        raise ValueError(f"{path}: a training log needs a 'step' (or 'iter'/'epoch') field; has {list(frame.columns)}")
    numeric = frame.apply(pd.to_numeric, errors="coerce")
    numeric = numeric.loc[:, numeric.notna().any()].dropna(subset=[axis])
    return numeric.set_index(axis).sort_index()


def plot_training_curves(logs: Sequence[str | Path], out_dir: str | Path, name: str = "training_curves"
                         ) -> list[Path]:
    """One panel per scalar (loss, lr, ...), one line per log."""
    frames = {f"{Path(p).parent.name}/{Path(p).stem}": read_log(p) for p in logs}
    scalars = list(dict.fromkeys(c for f in frames.values() for c in f.columns if c not in ("time", "data_time")))
    if not scalars:
        raise ValueError(f"no numeric scalars in {list(map(str, logs))}")
    cols = min(3, len(scalars))
    rows = (len(scalars) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    colors = {label: f"C{i}" for i, label in enumerate(frames)}  # one colour per run in every panel
    for ax, scalar in zip(axes.flat, scalars):
        for label, frame in frames.items():
            if scalar in frame.columns:
                series = frame[scalar].dropna()
                ax.plot(series.index, series.values, label=label, color=colors[label])
        ax.set_title(scalar, fontsize=9)
        ax.set_xlabel(frames[next(iter(frames))].index.name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(scalars):]:
        ax.axis("off")
    fig.tight_layout()
    return save_figure(fig, out_dir, name)


def make_all(records_dir: str | Path, out_dir: str | Path, logs: Sequence[str | Path] = ()) -> list[Path]:
    """Every figure the records (and logs) allow; returns the written files."""
    records = read_records(records_dir) if Path(records_dir).is_dir() else []
    written = [*plot_accuracy_vs_cost(records, out_dir), *plot_storage_vs_k(records, out_dir),
               *plot_distill_cost(records, out_dir)]
    if logs:
        written += plot_training_curves(logs, out_dir)
    return written


def main(argv: Sequence[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", default=str(DEFAULT_RESULTS_DIR), help="results directory (recursive)")
    parser.add_argument("--out", default=str(DEFAULT_PLOTS_DIR), help="folder for the PNG + PDF files")
    parser.add_argument("--logs", nargs="*", default=[], help="training logs (JSON lines or CSV) to plot")
    args = parser.parse_args(argv)
    written = make_all(args.records, args.out, args.logs)
    for path in written:
        print(path)
    return written


if __name__ == "__main__":
    main()
