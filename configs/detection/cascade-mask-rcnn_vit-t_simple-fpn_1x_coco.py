r"""Plain ViT-T/16 Cascade Mask R-CNN (4conv1fc GIoU heads), COCO 1x: ViTDet's recipe shape — a timm ViT-Tiny with a
simple feature pyramid (`ViTSimpleFPN`: deconvolutions / max-pool from the stride-16 map, strides 4-64, 256
channels, LayerNorm), no FPN neck. Global attention in every block (ViTDet's windowed blocks are not used); the
224-px position embedding is resampled to each input (timm dynamic_img_size). Layer-wise lr decay 0.7 (ViTDet's
value for ViT-B; our choice for ViT-T), drop path 0.1, AdamW 1e-4 / wd 0.05, 12 epochs, steps at 8 and 11.
Backbone weights: any checkpoint backbones.load_vit_pretrained reads (ours from mae / dmae / tinymim, official
MAE, timm):
  python -m transfer.detection.train configs/detection/cascade-mask-rcnn_vit-t_simple-fpn_1x_coco.py \
      --cfg-options model.backbone.init_cfg.checkpoint=PATH
"""
_base_ = ['./_base_/cascade-mask-rcnn_fpn_4conv1fc-giou_1x_coco.py']

backbone_name = 'vit-t'
checkpoint = 'work_dirs/vit_tiny_dmae_in1k/checkpoint.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='ViTSimpleFPN',
        arch='vit_tiny_patch16_224',
        img_size=224,
        drop_path_rate=0.1,
        out_channels=256,
        num_outs=5,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint)),
    neck=None)
optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=0.7))
