"""mmseg's IoUMetric with the per-class IoU in its results."""
from __future__ import annotations

import torch
from mmseg.evaluation import IoUMetric
from mmseg.registry import METRICS


@METRICS.register_module()
class PerClassIoUMetric(IoUMetric):
    """mmseg's `IoUMetric` (same mIoU / mAcc / aAcc, in percent as mmseg reports them) plus `IoU.<class>` for
    every class present. The harness converts all of them to fractions once (`harness.seg_metrics`).

    Classes absent from both ground truth and prediction (union 0) are left out, as mmseg's mean leaves them out.
    """

    def compute_metrics(self, results: list) -> dict[str, float]:
        metrics = super().compute_metrics(results)
        intersect = sum(r[0] for r in results)
        union = sum(r[1] for r in results)
        for name, inter, uni in zip(self.dataset_meta["classes"], torch.as_tensor(intersect).tolist(),
                                    torch.as_tensor(union).tolist()):
            if uni > 0:
                metrics[f"IoU.{name}"] = round(100.0 * inter / uni, 2)
        return metrics
