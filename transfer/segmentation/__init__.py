"""Semantic segmentation transfer: UperNet with TinyViT (or Swin) backbones in mmseg 1.x.

Entry points: `python -m transfer.segmentation.train CONFIG ...`, `python -m transfer.segmentation.test CONFIG
CHECKPOINT ...`, `python -m transfer.segmentation.mini_set OUT_DIR` (the shared flags and flow:
`transfer.openmmlab`). Configs: `configs/segmentation/`. Importing it registers `PerClassIoUMetric` and the
harness hooks.
"""
from .. import openmmlab  # noqa: F401 - registers the harness hooks (configs import this package)
from .harness import SEGMENTATION, seg_metrics
from .metrics import PerClassIoUMetric
from .mini_set import VOC_CLASSES, build_mini_seg, voc_palette
from .validation import SegDataError, validate_seg_dataset

__all__ = ["build_mini_seg", "validate_seg_dataset", "SegDataError", "PerClassIoUMetric", "SEGMENTATION",
           "seg_metrics", "VOC_CLASSES", "voc_palette"]
