"""Train an mmseg segmentor (UperNet + TinyViT / Swin) with MMEngine's Runner, then record its mIoU.

    python -m transfer.segmentation.train CONFIG [--work-dir DIR] [--resume] [--amp] [--pretrained CKPT]
        [--mode whole|slide] [--cfg-options KEY=VALUE ...]
    torchrun --nproc_per_node 8 -m transfer.segmentation.train CONFIG --launcher pytorch --sync-bn

The data sets are checked first (missing files, label/image size mismatch, unknown label values). Validation
results (mIoU / mAcc / aAcc and per-class IoU, mmseg's IoUMetric) are printed and written as a JSON record
(task 'segmentation', split 'val') with the validation curve.
"""
from __future__ import annotations

import argparse
import os

from .harness import add_common_args, format_metrics, history_hook, load_config, validate_data, \
    write_segmentation_record


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="MMEngine config, e.g. configs/segmentation/upernet_tinyvit-5m_512x512_160k_ade20k.py")
    parser.add_argument("--resume", action="store_true", help="resume from the latest checkpoint in the work dir")
    parser.add_argument("--amp", action="store_true", help="mixed precision (AmpOptimWrapper)")
    parser.add_argument("--sync-bn", action="store_true", help="convert BN to SyncBN (multi-GPU runs only)")
    add_common_args(parser)
    parser.add_argument("--local-rank", "--local_rank", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("LOCAL_RANK", str(args.local_rank))
    return args


def main(argv: list[str] | None = None) -> dict:
    """Run training; returns the final validation metrics."""
    args = parse_args(argv)
    import backbones  # noqa: F401 - registers TinyViT and the layer-decay constructor
    from mmengine.runner import Runner

    cfg = load_config(args)
    if args.amp:
        import torch
        if not torch.cuda.is_available():
            raise SystemExit("--amp needs a GPU (MMEngine's AmpOptimWrapper runs on CUDA/NPU/MLU only)")
        cfg.optim_wrapper.type = "AmpOptimWrapper"
        cfg.optim_wrapper.setdefault("loss_scale", "dynamic")
    if args.sync_bn:
        cfg.sync_bn = "torch"
    if args.resume:
        cfg.resume = True  # with load_from unset MMEngine resumes from the latest checkpoint in work_dir
    if not args.no_validate_data:
        validate_data(cfg, ("train_dataloader", "val_dataloader"))
    runner = Runner.from_cfg(cfg)
    runner.train()
    if runner.val_loop is None:
        return {}
    hook = history_hook(runner)
    metrics = hook.last or runner.val()
    if runner.rank == 0:
        print(format_metrics(metrics), flush=True)
        path = write_segmentation_record(cfg, args.config, metrics, split="val", results_dir=args.results_dir,
                                         extra_setting={"amp": args.amp}, curve=hook.history)
        print(f"[segmentation] record: {path}", flush=True)
    return metrics


if __name__ == "__main__":
    main()
