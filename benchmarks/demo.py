"""The main job, end to end on embedded real data: the paper's claim in miniature, with each stage timed.

    python -m benchmarks.demo [--quick] [--out results/] [--only STAGE ...]    # --quick: results/quick/

The claim (paper §3.1, Tab. 2/5): a student distilled from a teacher's stored sparse logits transfers better than
the same student trained from scratch on the same images. In miniature, on Fashion-MNIST: both students see the
images of the five "seen" classes 0-4 only; the distilled one learns label-free from the ImageNet teacher's stored
top-10, the scratch one from the seen classes' labels; both are then evaluated on the five held-out classes 5-9.

Stages (each calls another package's public entry point; each is one function below):
  a. save_logits   MobileNetV2 (real ImageNet weights, offline asset) saves top-10 probabilities + seeds over the
                   seen-class images, 4 epochs of replayable augmentation (`distill_pretrain.save_logits`)
  b. distill       TinyViT-5M at 64 px distilled from the store, label-free (`distill_pretrain.train`, stored)
  c. scratch       the same student, images, augmentation and steps, on the seen classes' labels (scratch)
  d. transfer      both students (+ random init and the teacher, for reference) on the held-out classes: fast
                   linear probe and 5-way 5-shot few-shot on shared seeded episodes: the cells of
                   configs/suites/demo_fmnist.py, run by the suite runner (`benchmarks.suite`, local launcher)
                   through `transfer.linear_probe` and `transfer.few_shot`
  e. dense         detection and segmentation smoke runs on the real mini sets, backbone = the distilled student
                   (`transfer.detection`, `transfer.segmentation`)
  f. report        tables (`benchmarks.table`) and plots (`benchmarks.plots`), printed and written
Outputs under --out: records/, work/ (store, checkpoints, logs, episodes, features), cells/ (the transfer cells'
commands and logs), plots/, tables.md, demo_summary.json. A stage whose inputs a failed or skipped stage of this
run makes is skipped (`NEEDS`): it would read an earlier run's products.
Budget: ≤ 15 min on 2 CPU cores; measured 414 s, --quick 97 s (2026-12-06, 2-core AMD EPYC, quiet).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from contracts.provenance import REPO_ROOT
from contracts.fileio import atomic_write_text
from contracts.runtime import keep_freed_memory

SAVE_LOGITS_CONFIG = REPO_ROOT / "configs/demo/store_fmnist_seen.py"
STUDENT_CONFIG = REPO_ROOT / "configs/demo/student_fmnist_seen.py"
DETECTION_CONFIG = REPO_ROOT / "configs/detection/cascade-mask-rcnn_tinyvit-5m_fpn_mini.py"
SEGMENTATION_CONFIG = REPO_ROOT / "configs/segmentation/upernet_tinyvit-5m_mini_voc.py"
TRANSFER_SUITE = REPO_ROOT / "configs/suites/demo_fmnist.py"  # the transfer grid, run by the suite runner
# one cell at a time, each with every core: the probe's numbers depend on the thread count, and so they equal the
# in-process stage's of earlier versions (two at a time, one thread each: 130 vs 214 s, probe ±0.2 points)
TRANSFER_PARALLEL = 1


DENSE_SEED = 0  # MMEngine's seed for the dense runs (unseeded, it draws one per run: other numbers each time)
NOVEL_CLASSES = (5, 6, 7, 8, 9)  # Sandal, Shirt, Sneaker, Bag, Ankle boot: never seen in pretraining
TRANSFER_DATASET = "fashion_mnist_novel"  # what the transfer records call them


@dataclass
class DemoSize:
    """How much work each stage does: `full` (≈ 7 min on 2 cores) or `quick` (≈ 1.5 min, for the test)."""
    images: int
    epochs: int
    probe_train: int
    probe_test: int
    episodes: int
    dense_iters: int

    @classmethod
    def of(cls, quick: bool) -> "DemoSize":
        return cls(320, 2, 200, 200, 20, 2) if quick else cls(2400, 4, 5000, 5000, 600, 10)


@dataclass
class Context:
    """What the stages share: the output folder and the size. Products live at fixed paths under `out`, so any
    stage can be re-run alone (`--only`) on the products of an earlier run."""
    out: Path
    size: DemoSize
    transfer_records: list[dict] = field(default_factory=list)  # the records of this run's transfer cells

    @property
    def records(self) -> Path:
        return self.out / "records"

    @property
    def work(self) -> Path:
        return self.out / "work"

    @property
    def store(self) -> Path:
        return self.work / "store"

    def student_dir(self, mode: str) -> Path:
        return self.work / f"student_{mode}"

    def checkpoint(self, mode: str) -> Path:
        path = self.student_dir(mode) / "checkpoint.pth"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no {mode} student checkpoint (run the {mode} stage first)")
        return path


def stage_save_logits(ctx: Context) -> str:
    """(a) MobileNetV2 top-K logits + seeds over the seen-class Fashion-MNIST images → the store."""
    from distill_pretrain import save_logits
    save_logits.main([str(SAVE_LOGITS_CONFIG), "--cfg-options", f"store.path={ctx.store}",
                      f"dataset.limit={ctx.size.images}", f"epochs={ctx.size.epochs}"])
    return f"store at {ctx.store}"


# what each student's checkpoint meta (and so every record made with it) names as its pretraining
PRETRAIN_NAMES = {"stored": "fashion_mnist-seen-distill", "scratch": "fashion_mnist-seen"}


def _train_student(ctx: Context, mode: str) -> str:
    from distill_pretrain import train
    work_dir = ctx.student_dir(mode)
    trainer = train.main([str(STUDENT_CONFIG), "--work-dir", str(work_dir), "--cfg-options", f"mode={mode}",
                          f"store.path={ctx.store}", f"epochs={ctx.size.epochs}",
                          f"data.train.limit={ctx.size.images}", f"pretrain_name={PRETRAIN_NAMES[mode]}"])
    checkpoint = ctx.checkpoint(mode)
    for record in sorted((work_dir / "records").glob("*.json")):  # the trainer's `distill` records
        shutil.copy2(record, ctx.records / f"{mode}__{record.name}")
    return f"{mode}: {getattr(trainer, 'step', '?')} steps → {checkpoint}"


def stage_distill(ctx: Context) -> str:
    """(b) TinyViT-5M distilled from the stored sparse logits, label-free."""
    return _train_student(ctx, "stored")


def stage_scratch(ctx: Context) -> str:
    """(c) The same student from scratch on the seen classes' labels: same images, augmentation, steps."""
    return _train_student(ctx, "scratch")


