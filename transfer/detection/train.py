"""Train an mmdet detector (TinyViT / Swin Cascade Mask R-CNN) with MMEngine's Runner, then test it and record.

    python -m transfer.detection.train CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--data ANN IMG_DIR]
                                       [--skip-bad] [--no-test] [--cfg-options k=v ...]
    torchrun --nproc_per_node=8 -m transfer.detection.train CONFIG --launcher pytorch

Before the runner starts, every COCO json is checked against its images (see transfer.detection.validate) and
a missing backbone checkpoint is reported. After training, the test split is evaluated (COCO table printed)
and written as a task-'detection' record; validation metrics of every val round go to
<work_dir>/metric_history.json.
"""
from __future__ import annotations

import argparse
import os

from mmengine.config import DictAction

from .harness import (add_harness_hooks, check_backbone_init, check_datasets, coco_metrics, coco_table,
                      load_config, use_coco_data, write_detection_record)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="MMEngine config file (configs/detection/*.py)")
    parser.add_argument("--work-dir", help="where logs and checkpoints go (default work_dirs/<config name>)")
    parser.add_argument("--resume", nargs="?", const="auto", default=None,
                        help="resume from CKPT, or from the latest checkpoint in the work dir when no path is given")
    parser.add_argument("--amp", action="store_true", help="automatic mixed precision (AmpOptimWrapper)")
    parser.add_argument("--data", nargs=2, metavar=("ANN_FILE", "IMG_DIR"),
                        help="train, validate and test on this COCO json + image folder (classes from the json)")
    parser.add_argument("--skip-bad", action="store_true",
                        help="drop bad images/annotations (counted) instead of stopping with an error")
    parser.add_argument("--no-test", action="store_true", help="do not evaluate the test split after training")
    parser.add_argument("--results-dir", help="where the result record goes (default results/records)")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, help="override config keys: key=value")
    parser.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none",
                        help="job launcher for many GPUs (torchrun → pytorch)")
    parser.add_argument("--local_rank", "--local-rank", type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault("LOCAL_RANK", str(args.local_rank))
    return args


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Train; returns the test metrics ({} with --no-test)."""
    from mmengine.runner import Runner

    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options, args.work_dir)
    cfg.launcher = args.launcher
    if args.data:
        use_coco_data(cfg, *args.data)
    if args.amp:
        cfg.optim_wrapper.type = "AmpOptimWrapper"
        cfg.optim_wrapper.setdefault("loss_scale", "dynamic")
    if args.resume == "auto":
        cfg.resume, cfg.load_from = True, None
    elif args.resume:
        cfg.resume, cfg.load_from = True, args.resume
    check_datasets(cfg, skip_bad=args.skip_bad)
    check_backbone_init(cfg)
    add_harness_hooks(cfg)

    runner = Runner.from_cfg(cfg)
    runner.train()
    if args.no_test or cfg.get("test_dataloader") is None:
        return {}
    metrics = coco_metrics(runner.test())
    if runner.rank == 0:
        print(coco_table(metrics), flush=True)
        last = os.path.join(runner.work_dir, "last_checkpoint")
        checkpoint = open(last).read().strip() if os.path.exists(last) else None
        path = write_detection_record(cfg, metrics, split="test", detector_checkpoint=checkpoint,
                                      results_dir=args.results_dir)
        print(f"[detection] record: {path}", flush=True)
    return metrics


if __name__ == "__main__":
    main()
