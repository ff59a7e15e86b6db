"""Evaluate a trained mmseg segmentor checkpoint with MMEngine's Runner and record its mIoU.

    python -m transfer.segmentation.test CONFIG CHECKPOINT [--mode whole|slide] [--stride H W]
        [--work-dir DIR] [--results-dir DIR] [--cfg-options KEY=VALUE ...]

Prints mIoU / mAcc / aAcc and per-class IoU (mmseg's IoUMetric) and writes a JSON record (task 'segmentation',
split 'test').
"""
from __future__ import annotations

import argparse
import os
import os.path as osp

from .harness import add_common_args, format_metrics, load_config, validate_data, write_segmentation_record


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="the MMEngine config the checkpoint was trained with")
    parser.add_argument("checkpoint", help="segmentor checkpoint written by transfer.segmentation.train")
    add_common_args(parser)
    parser.add_argument("--local-rank", "--local_rank", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("LOCAL_RANK", str(args.local_rank))
    return args


def main(argv: list[str] | None = None) -> dict:
    """Run evaluation; returns the metrics."""
    args = parse_args(argv)
    import backbones  # noqa: F401 - registers TinyViT (the package __init__ registers the metric and hooks)
    from mmengine.runner import Runner

    from backbones import file_sha256


    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f"checkpoint {args.checkpoint}: file not found")
    cfg = load_config(args)
    cfg.load_from = args.checkpoint
    # the segmentor checkpoint holds every weight (Runner.test never runs init_weights); the backbone's init_cfg
    # (or --pretrained) only names the checkpoint it was fine-tuned from, for the record
    if not args.no_validate_data:
        validate_data(cfg, ("test_dataloader",))
    runner = Runner.from_cfg(cfg)
    metrics = runner.test()
    if runner.rank == 0:
        print(format_metrics(metrics), flush=True)
        path = write_segmentation_record(
            cfg, args.config, metrics, split="test", results_dir=args.results_dir,
            extra_setting={"segmentor_checkpoint_sha256": file_sha256(args.checkpoint)})
        print(f"[segmentation] record: {path}", flush=True)
    return metrics


if __name__ == "__main__":
    main()
