"""mmdet training-iteration time: TinyViT-21M vs Swin-T Cascade Mask R-CNN (the paper's Tab. 6 configs), same input.

    python -m benchmarks.detection_speed [--quick] [--size 512] [--iters 3] [--threads N] [--results-dir DIR]

Both detectors are built from configs/detection/ (full heads, random weights, 7 classes of the real mini COCO
set), fed the same real images through the same pipeline, and timed in one process, alternating A/B each
iteration so that a shared machine's load falls on both. Prints per-iteration times and the ratio TinyViT/Swin;
writes a task-'iteration_time' record.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from contracts.records import backbone_block, make_record, write_record
from contracts.runtime import keep_freed_memory

CONFIGS = {
    "tinyvit-21m": "configs/detection/cascade-mask-rcnn_tinyvit-21m_fpn_1x_coco.py",
    "swin-t": "configs/detection/cascade-mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py",
}


def _build(config: str, ann_file: Path, img_dir: Path, size: int, device: str):
    from mmengine.dataset import pseudo_collate
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope

    import backbones  # noqa: F401 - registers TinyViT and the layer-decay constructor
    from mmdet.registry import DATASETS, MODELS
    from transfer.detection.harness import load_config, use_coco_data

    cfg = load_config(config)
    use_coco_data(cfg, ann_file, img_dir)
    pipeline = cfg.train_dataloader.dataset.pipeline
    for step in pipeline:
        if step.type == "Resize":
            step.scale = (size, size)
    pipeline[:] = [s for s in pipeline if s.type != "RandomFlip"]
    init_default_scope("mmdet")
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).to(device)
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    batch = pseudo_collate([dataset[i] for i in range(cfg.train_dataloader.batch_size)])
    return model.train(), batch, build_optim_wrapper(model, cfg.optim_wrapper), cfg


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="256 px, 2 timed iterations (smoke run)")
    parser.add_argument("--size", type=int, default=512, help="longer image side after resize (keep ratio)")
    parser.add_argument("--iters", type=int, default=3, help="timed iterations per detector (after 1 warm-up)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--results-dir", help="where the record goes (default results/records)")
    args = parser.parse_args(argv)
    keep_freed_memory()  # large CPU tensors reuse the heap (`contracts.runtime`)
    if args.quick:
        args.size, args.iters = 256, 2
    if args.threads:
        torch.set_num_threads(args.threads)
    from transfer.detection import build_mini_coco

    with tempfile.TemporaryDirectory() as tmp:
        ann_file, img_dir, _ = build_mini_coco(tmp)
        runs = {name: _build(cfg, ann_file, img_dir, args.size, args.device) for name, cfg in CONFIGS.items()}
        times: dict[str, list[float]] = {name: [] for name in runs}
        for i in range(args.iters + 1):
            for name, (model, batch, wrapper, _) in runs.items():
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()
                start = time.perf_counter()
                model.train_step(batch, wrapper)
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()
                if i > 0:  # the first iteration of each is warm-up
                    times[name].append(time.perf_counter() - start)
            print(f"[detection_speed] iteration {i}/{args.iters}"
                  + ("" if i == 0 else ": " + ", ".join(f"{n} {t[-1]:.2f}s" for n, t in times.items())), flush=True)
    median = {name: statistics.median(t) for name, t in times.items()}
    ratio = median["tinyvit-21m"] / median["swin-t"]
    batch_size = runs["swin-t"][3].train_dataloader.batch_size
    print(f"Cascade Mask R-CNN train iteration, batch {batch_size}, {args.size} px, {args.device}, "
          f"{torch.get_num_threads()} threads (median of {args.iters}):")
    for name, value in median.items():
        print(f"  {name:12s} {value:7.3f} s/iter")
    print(f"  ratio TinyViT-21M / Swin-T = {ratio:.3f}")
    metrics = {"tinyvit_21m_s_per_iter": median["tinyvit-21m"], "swin_t_s_per_iter": median["swin-t"],
               "ratio_tinyvit21m_over_swint": ratio}
    setting = {"size": args.size, "batch_size": batch_size, "iters": args.iters, "device": args.device,
               "threads": torch.get_num_threads(), "detector": "CascadeMaskRCNN 4conv1fc GIoU (full heads)",
               "configs": list(CONFIGS.values())}
    record = make_record("iteration_time", dataset="mini_coco", split="train", metrics=metrics,
                         backbone=backbone_block("tinyvit-21m", "random"), setting=setting)
    print(f"[detection_speed] record: {write_record(record, args.results_dir)}")
    return metrics


if __name__ == "__main__":
    main()
