"""mmdet training-iteration time: TinyViT-21M vs Swin-T Cascade Mask R-CNN (the paper's Tab. 6 configs), same input.

    python -m benchmarks.detection_speed [--quick] [--size 512] [--rounds 3] [--warmup 1] [--device cuda]
                                         [--records DIR] [--no-record] [--threads N]

Both detectors are built from configs/detection/ (full heads, random weights, 7 classes of the real mini COCO
set), fed the same real images through the same pipeline, and timed in one process in interleaved rounds of one
training iteration each (`benchmarks.common.timed_rounds`), so that a shared machine's load falls on both; the
median round counts. Prints per-iteration times and the ratio TinyViT/Swin; writes a task-'iteration_time' record.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Sequence

import torch

from benchmarks.common import add_common_flags, save_record, start_run, timed_rounds
from contracts.records import backbone_block, make_record

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


def build_parser() -> argparse.ArgumentParser:
    """The command line of `python -m benchmarks.detection_speed`."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.detection_speed", description=__doc__.splitlines()[0])
    add_common_flags(parser, quick="256 px, 2 timed rounds", device=True, rounds=3, warmup=1)
    parser.add_argument("--size", type=int, default=512, help="longer image side after resize (keep ratio)")
    return parser


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    args = build_parser().parse_args(argv)
    if args.quick:
        args.size, args.rounds = 256, 2
    device = start_run(args)
    from transfer.detection import build_mini_coco

    with tempfile.TemporaryDirectory() as tmp:
        ann_file, img_dir, _ = build_mini_coco(tmp)
        runs = {name: _build(cfg, ann_file, img_dir, args.size, args.device) for name, cfg in CONFIGS.items()}
        steps = {name: (lambda m=model, b=batch, w=wrapper: m.train_step(b, w))
                 for name, (model, batch, wrapper, _) in runs.items()}
        median = timed_rounds(steps, args.rounds, warmup=args.warmup, device=device,
                              label="detection_speed").median()
    ratio = median["tinyvit-21m"] / median["swin-t"]
    batch_size = runs["swin-t"][3].train_dataloader.batch_size
    print(f"Cascade Mask R-CNN train iteration, batch {batch_size}, {args.size} px, {args.device}, "
          f"{torch.get_num_threads()} threads (median of {args.rounds}):")
    for name, value in median.items():
        print(f"  {name:12s} {value:7.3f} s/iter")
    print(f"  ratio TinyViT-21M / Swin-T = {ratio:.3f}")
    metrics = {"tinyvit_21m_s_per_iter": median["tinyvit-21m"], "swin_t_s_per_iter": median["swin-t"],
               "ratio_tinyvit21m_over_swint": ratio}
    setting = {"size": args.size, "batch_size": batch_size, "rounds": args.rounds, "device": args.device,
               "threads": torch.get_num_threads(), "detector": "CascadeMaskRCNN 4conv1fc GIoU (full heads)",
               "configs": list(CONFIGS.values())}
    record = make_record("iteration_time", dataset="mini_coco", split="train", metrics=metrics,
                         backbone=backbone_block("tinyvit-21m", "random"), setting=setting)
    save_record(record, args)
    return metrics


if __name__ == "__main__":
    main()
