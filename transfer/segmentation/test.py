"""Evaluate a trained mmseg segmentor checkpoint with MMEngine's Runner and record its mIoU.

    python -m transfer.segmentation.test CONFIG CHECKPOINT [--mode whole|slide] [--stride H W] [--data DATA_ROOT]
        [--pretrained CKPT] [--pretrain NAME] [--work-dir DIR] [--results-dir DIR] [--cfg-options KEY=VALUE ...]

The checkpoint must match the configured segmentor (names and shapes). Prints mIoU / mAcc / aAcc and per-class
IoU and writes a JSON record (task 'segmentation', split 'test', fractions) naming the backbone checkpoint the
segmentor was fine-tuned from (stored in the checkpoint by transfer.segmentation.train; `--pretrained` otherwise).
"""
from __future__ import annotations

from typing import Any

from ..openmmlab.cli import test_main
from .harness import SEGMENTATION


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run evaluation; returns the metrics (miou, macc, aacc, iou_per_class: fractions)."""
    return test_main(SEGMENTATION, argv, __doc__)


if __name__ == "__main__":
    main()
