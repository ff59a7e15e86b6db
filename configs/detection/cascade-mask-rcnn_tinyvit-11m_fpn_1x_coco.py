# TinyViT-11M Cascade Mask R-CNN (FPN, 4conv1fc GIoU heads), COCO 1x: the paper's Tab. 6 recipe.
# Backbone weights: any TinyViT checkpoint backbones.load_pretrained reads (ours / official / timm /
# mmpretrain), e.g. --cfg-options model.backbone.init_cfg.checkpoint=PATH; init_cfg=None trains from scratch.
_base_ = ['./_base_/cascade-mask-rcnn_fpn_4conv1fc-giou_1x_coco.py']

checkpoint = 'checkpoints/tiny_vit_11m_22kto1k_distill.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='TinyViT',
        arch='11m',
        img_size=224,
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.1,
        frozen_stages=-1,
        with_cp=False,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint)),
    neck=dict(in_channels=[64,128,256,448]))
