"""TinyViT-11M Cascade Mask R-CNN (FPN, 4conv1fc GIoU heads), COCO 1x: the paper's Tab. 6 recipe.

The 5M config with the 11M backbone (stage channels 64, 128, 256, 448, drop path 0.1); weights as there.

    python -m transfer.detection.train configs/detection/cascade-mask-rcnn_tinyvit-11m_fpn_1x_coco.py --pretrained CKPT
    python -m transfer.detection.test configs/detection/cascade-mask-rcnn_tinyvit-11m_fpn_1x_coco.py DETECTOR_CKPT
"""
_base_ = ['./cascade-mask-rcnn_tinyvit-5m_fpn_1x_coco.py']

checkpoint = 'checkpoints/tiny_vit_11m_22kto1k_distill.pth'
model = dict(
    backbone=dict(arch='11m', drop_path_rate=0.1, init_cfg=dict(checkpoint=checkpoint)),
    neck=dict(in_channels=[64, 128, 256, 448]))
