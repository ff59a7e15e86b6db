"""The D-MAE / TinyMIM chain in miniature on real Fashion-MNIST: does distilling from an MAE teacher beat `mae` alone
where labels are scarce (the D-MAE poster's claim)? Each model is evaluated at several points of its pretraining, so
the answer comes with learning curves.

    python -m benchmarks.vit_proof [--quick] [--out results/vit_proof] [--images 3200] [--epochs 4]
        [--teacher-epochs 12] [--depth 6] [--lr 1.5e-3] [--points 4] [--resume-anyway [FIELD ...]]

  1. teacher   a ViT-Small-shaped ViT (384-d, 6 heads) at 32 px, patch 4, MAE-pretrained label-free on the images of
               the seen classes 0-4 (`distill_pretrain.train`, objective `mae`) for --teacher-epochs
  2. students  ViT-Tiny-shaped (192-d, 3 heads), same images, augmentation, steps and lr: `mae` alone, `dmae`
               (attention maps of the last block, teacher fed the same visible patches, weight 1) and `tinymim` (Q-K /
               V-V relations of the last block), teacher = step 1's final checkpoint, for --epochs
  3. transfer  on the held-out classes 5-9 (the demo's split, `benchmarks.demo.NOVEL_CLASSES`): logistic-regression
               linear probe and 5-way 5-shot episodes (`transfer.linear_probe`, `transfer.few_shot`, the demo's
               episode protocol) of every model at --points points of its pretraining (the trainer keeps
               `checkpoint_epoch{N}.pth` every `keep_interval` epochs) and at its end; every model is read back by
               `transfer.features.load_backbone` from its checkpoint (shape from the checkpoint's meta); features =
               timm's pre-logits with `pool='avg'`, the mean of the final-norm patch tokens (the same for every
               model); a random-init ViT-T (step 0) and the teacher as references

Choices for a fairer miniature (a first run at depth 12, 148 steps, teacher as long as the students, lr 3.75e-4,
tied everything and left the teacher barely above random weights; sized to finish in ~1.5 h on a loaded 2-core CPU):
- the teacher trains --teacher-epochs (default 3x --epochs; the real teachers, MAE-Base 1600 epochs, train 4-5x
  longer than the students, D-MAE 400 and TinyMIM 300 epochs): a student can only gain what its teacher knows;
- depth 6 for every ViT (widths and heads as ViT-T/S): half the cost per step buys the steps a short MAE run
  needs more than depth (teacher 600, each student 200; the first run: 148 each);
- the tiny configs' peak lr (--lr 1.5e-3 per 256 images = 10x MAE's 1.5e-4; 3.75e-4 at batch 64: a probe run
  of the teacher left MAE's mean-patch plateau (loss 0.647) after ~55 steps at it), warm-up half an epoch;
- 3,200 seen-class images (the first run: 2,400);
- unchanged: 75% masking, the 2-block 128-d decoder, the objectives' weights (D-MAE's code uses attention weight 1,
  TinyMIM's both relation weights 1).
Re-running with the same OUT resumes each pretraining run where it stopped (the trainer's `--resume auto`, checked
against the run: other sizes or lr in the same OUT are refused, naming the fields; `--resume-anyway` passes on).
Writes linear_probe / few_shot records under OUT/records (the pretraining point as `setting.pretrain_step` and
`setting.pretrain_epoch`), the final table and the curve table to OUT/vit_proof.md and prints them, and plots the
curves (OUT/plots/vit_proof_curves.png|pdf) and the pretraining losses (OUT/plots/vit_proof_pretraining.png|pdf).
Intervals: binomial 95% for the probe, 95% over episodes for few-shot.
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
from contracts.resume import ANYWAY_HELP
from contracts.runtime import keep_freed_memory

from .demo import NOVEL_CLASSES, TRANSFER_DATASET

CONFIGS = {o: REPO_ROOT / f"configs/distill/vit_tiny_{o}_fmnist_tiny_cpu.py" for o in ("mae", "dmae", "tinymim")}
SEEN = "[0,1,2,3,4]"
RESOLUTION, PATCH = 32, 4
TEACHER = "vit_small_patch16_224"
STUDENTS = ("mae", "dmae", "tinymim")


@dataclass
class Size:
    images: int
    epochs: int
    teacher_epochs: int
    points: int
    probe: int
    episodes: int
    depth: int | None  # None: the full 12 blocks
    batch: int
    lr: float

    @classmethod
    def of(cls, args: argparse.Namespace) -> "Size":
        if args.quick:
            return cls(32, 2, 4, 2, 200, 4, 1, 16, args.lr)
        return cls(args.images, args.epochs, args.teacher_epochs or 3 * args.epochs, args.points, args.probe,
                   args.episodes, None if args.depth == 12 else args.depth, 64, args.lr)


@dataclass
class Point:
    """One checkpoint of a pretraining run: after `epoch` epochs, `step` optimizer steps."""
    epoch: int
    step: int
    path: Path


def _train(config: Path, work: Path, size: Size, epochs: int, extra: Sequence[str],
           anyway: Sequence[str] | None = None) -> list[Point]:
    """One pretraining run (resumed when `work` has one of the same run; `anyway`: the trainer's
    --resume-anyway fields); returns its kept checkpoints and its final one."""
    from distill_pretrain import train
    shape = [f"{p}.patch_size={PATCH}" for p in ("student", "objective.student")]
    if size.depth:
        shape += [f"{p}.depth={size.depth}" for p in ("student", "objective.student")]
    resume = ["--resume", "auto"] + (["--resume-anyway", *anyway] if anyway is not None else [])
    train.main([str(config), "--work-dir", str(work), *resume, "--cfg-options", f"data.train.classes={SEEN}",
                f"data.train.limit={size.images}", f"data.batch_size={size.batch}", f"epochs={epochs}",
                f"keep_interval={max(1, epochs // size.points)}", f"optim.lr={size.lr}", "optim.warmup_epochs=0.5",
                "record=False", *shape, *extra])
    return checkpoints(work)


def checkpoints(work: Path) -> list[Point]:
    """The run's `checkpoint_epoch{N}.pth` files and its final `checkpoint.pth`, one per step, by step."""
    from backbones import read_checkpoint
    points: dict[int, Point] = {}
    for path in sorted(work.glob("checkpoint_epoch*.pth")) + [work / "checkpoint.pth"]:
        meta = read_checkpoint(path)["meta"]
        points.setdefault(int(meta["step"]), Point(int(meta["epoch"]) + 1, int(meta["step"]), path))
    return [points[s] for s in sorted(points)]


