"""Cascade Mask R-CNN with TinyViT backbones in mmdet 3.x (configs in configs/detection/).

Entry points: `python -m transfer.detection.train CONFIG`, `python -m transfer.detection.test CONFIG CHECKPOINT`,
`python -m transfer.detection.mini_coco OUT_DIR` (the shared flags and flow: `transfer.openmmlab`).
Public API: `build_mini_coco` (the real 4-image COCO-format set), `validate_coco` / `BadCocoInput` / `CocoCheck`
(check a COCO json + image folder before mmdet sees it), `use_coco_data` (point a config at any COCO json),
`coco_metrics` / `coco_table`, `DETECTION` (the task spec). Importing it registers the harness hooks
(`tinyvit_bench.PlainCheckpointHook`, `tinyvit_bench.MetricHistoryHook`).
"""
from .. import openmmlab  # noqa: F401 - registers the harness hooks (configs import this package)
from .harness import DETECTION, coco_metrics, coco_table, use_coco_data
from .mini_coco import build_mini_coco
from .validate import BadCocoInput, CocoCheck, validate_coco

__all__ = ["build_mini_coco", "validate_coco", "BadCocoInput", "CocoCheck", "use_coco_data", "coco_metrics",
           "coco_table", "DETECTION"]
