"""Transfer harnesses: detection (mmdet), segmentation (mmseg), linear probe, few-shot."""
