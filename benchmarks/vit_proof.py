"""The D-MAE / TinyMIM chain in miniature on real Fashion-MNIST: does distilling from an MAE teacher beat `mae` alone
where labels are scarce (the D-MAE poster's claim)?

    python -m benchmarks.vit_proof [--quick] [--out results/vit_proof] [--images 2400] [--epochs 4] [--depth 12]

  1. teacher   a ViT-Small-shaped ViT (384-d, 6 heads) at 32 px, patch 4, MAE-pretrained label-free on the images of
               the seen classes 0-4 (`distill_pretrain.train`, objective `mae`)
  2. students  ViT-Tiny-shaped (192-d, 3 heads), same images, augmentation and steps: `mae` alone, `dmae` (attention
               maps of the last block, teacher fed the same visible patches) and `tinymim` (Q-K / V-V relations of
               the last block), teacher = step 1's checkpoint
  3. transfer  on the held-out classes 5-9 (the demo's split, `benchmarks.demo.NOVEL_CLASSES`): logistic-regression
               linear probe and 5-way 5-shot episodes (`transfer.linear_probe`, `transfer.few_shot`, the demo's
               episode protocol); every model is read back by `transfer.features.load_backbone` from its checkpoint
               (shape from the checkpoint's meta); features = timm's pre-logits with `pool='avg'`, the mean of the
               final-norm patch tokens (the same for every model); a random-init ViT-T and the teacher as references
Re-running with the same OUT resumes each pretraining run where it stopped (the trainer's `--resume auto`).
Writes linear_probe / few_shot records under OUT/records, the table to OUT/vit_proof.md and prints it. Intervals:
binomial 95% for the probe, 95% over episodes for few-shot.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from contracts.fileio import atomic_write_text
from contracts.provenance import REPO_ROOT

from .demo import NOVEL_CLASSES, TRANSFER_DATASET

CONFIGS = {o: REPO_ROOT / f"configs/distill/vit_tiny_{o}_fmnist_tiny_cpu.py" for o in ("mae", "dmae", "tinymim")}
SEEN = "[0,1,2,3,4]"
RESOLUTION, PATCH = 32, 4
TEACHER = "vit_small_patch16_224"


@dataclass
class Size:
    images: int
    epochs: int
    probe: int
    episodes: int
    depth: int | None  # None: the full 12 blocks
    batch: int

    @classmethod
    def of(cls, args: argparse.Namespace) -> "Size":
        if args.quick:
            return cls(32, 1, 200, 4, 1, 16)
        return cls(args.images, args.epochs, args.probe, args.episodes, None if args.depth == 12 else args.depth, 64)


def _train(config: Path, work: Path, size: Size, extra: Sequence[str]) -> Path:
    from distill_pretrain import train
    shape = [f"{p}.patch_size={PATCH}" for p in ("student", "objective.student")]
    if size.depth:
        shape += [f"{p}.depth={size.depth}" for p in ("student", "objective.student")]
    train.main([str(config), "--work-dir", str(work), "--resume", "auto", "--cfg-options", f"data.train.classes={SEEN}",
                f"data.train.limit={size.images}", f"data.batch_size={size.batch}", f"epochs={size.epochs}",
                "record=False", *shape, *extra])
    return work / "checkpoint.pth"


def pretrain(out: Path, size: Size) -> dict[str, Path]:
    """Steps 1-2: the MAE teacher, then the three students from it."""
    teacher = _train(CONFIGS["mae"], out / "work/teacher_mae", size,
                     [f"student.arch={TEACHER}", f"objective.student.arch={TEACHER}", "pretrain_name=fmnist-seen-mae"])
    spec = [f"objective.teacher.name={TEACHER}", f"objective.teacher.checkpoint={teacher}",
            f"objective.teacher.patch_size={PATCH}"] + ([f"objective.teacher.depth={size.depth}"] if size.depth else [])
    students = {"teacher": teacher}
    for objective in ("mae", "dmae", "tinymim"):
        students[objective] = _train(CONFIGS[objective], out / f"work/student_{objective}", size,
                                     [f"pretrain_name=fmnist-seen-{objective}"] + (spec if objective != "mae" else []))
    return students


def held_out(split: str, limit: int):
    """Fashion-MNIST `split` restricted to the held-out `NOVEL_CLASSES`, first `limit` images (the files are
    shuffled)."""
    import numpy as np
    from torch.utils.data import Subset

    from contracts.assets import fashion_mnist_root
    from transfer.linear_probe import build_dataset
    dataset = build_dataset("fashion_mnist", fashion_mnist_root(), split)
    keep = np.flatnonzero(np.isin(np.asarray(dataset.targets), NOVEL_CLASSES))[:limit]
    return Subset(dataset, keep.tolist())


def backbones(size: Size, checkpoints: dict[str, Path]) -> dict:
    """The evaluated models as `transfer.features.Backbone`s, read back from the written checkpoints (record block:
    source from the objective, pretrain from the meta, the file's sha256) plus a random-init ViT-T reference."""
    from transfer.features import load_backbone
    depth = {"depth": size.depth} if size.depth else {}
    models = {"random ViT-T": load_backbone({"spec": f"vit-tiny/patch{PATCH}@{RESOLUTION}", "pool": "avg", **depth},
                                            seed=0)}
    for o in ("mae", "dmae", "tinymim"):
        models[f"ViT-T {o}"] = load_backbone({"spec": "vit-tiny", "checkpoint": str(checkpoints[o]), "pool": "avg"})
    models["teacher ViT-S mae"] = load_backbone({"spec": "vit-small", "checkpoint": str(checkpoints["teacher"]),
                                                 "pool": "avg"})
    return models


def transfer(out: Path, size: Size, checkpoints: dict[str, Path]) -> list[dict]:
    """Step 3: probe and few-shot on the held-out classes; returns one row per model."""
    from contracts.records import write_record
    from transfer.few_shot import few_shot_records, run_few_shot
    from transfer.linear_probe import probe_records, run_fast_probe
    train, test = held_out("train", size.probe), held_out("test", size.probe)
    episodes = out / "work/episodes" / f"{TRANSFER_DATASET}_5way5shot_{size.episodes}.json"
    common = dict(resolution=RESOLUTION, cache_dir=str(out / "work/features"))
    rows = []
    for label, backbone in backbones(size, checkpoints).items():
        probe = run_fast_probe(backbone, train, test, methods=("logreg",), **common)
        shots = run_few_shot(backbone, test, n_way=5, n_shot=5, n_query=15, n_episodes=size.episodes, seed=0,
                             dataset_name=TRANSFER_DATASET, episodes_path=episodes, methods=("logreg",), **common)
        for record in probe_records(probe, TRANSFER_DATASET, resolution=RESOLUTION, seed=0) + \
                few_shot_records(shots, TRANSFER_DATASET):
            write_record(record, out / "records")
        p, s = probe["results"]["logreg"], shots["results"]["logreg"]
        ci95 = 1.96 * (p["top1"] * (1 - p["top1"]) / len(test)) ** 0.5  # binomial, as probe_records
        rows.append({"model": label, "probe": p["top1"], "probe_ci95": ci95,
                     "shot5": s["top1"], "shot5_ci95": s["ci95"]})
        print(f"[vit_proof] {label}: probe {p['top1']:.3f}, 5-shot {s['top1']:.3f}±{s['ci95']:.3f}", flush=True)
    return rows


def table(rows: list[dict], size: Size, seconds: float) -> str:
    lines = [f"Fashion-MNIST held-out classes 5-9, {RESOLUTION} px, patch {PATCH}, depth {size.depth or 12}; "
             f"pretraining on {size.images} seen-class images x {size.epochs} epochs (batch {size.batch}); probe on "
             f"{size.probe} + {size.probe} images; {size.episodes} episodes; {seconds / 60:.1f} min",
             "", "| model | linear probe top-1 | 5-way 5-shot top-1 |", "|---|---|---|"]
    lines += [f"| {r['model']} | {100 * r['probe']:.1f} ± {100 * r['probe_ci95']:.1f} | "
              f"{100 * r['shot5']:.1f} ± {100 * r['shot5_ci95']:.1f} |" for r in rows]
    by = {r["model"]: r for r in rows}
    if "ViT-T mae" in by:
        base = by["ViT-T mae"]
        lines.append("")
        for o in ("dmae", "tinymim"):
            r = by[f"ViT-T {o}"]
            gap, margin = r["shot5"] - base["shot5"], r["shot5_ci95"] + base["shot5_ci95"]
            verdict = "tie within the 95% intervals" if abs(gap) <= margin else ("ahead" if gap > 0 else "behind")
            lines.append(f"{o} vs mae, 5-shot: {100 * gap:+.1f} points → {verdict}")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.vit_proof", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (1-block ViTs, 32 images), for tests")
    parser.add_argument("--out", default=str(REPO_ROOT / "results/vit_proof"))
    parser.add_argument("--images", type=int, default=2400, help="seen-class pretraining images")
    parser.add_argument("--epochs", type=int, default=4, help="pretraining epochs (teacher and each student)")
    parser.add_argument("--depth", type=int, default=12, help="blocks of every ViT (12 = the real shapes)")
    parser.add_argument("--probe", type=int, default=2000, help="held-out images for probe train and test each")
    parser.add_argument("--episodes", type=int, default=200, help="5-way 5-shot episodes")
    args = parser.parse_args(argv)
    out, size = Path(args.out), Size.of(args)
    start = time.perf_counter()
    rows = transfer(out, size, pretrain(out, size))
    text = table(rows, size, time.perf_counter() - start)
    atomic_write_text(out / "vit_proof.md", text)
    print(text, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
