"""Semantic segmentation transfer: UperNet with TinyViT (or Swin) backbones in mmseg 1.x.

Entry points: `python -m transfer.segmentation.train CONFIG ...`, `python -m transfer.segmentation.test CONFIG
CHECKPOINT ...`, `python -m transfer.segmentation.mini_set OUT_DIR`. Configs: `configs/segmentation/`.
"""
from ..runner_hooks import PlainCheckpointHook
from .hooks import MetricHistoryHook
from .metrics import PerClassIoUMetric
from .mini_set import VOC_CLASSES, build_mini_seg, voc_palette
from .validation import SegDataError, validate_seg_dataset

__all__ = ["build_mini_seg", "validate_seg_dataset", "SegDataError", "PerClassIoUMetric", "MetricHistoryHook",
           "PlainCheckpointHook", "VOC_CLASSES", "voc_palette"]