def pretrain(out: Path, size: Size, anyway: Sequence[str] | None = None) -> dict[str, list[Point]]:
    """Steps 1-2: the MAE teacher, then the three students from its final checkpoint."""
    runs = {"teacher": _train(CONFIGS["mae"], out / "work/teacher_mae", size, size.teacher_epochs,
                              [f"student.arch={TEACHER}", f"objective.student.arch={TEACHER}",
                               "pretrain_name=fmnist-seen-mae"], anyway)}
    spec = [f"objective.teacher.name={TEACHER}", f"objective.teacher.checkpoint={runs['teacher'][-1].path}",
            f"objective.teacher.patch_size={PATCH}"] + ([f"objective.teacher.depth={size.depth}"] if size.depth else [])
    for objective in STUDENTS:
        runs[objective] = _train(CONFIGS[objective], out / f"work/student_{objective}", size, size.epochs,
                                 [f"pretrain_name=fmnist-seen-{objective}"] + (spec if objective != "mae" else []),
                                 anyway)
    return runs


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


def evaluated(size: Size, runs: dict[str, list[Point]]):
    """(label, point, backbone spec) of every evaluated model: a random-init ViT-T reference (step 0), then each
    run's points, read back from the written checkpoints by `transfer.features.load_backbone` (record block: source
    from the objective, pretrain from the meta, the file's sha256)."""
    depth = {"depth": size.depth} if size.depth else {}
    yield "random ViT-T", Point(0, 0, Path()), {"spec": f"vit-tiny/patch{PATCH}@{RESOLUTION}", "pool": "avg", **depth}
    labels = {**{o: ("vit-tiny", f"ViT-T {o}") for o in STUDENTS}, "teacher": ("vit-small", "teacher ViT-S mae")}
    for run, (spec, label) in labels.items():
        for point in runs[run]:
            yield label, point, {"spec": spec, "checkpoint": str(point.path), "pool": "avg"}


