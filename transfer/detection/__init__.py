"""Cascade Mask R-CNN with TinyViT backbones in mmdet 3.x (configs in configs/detection/).

Entry points: `python -m transfer.detection.train CONFIG`, `python -m transfer.detection.test CONFIG CHECKPOINT`,
`python -m transfer.detection.mini_coco OUT_DIR`.
Public API: `build_mini_coco` (the real 4-image COCO-format set), `validate_coco` / `BadCocoInput` / `CocoCheck`
(check a COCO json + image folder before mmdet sees it), `use_coco_data` (point a config at any COCO json),
`coco_metrics` / `coco_table`, `MetricHistoryHook` (registered; the AP-vs-iteration curve), `PlainCheckpointHook` (registered;
checkpoints that `torch.load(weights_only=True)` reads).
"""
from ..runner_hooks import PlainCheckpointHook
from .harness import MetricHistoryHook, coco_metrics, coco_table, use_coco_data
from .mini_coco import build_mini_coco
from .validate import BadCocoInput, CocoCheck, validate_coco

__all__ = ["build_mini_coco", "validate_coco", "BadCocoInput", "CocoCheck", "use_coco_data", "coco_metrics",
           "coco_table", "MetricHistoryHook",
           "PlainCheckpointHook"]
