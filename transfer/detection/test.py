"""Evaluate a trained mmdet detector on the test split: COCO table (bbox + segm) printed and recorded.

    python -m transfer.detection.test CONFIG CHECKPOINT [--work-dir DIR] [--data ANN IMG_DIR] [--skip-bad]
        [--pretrained CKPT] [--pretrain NAME] [--split-name NAME] [--cfg-options k=v ...]
    torchrun --nproc_per_node=8 -m transfer.detection.test CONFIG CHECKPOINT --launcher pytorch

The checkpoint must match the configured detector (names and shapes; the differences are named otherwise). The
record names the backbone checkpoint the detector was fine-tuned from (stored in the checkpoint by
transfer.detection.train; `--pretrained` for checkpoints that do not say) and the detector checkpoint's sha256.
"""
from __future__ import annotations

from typing import Any

from ..openmmlab.cli import test_main
from .harness import DETECTION


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Evaluate; returns the metrics (bbox_ap, bbox_ap50, ..., segm_ap_l: fractions)."""
    return test_main(DETECTION, argv, __doc__)


if __name__ == "__main__":
    main()
