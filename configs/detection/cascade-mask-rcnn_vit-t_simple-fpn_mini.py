r"""Small-data path for the plain ViT-T detector: the slim heads, data and schedule of the TinyViT mini config
(64-channel pyramid and heads, few proposals / RoIs, 192 px) with `ViTSimpleFPN` (ViT-T, no FPN neck) as backbone.
  python -m transfer.detection.mini_coco data/mini_coco
  python -m transfer.detection.train configs/detection/cascade-mask-rcnn_vit-t_simple-fpn_mini.py \
      [--cfg-options model.backbone.init_cfg.checkpoint=PATH]
"""
_base_ = ['./cascade-mask-rcnn_tinyvit-5m_fpn_mini.py']

backbone_name = 'vit-t'
model = dict(
    backbone=dict(
        _delete_=True,
        type='ViTSimpleFPN',
        arch='vit_tiny_patch16_224',
        img_size=192,
        drop_path_rate=0.0,
        out_channels={{_base_.channels}},
        num_outs=5,
        init_cfg=None),
    neck=None)
