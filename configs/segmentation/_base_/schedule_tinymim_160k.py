"""TinyMIM's ADE20K schedule (supplement Tab. 3): AdamW lr 1e-4, betas (0.9, 0.999), eps 1e-8, wd 0.05, layer-wise
lr decay 0.65, linear schedule to 0 after 1500 warm-up iterations, 160k iterations (batch 16 = 8 GPUs x 2).
A base: run a variant, e.g.

    python -m transfer.segmentation.train configs/segmentation/upernet_tinyvit-5m_512x512_160k_ade20k_tinymim-setting.py --pretrained CKPT
"""
_base_ = './schedule_swin_160k.py'
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05),
    constructor='LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.65))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.0, by_epoch=False, begin=1500, end=160000)
]