def stage_transfer(ctx: Context) -> str:
    """(d) Linear probe and 5-way 5-shot on the held-out classes for both students (+ references)."""
    from contracts.records import read_records
    from .suite import run_suite
    size = ctx.size
    result = run_suite(TRANSFER_SUITE, ctx.out, max_parallel=TRANSFER_PARALLEL, cfg_options={
        "datasets.fashion_mnist_novel.classes": list(NOVEL_CLASSES),
        "datasets.fashion_mnist_novel.record_name": TRANSFER_DATASET,
        "backbones.distill.checkpoint": str(ctx.checkpoint("stored")),
        "backbones.scratch.checkpoint": str(ctx.checkpoint("scratch")),
        "tasks.linear_probe.max_train": size.probe_train, "tasks.linear_probe.max_test": size.probe_test,
        "tasks.few_shot.max_images": size.probe_test, "tasks.few_shot.n_episodes": size.episodes})
    if not result.complete:
        unfinished = [f"{cell_id} ({state.state}: {state.log or state.detail})" for cell_id, state in
                      result.states.items() if state.state != "done"]
        raise RuntimeError(f"transfer cells not done: {'; '.join(unfinished)}")
    found: dict[str, list[str]] = {}
    for cell in result.suite.cells:
        for record in read_records(result.dirs.records(cell)):
            ctx.transfer_records.append(record)
            metrics = record["metrics"]
            found.setdefault(cell.backbone["label"], []).append(
                f"probe {metrics['top1']:.3f}" if record["task"] == "linear_probe" else
                f"{record['setting']['n_shot']}-shot {metrics['top1']:.3f}±{metrics['ci95']:.3f}")
    return "; ".join(f"{label}: {', '.join(parts)}" for label, parts in found.items())


def stage_dense(ctx: Context) -> str:
    """(e) Detection and segmentation smoke runs on the real mini sets, backbone = the distilled student."""
    from transfer.detection import build_mini_coco
    from transfer.detection import train as det_train
    from transfer.segmentation import build_mini_seg
    from transfer.segmentation import train as seg_train
    checkpoint = str(ctx.checkpoint("stored"))
    n = ctx.size.dense_iters
    ann_file, img_dir, _ = build_mini_coco(ctx.work / "mini_coco")
    det = det_train.main([str(DETECTION_CONFIG), "--work-dir", str(ctx.work / "detection"), "--data", str(ann_file),
                          str(img_dir), "--results-dir", str(ctx.records), "--seed", str(DENSE_SEED), "--cfg-options",
                          f"train_cfg.max_iters={n}", f"train_cfg.val_interval={n}",
                          "model.backbone.init_cfg._delete_=True", "model.backbone.init_cfg.type=Pretrained",
                          f"model.backbone.init_cfg.checkpoint={checkpoint}"])
    os.environ["TINYVIT_SEG_MINI"] = str(build_mini_seg(ctx.work / "seg_mini")["data_root"])
    seg = seg_train.main([str(SEGMENTATION_CONFIG), "--work-dir", str(ctx.work / "segmentation"),
                          "--results-dir", str(ctx.records), "--pretrained", checkpoint, "--seed", str(DENSE_SEED),
                          "--cfg-options", f"train_cfg.max_iters={n}", f"train_cfg.val_interval={n}"])
    return f"detection {_short(det)}; segmentation {_short(seg)}"


def _short(metrics: object) -> str:
    if isinstance(metrics, dict):
        return ", ".join(f"{k.split('/')[-1]}={v:.3g}" for k, v in metrics.items() if isinstance(v, float))[:200]
    return str(metrics)[:200]