def at_point(record: dict, point: Point) -> dict:
    """`record` with the pretraining point in its setting (and the config hash over that setting)."""
    from contracts.provenance import config_sha256
    record["setting"].update(pretrain_epoch=point.epoch, pretrain_step=point.step)
    record["config_sha256"] = config_sha256(record["setting"])
    return record


def transfer(out: Path, size: Size, runs: dict[str, list[Point]]) -> list[dict]:
    """Step 3: probe and few-shot on the held-out classes; returns one row per (model, pretraining point)."""
    from contracts.records import write_record
    from transfer.features import load_backbone
    from transfer.few_shot import few_shot_records, run_few_shot
    from transfer.linear_probe import probe_records, run_fast_probe
    train, test = held_out("train", size.probe), held_out("test", size.probe)
    episodes = out / "work/episodes" / f"{TRANSFER_DATASET}_5way5shot_{size.episodes}.json"
    common = dict(resolution=RESOLUTION, cache_dir=str(out / "work/features"))
    rows = []
    for label, point, spec in evaluated(size, runs):
        backbone = load_backbone(spec, seed=0)
        probe = run_fast_probe(backbone, train, test, methods=("logreg",), **common)
        shots = run_few_shot(backbone, test, n_way=5, n_shot=5, n_query=15, n_episodes=size.episodes, seed=0,
                             dataset_name=TRANSFER_DATASET, episodes_path=episodes, methods=("logreg",), **common)
        for record in probe_records(probe, TRANSFER_DATASET, resolution=RESOLUTION, seed=0) + \
                few_shot_records(shots, TRANSFER_DATASET):
            write_record(at_point(record, point), out / "records")
        p, s = probe["results"]["logreg"], shots["results"]["logreg"]
        ci95 = 1.96 * (p["top1"] * (1 - p["top1"]) / len(test)) ** 0.5  # binomial, as probe_records
        rows.append({"model": label, "epoch": point.epoch, "step": point.step, "probe": p["top1"],
                     "probe_ci95": ci95, "shot5": s["top1"], "shot5_ci95": s["ci95"]})
        print(f"[vit_proof] {label} @ step {point.step}: probe {p['top1']:.3f}, 5-shot {s['top1']:.3f}"
              f"±{s['ci95']:.3f}", flush=True)
    return rows


def _cell(row: dict, key: str) -> str:
    return f"{100 * row[key]:.1f} ± {100 * row[f'{key}_ci95']:.1f}"


def verdicts(rows: list[dict]) -> list[str]:
    """dmae and tinymim vs mae at 5 shots at every pretraining step the three share (the last one first)."""
    at = {(r["model"], r["step"]): r for r in rows}
    steps = sorted({r["step"] for r in rows if r["model"] == "ViT-T mae"}, reverse=True)
    lines = []
    for step in steps:
        base = at[("ViT-T mae", step)]
        for o in ("dmae", "tinymim"):
            r = at.get((f"ViT-T {o}", step))
            if r is None:
                continue
            gap, margin = r["shot5"] - base["shot5"], r["shot5_ci95"] + base["shot5_ci95"]
            verdict = "tie within the 95% intervals" if abs(gap) <= margin else ("ahead" if gap > 0 else "behind")
            lines.append(f"{o} vs mae, 5-shot at step {step}: {100 * gap:+.1f} points → {verdict}")
    return lines


