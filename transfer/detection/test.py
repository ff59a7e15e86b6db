"""Evaluate a trained mmdet detector on the test split: COCO table (bbox + segm) printed and recorded.

    python -m transfer.detection.test CONFIG CHECKPOINT [--work-dir DIR] [--data ANN IMG_DIR] [--skip-bad]
                                      [--cfg-options k=v ...]
    torchrun --nproc_per_node=8 -m transfer.detection.test CONFIG CHECKPOINT --launcher pytorch
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from mmengine.config import DictAction

from .harness import check_datasets, coco_metrics, coco_table, load_config, use_coco_data, write_detection_record


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="MMEngine config file (configs/detection/*.py)")
    parser.add_argument("checkpoint", help="detector checkpoint written by transfer.detection.train")
    parser.add_argument("--work-dir", help="where logs go (default work_dirs/<config name>)")
    parser.add_argument("--data", nargs=2, metavar=("ANN_FILE", "IMG_DIR"),
                        help="evaluate on this COCO json + image folder (classes from the json)")
    parser.add_argument("--skip-bad", action="store_true",
                        help="drop bad images/annotations (counted) instead of stopping with an error")
    parser.add_argument("--split-name", default="test", help="split name written into the record")
    parser.add_argument("--results-dir", help="where the result record goes (default results/records)")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, help="override config keys: key=value")
    parser.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none")
    parser.add_argument("--local_rank", "--local-rank", type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault("LOCAL_RANK", str(args.local_rank))
    return args


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Evaluate; returns the metrics (bbox_AP, bbox_AP50, ..., segm_APl)."""
    from mmengine.runner import Runner

    args = parse_args(argv)
    if not Path(args.checkpoint).is_file():
        raise FileNotFoundError(f"detector checkpoint {args.checkpoint} does not exist")
    cfg = load_config(args.config, args.cfg_options, args.work_dir)
    cfg.launcher = args.launcher
    if args.data:
        use_coco_data(cfg, *args.data)
    check_datasets(cfg, skip_bad=args.skip_bad, splits=("test_dataloader",))
    cfg.load_from = args.checkpoint
    cfg.model.backbone.init_cfg = None  # the detector checkpoint holds the backbone weights
    runner = Runner.from_cfg(cfg)
    metrics = coco_metrics(runner.test())
    if runner.rank == 0:
        print(coco_table(metrics), flush=True)
        path = write_detection_record(cfg, metrics, split=args.split_name, detector_checkpoint=args.checkpoint,
                                      results_dir=args.results_dir)
        print(f"[detection] record: {path}", flush=True)
    return metrics


if __name__ == "__main__":
    main()
