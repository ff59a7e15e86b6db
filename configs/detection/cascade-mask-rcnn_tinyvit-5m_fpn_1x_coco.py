"""TinyViT-5M Cascade Mask R-CNN (FPN, 4conv1fc GIoU heads), COCO 1x: the paper's Tab. 6 recipe.

Backbone weights: any TinyViT checkpoint backbones.load_pretrained reads (ours / official / timm / mmpretrain);
`--pretrained PATH` sets it, `--cfg-options model.backbone.init_cfg=None` trains from scratch.

    python -m transfer.detection.train configs/detection/cascade-mask-rcnn_tinyvit-5m_fpn_1x_coco.py --pretrained CKPT
    python -m transfer.detection.test configs/detection/cascade-mask-rcnn_tinyvit-5m_fpn_1x_coco.py DETECTOR_CKPT
"""
_base_ = ['./_base_/cascade-mask-rcnn_fpn_4conv1fc-giou_1x_coco.py']

checkpoint = 'checkpoints/tiny_vit_5m_22kto1k_distill.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='TinyViT',
        arch='5m',
        img_size=224,
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.0,
        frozen_stages=-1,
        with_cp=False,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint)),
    neck=dict(in_channels=[64, 128, 160, 320]))
