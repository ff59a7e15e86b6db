"""Train an mmseg segmentor (UperNet + TinyViT / Swin) with MMEngine's Runner, then record its mIoU.

    python -m transfer.segmentation.train CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--pretrained CKPT]
        [--pretrain NAME] [--data DATA_ROOT] [--mode whole|slide] [--cfg-options KEY=VALUE ...]
    torchrun --nproc_per_node 8 -m transfer.segmentation.train CONFIG --launcher pytorch --sync-bn

The model's keys, the data sets (missing files, label/image size mismatch, unknown label values) and the backbone
checkpoint are checked first, each error naming the key or file. The last validation (mIoU / mAcc / aAcc and
per-class IoU, mmseg's IoUMetric, converted to fractions) is printed and written as a JSON record (task
'segmentation', split 'val') with the validation curve (also in <work_dir>/metric_history.json).
"""
from __future__ import annotations

from typing import Any

from ..openmmlab.cli import train_main
from .harness import SEGMENTATION


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Train; returns the final validation metrics (record names, fractions)."""
    return train_main(SEGMENTATION, argv, __doc__)


if __name__ == "__main__":
    main()
