"""Per-step training time of one student in the three modes of `distill_pretrain.train`, same run, same batch:
(a) scratch (ground truth, no teacher), (b) stored (fast distillation: replay + store read), (c) online (the
teacher runs every step). Goal (paper §3.1): (b) ≤ 1.05 × (a); supp. §D reports (c) costing 29.8% more than (b)
with Florence as the teacher.

    python -m benchmarks.distill_speed [--quick] [--img-size 112] [--batch 16] [--steps 20]

The teacher must cost ≥ 10× the student's forward FLOPs (counted with `torch.utils.flop_counter`). No offline
teacher that large exists, so the default teacher is timm's `convnext_base` (≈12× TinyViT-5M) with random weights,
written to a temp file and loaded through `distill_pretrain.teachers.build_teacher` like any teacher: its speed does not
depend on its weights. The store for (b) is saved by the same teacher with `distill_pretrain.save_logits` over
Fashion-MNIST. Step time = wall time between optimizer steps (data loading included), median over the measured
steps after warm-up. GPU: AMP on. Writes a `distill_speed` record.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import torch

from contracts.assets import REPO_ROOT
from contracts.records import make_record, write_record
from contracts.provenance import machine_description

TINY_CONFIG = REPO_ROOT / "configs" / "distill" / "tinyvit_5m_fmnist_tiny_cpu.py"
SAVE_CONFIG = REPO_ROOT / "configs" / "distill" / "save_logits_mobilenetv2_fmnist.py"


def forward_flops(model: torch.nn.Module, img_size: int) -> int:
    """FLOPs of one forward pass on one image (torch's flop counter)."""
    from torch.utils.flop_counter import FlopCounterMode
    model = model.eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.randn(1, 3, img_size, img_size))
    return int(counter.get_total_flops())


def random_teacher(name: str, folder: Path) -> dict[str, Any]:
    """A timm model with random weights saved to `folder`, as a `build_teacher` config."""
    import timm
    path = folder / f"{name}_random.pth"
    torch.save(timm.create_model(name, pretrained=False, num_classes=1000).state_dict(), path)
    return dict(type="timm", name=name, weights=str(path))


def measure(mode: str, *, store: Path, teacher: dict[str, Any], img_size: int, batch: int, steps: int,
            warmup: int, workers: int, work_dir: Path, num_samples: int) -> list[float]:
    """Step times (s) of `steps` optimizer steps after `warmup`, one fresh Trainer."""
    from distill_pretrain.train import Trainer, load_config
    options = {"mode": mode, "store.path": str(store), "store.cycle_epochs": True, "num_classes": 1000,
               "data.train.limit": num_samples,
               "student.img_size": img_size, "data.batch_size": batch, "data.num_workers": workers,
               "data.val": None, "data.aug.img_size": img_size, "epochs": 100, "stop_after_steps": warmup + steps,
               "eval_teacher_agreement": False, "log_interval": 1000, "record": False, "loss.gt_weight": 0.0,
               "loss.label_smoothing": 0.1, "amp": True}
    cfg = load_config(TINY_CONFIG, options)
    cfg.teacher = teacher
    cfg.data.aug = _store_aug(store)  # scratch / online: the same augmentation as the store's, only targets differ
    history = Trainer(cfg, work_dir / mode).train()
    return [h["step_s"] for h in history[warmup:]]