def table(rows: list[dict], size: Size, seconds: float) -> str:
    """The final table (each model at the end of its pretraining), the curve table and the verdicts."""
    last = {r["model"]: r for r in rows}  # rows come in step order per model
    lines = [f"Fashion-MNIST held-out classes 5-9, {RESOLUTION} px, patch {PATCH}, depth {size.depth or 12}; "
             f"pretraining on {size.images} seen-class images, batch {size.batch}, lr {size.lr:g} per 256: students "
             f"{size.epochs} epochs, teacher {size.teacher_epochs}; probe on {size.probe} + {size.probe} images; "
             f"{size.episodes} episodes; {seconds / 60:.1f} min",
             "", "| model | pretraining steps | linear probe top-1 | 5-way 5-shot top-1 |", "|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['step']} | {_cell(r, 'probe')} | {_cell(r, 'shot5')} |" for r in last.values()]
    lines += ["", "Curves: 5-way 5-shot top-1 / linear probe top-1 at each pretraining step (epoch)", "",
              "| model | step (epoch) | 5-way 5-shot top-1 | linear probe top-1 |", "|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['step']} ({r['epoch']}) | {_cell(r, 'shot5')} | {_cell(r, 'probe')} |"
              for r in rows]
    return "\n".join(lines + [""] + verdicts(rows)) + "\n"


def plot(rows: list[dict], out: Path, logs: Sequence[Path]) -> list[Path]:
    """5-shot and probe top-1 against pretraining step, one line per model (`benchmarks.plots.save_figure`), and
    the pretraining losses (`benchmarks.plots.plot_training_curves`)."""
    import matplotlib.pyplot as plt

    from .plots import plot_training_curves, save_figure
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, key, title in zip(axes, ("shot5", "probe"), ("5-way 5-shot top-1", "linear probe top-1")):
        for model in dict.fromkeys(r["model"] for r in rows):
            mine = [r for r in rows if r["model"] == model]
            ax.errorbar([r["step"] for r in mine], [100 * r[key] for r in mine],
                        yerr=[100 * r[f"{key}_ci95"] for r in mine], marker="o", capsize=3, label=model)
        ax.set(title=title, xlabel="pretraining step", ylabel="%")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, out / "plots", "vit_proof_curves") + \
        plot_training_curves(logs, out / "plots", "vit_proof_pretraining")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.vit_proof", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes (1-block ViTs, 32 images, students 2 epochs, teacher 4), for tests")
    parser.add_argument("--out", default=str(REPO_ROOT / "results/vit_proof"))
    parser.add_argument("--images", type=int, default=3200, help="seen-class pretraining images")
    parser.add_argument("--epochs", type=int, default=4, help="pretraining epochs of each student")
    parser.add_argument("--teacher-epochs", type=int, default=None, help="pretraining epochs of the teacher "
                        "(default 3x --epochs)")
    parser.add_argument("--depth", type=int, default=6, help="blocks of every ViT (12 = the real shapes)")
    parser.add_argument("--lr", type=float, default=1.5e-3, help="peak lr per 256 images (scaled to batch 64)")
    parser.add_argument("--points", type=int, default=4, help="curve points per pretraining run (checkpoints kept "
                        "every max(1, epochs // points) epochs, plus the last)")
    parser.add_argument("--probe", type=int, default=2000, help="held-out images for probe train and test each")
    parser.add_argument("--episodes", type=int, default=200, help="5-way 5-shot episodes")
    parser.add_argument("--resume-anyway", nargs="*", metavar="FIELD",
                        help="passed to every pretraining run's resume: " + ANYWAY_HELP)
    args = parser.parse_args(argv)
    keep_freed_memory()  # large CPU tensors reuse the heap (`contracts.runtime`)
    out, size = Path(args.out), Size.of(args)
    start = time.perf_counter()
    runs = pretrain(out, size, args.resume_anyway)
    rows = transfer(out, size, runs)
    text = table(rows, size, time.perf_counter() - start)
    atomic_write_text(out / "vit_proof.md", text)
    plot(rows, out, [out / f"work/{w}/log.jsonl" for w in ("teacher_mae", *(f"student_{o}" for o in STUDENTS))])
    print(text, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
