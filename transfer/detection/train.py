"""Train an mmdet detector (TinyViT / Swin Cascade Mask R-CNN) with MMEngine's Runner, then test it and record.

    python -m transfer.detection.train CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--data ANN IMG_DIR]
        [--pretrained CKPT] [--pretrain NAME] [--skip-bad] [--no-test] [--cfg-options k=v ...]
    torchrun --nproc_per_node=8 -m transfer.detection.train CONFIG --launcher pytorch

Before the runner starts, the model's keys, every COCO json (against its images, see transfer.detection.validate)
and the backbone checkpoint are checked, each error naming the key or file. After training, the test split is
evaluated (COCO table printed) and written as a task-'detection' record naming the backbone checkpoint; the
validation metrics of every val round go to <work_dir>/metric_history.json and the record's curve.
"""
from __future__ import annotations

from typing import Any

from ..openmmlab.cli import train_main
from .harness import DETECTION


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Train; returns the test metrics (record names, fractions; {} with --no-test)."""
    return train_main(DETECTION, argv, __doc__)


if __name__ == "__main__":
    main()
