"""TinyViT-21M Cascade Mask R-CNN (FPN, 4conv1fc GIoU heads), COCO 1x: the paper's Tab. 6 recipe.

The 5M config with the 21M backbone (stage channels 96, 192, 384, 576, drop path 0.2); weights as there.

    python -m transfer.detection.train configs/detection/cascade-mask-rcnn_tinyvit-21m_fpn_1x_coco.py --pretrained CKPT
    python -m transfer.detection.test configs/detection/cascade-mask-rcnn_tinyvit-21m_fpn_1x_coco.py DETECTOR_CKPT
"""
_base_ = ['./cascade-mask-rcnn_tinyvit-5m_fpn_1x_coco.py']

checkpoint = 'checkpoints/tiny_vit_21m_22kto1k_distill.pth'
model = dict(
    backbone=dict(arch='21m', drop_path_rate=0.2, init_cfg=dict(checkpoint=checkpoint)),
    neck=dict(in_channels=[96, 192, 384, 576]))