def _store_aug(store: Path) -> dict[str, Any]:
    from distill_pretrain.store import LogitStore
    return LogitStore.open(store).manifest["transform"]


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.distill_speed", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="64 px, batch 8, 4 measured steps (a smoke run)")
    parser.add_argument("--img-size", type=int, default=None, help="default 224 on GPU, 112 on CPU")
    parser.add_argument("--batch", type=int, default=None, help="per-step batch (default 128 on GPU, 16 on CPU)")
    parser.add_argument("--steps", type=int, default=None, help="measured steps per mode (default 30, quick 4)")
    parser.add_argument("--warmup", type=int, default=None, help="unmeasured first steps (default 3, quick 1)")
    parser.add_argument("--teacher", default="convnext_base", help="timm model name (random weights)")
    parser.add_argument("--workers", type=int, default=None, help="data-loader workers (default 8 GPU / 0 CPU)")
    parser.add_argument("--results-dir", default=None, help="record folder (default results/records)")
    args = parser.parse_args(argv)
    gpu = torch.cuda.is_available()
    img = args.img_size or (64 if args.quick else 224 if gpu else 112)
    batch = args.batch or (8 if args.quick else 128 if gpu else 16)
    steps = args.steps or (4 if args.quick else 30)
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 3)
    workers = args.workers if args.workers is not None else (8 if gpu else 0)
    n_samples = batch * (warmup + steps)

    from backbones import TinyViT
    from distill_pretrain import save_logits
    from distill_pretrain.teachers import build_teacher
    with tempfile.TemporaryDirectory(prefix="distill_speed_") as tmp:
        tmp = Path(tmp)
        teacher_cfg = random_teacher(args.teacher, tmp)
        teacher, _ = build_teacher(teacher_cfg)
        ratio = forward_flops(teacher, img) / forward_flops(TinyViT("5m", img_size=img, num_classes=1000), img)
        print(f"teacher {args.teacher} / student TinyViT-5M forward FLOPs at {img}px: {ratio:.1f}×", flush=True)
        if ratio < 10:
            print(f"WARNING: teacher is only {ratio:.1f}× the student's FLOPs (goal ≥ 10×)", flush=True)
        del teacher
        store = tmp / "store"
        t0 = time.perf_counter()
        save_logits.main([str(SAVE_CONFIG), "--cfg-options", f"store.path={store}", f"dataset.limit={n_samples}",
                          "epochs=1", f"num_workers={workers}", f"batch_size={batch}", "store.topk=10",
                          f"augment.img_size={img}", "augment.mixup_alpha=0.0", "augment.cutmix_alpha=0.0",
                          "teacher.type=timm", f"teacher.name={args.teacher}",
                          f"teacher.weights={teacher_cfg['weights']}"])
        print(f"store saved in {time.perf_counter() - t0:.1f} s", flush=True)
        times = {}
        for mode in ("scratch", "stored", "online"):
            times[mode] = measure(mode, store=store, teacher=teacher_cfg, img_size=img, batch=batch, steps=steps,
                                  warmup=warmup, workers=workers, work_dir=tmp / "runs", num_samples=n_samples)
            print(f"{mode:8s} median step {statistics.median(times[mode]):.4f} s over {len(times[mode])} steps",
                  flush=True)
    med = {m: statistics.median(t) for m, t in times.items()}
    metrics = {"scratch_step_s": med["scratch"], "stored_step_s": med["stored"], "online_step_s": med["online"],
               "stored_over_scratch": med["stored"] / med["scratch"],
               "online_over_stored": med["online"] / med["stored"],
               "teacher_over_student_flops": ratio}
    print(f"stored / scratch = {metrics['stored_over_scratch']:.3f} (goal ≤ 1.05); online / stored = "
          f"{metrics['online_over_stored']:.3f} (paper supp. §D: Florence online costs 1/(1-0.298) = 1.42×); "
          f"teacher/student FLOPs {ratio:.1f}× — {machine_description()}")
    record = make_record("distill_speed", dataset="FashionMNIST", split="train", metrics=metrics,
                         backbone={"name": "tinyvit-5m", "source": "random"},
                         setting={"img_size": img, "batch": batch, "steps": steps, "warmup": warmup,
                                  "teacher": args.teacher, "workers": workers, "amp": gpu, "quick": args.quick})
    path = write_record(record, args.results_dir)
    print(f"record: {path}")
    return record


if __name__ == "__main__":
    main()
