"""The Swin-T row of the paper's Tab. 6 in the same harness: mmdet's own SwinTransformer (as in mmdet's
swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py) with the same Cascade Mask R-CNN heads and schedule, and mmdet's
Swin optimizer settings (no decay on norms, position embeddings and relative position bias tables).

    python -m transfer.detection.train configs/detection/cascade-mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py \
        --pretrained checkpoints/swin_tiny_patch4_window7_224.pth --pretrain in1k
"""
_base_ = ['./_base_/cascade-mask-rcnn_fpn_4conv1fc-giou_1x_coco.py']

checkpoint = 'checkpoints/swin_tiny_patch4_window7_224.pth'  # the official Swin-T file; convert_weights maps it
model = dict(
    backbone=dict(
        _delete_=True,
        type='SwinTransformer',
        embed_dims=96,
        depths=[2, 2, 6, 2],
        num_heads=[3, 6, 12, 24],
        window_size=7,
        mlp_ratio=4,
        qkv_bias=True,
        qk_scale=None,
        drop_rate=0.,
        attn_drop_rate=0.,
        drop_path_rate=0.2,
        patch_norm=True,
        out_indices=(0, 1, 2, 3),
        with_cp=False,
        convert_weights=True,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint)),
    neck=dict(in_channels=[96, 192, 384, 768]))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    paramwise_cfg=dict(
        custom_keys={
            'absolute_pos_embed': dict(decay_mult=0.),
            'relative_position_bias_table': dict(decay_mult=0.),
            'norm': dict(decay_mult=0.)
        }),
    optimizer=dict(type='AdamW', lr=0.0001, betas=(0.9, 0.999), weight_decay=0.05))