def stage_report(ctx: Context) -> str:
    """(f) Tables and plots from the records written above."""
    from . import plots, table
    text = table.main(["--records", str(ctx.records), "--out", str(ctx.out / "tables.md")])
    logs = sorted(ctx.work.glob("student_*/log.jsonl"))
    written = plots.make_all(ctx.records, ctx.out / "plots", logs)
    return f"{len(text.splitlines())} table lines → {ctx.out / 'tables.md'}; {len(written)} plot files"


STAGES: dict[str, Callable[[Context], str]] = {
    "save_logits": stage_save_logits, "distill": stage_distill, "scratch": stage_scratch,
    "transfer": stage_transfer, "dense": stage_dense, "report": stage_report,
}


# a stage runs only when the stages it reads the products of did not fail or get skipped in this run
NEEDS = {"distill": ("save_logits",), "transfer": ("distill", "scratch"), "dense": ("distill",)}


def distilled_vs_scratch(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """Lines comparing the two students on every (task, dataset, shots) both have in `records` (this run's
    transfer records); a gap inside the 95% intervals is called a tie."""
    from .table import records_frame
    records = [r for r in records if r["task"] in ("linear_probe", "few_shot")]
    if not records:
        return []
    frame = records_frame(records)
    frame = frame[frame["source"].isin(["distill", "scratch"]) & (frame["metric"] == "top1")]
    lines = []
    for (task, dataset, shots), group in frame.groupby(["task", "dataset", "shots"], dropna=False):
        top1 = group.groupby("source")["ours"].mean()
        ci95 = group.groupby("source")["ci95"].mean().fillna(0.0)
        if not {"distill", "scratch"} <= set(top1.index):
            continue
        gap = top1["distill"] - top1["scratch"]
        margin = ci95.get("distill", 0.0) + ci95.get("scratch", 0.0)
        verdict = ("tie within the 95% intervals" if abs(gap) <= margin else
                   "distilled ahead" if gap > 0 else "SCRATCH AHEAD: check the recipe")
        shot = "" if shots != shots or shots is None else f" {int(shots)}-shot"
        lines.append(f"{task}{shot} {dataset}: distilled {top1['distill']:.1f}±{ci95.get('distill', 0):.1f}% vs "
                     f"scratch {top1['scratch']:.1f}±{ci95.get('scratch', 0):.1f}% ({gap:+.1f}) → {verdict}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="reduced sizes (≈1.5 min), for tests")
    parser.add_argument("--out", help="output folder (default results/, with --quick results/quick/: a store and "
                        "students of one size are never reused by the other)")
    parser.add_argument("--only", nargs="+", choices=list(STAGES), help="run only these stages (in order)")
    args = parser.parse_args(argv)
    keep_freed_memory()  # large CPU tensors reuse the heap (`contracts.runtime`)
    out = Path(args.out) if args.out else REPO_ROOT / "results" / ("quick" if args.quick else "")
    ctx = Context(out, DemoSize.of(args.quick))
    ctx.records.mkdir(parents=True, exist_ok=True)
    names = [n for n in STAGES if not args.only or n in args.only]
    summary, not_ok = [], []
    total = time.perf_counter()
    for i, name in enumerate(names, 1):
        print(f"\n=== [{i}/{len(names)}] {name}: {STAGES[name].__doc__.splitlines()[0]}", flush=True)
        start = time.perf_counter()
        blocked = [need for need in NEEDS.get(name, ()) if need in not_ok]
        if blocked:  # its inputs would be an earlier run's products, or none
            status, detail = "skipped", f"needs {', '.join(blocked)}, not done in this run"
        else:
            try:
                status, detail = "ok", STAGES[name](ctx)
            except Exception as err:  # noqa: BLE001 - report every stage, keep going where possible
                status, detail = "failed", f"{type(err).__name__}: {err}"
                traceback.print_exc()
        if status != "ok":
            not_ok.append(name)
        seconds = time.perf_counter() - start
        summary.append({"stage": name, "status": status, "seconds": round(seconds, 1), "detail": detail})
        print(f"=== {name}: {status} in {seconds:.1f} s — {detail}", flush=True)
    total = time.perf_counter() - total
    print("\nDemo summary" + (" (quick)" if args.quick else ""))
    for row in summary:
        print(f"  {row['stage']:<12} {row['status']:<12} {row['seconds']:8.1f} s  {row['detail'][:100]}")
    print(f"  {'total':<12} {'':<12} {total:8.1f} s")
    comparison = distilled_vs_scratch(ctx.transfer_records)
    for line in comparison:
        print("  " + line)
    atomic_write_text(ctx.out / "demo_summary.json", json.dumps(
        {"quick": args.quick, "stages": summary, "total_seconds": round(total, 1),
         "distilled_vs_scratch": comparison}, indent=2) + "\n")
    return 0 if all(row["status"] == "ok" for row in summary) else 1


if __name__ == "__main__":
    sys.exit(main())
