"""Floor 3 — transfer harnesses: detection (mmdet) and segmentation (mmseg) through `openmmlab`, linear probe,
few-shot and fine-tuning; their shared parts: frozen backbones and cached features (`features`), the data-set names
(`dataset_names`), Tab. 5's shape (`tab5`) and the probe, few-shot and fine-tune command lines (`cli_common`)."""
