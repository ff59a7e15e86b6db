"""mmseg's Swin-T UperNet schedule, 160k iterations: AdamW lr 6e-5, wd 0.01 (none on norms and TinyViT's attention
biases, which play the role of Swin's relative position bias tables), 1500-iteration linear warm-up, then poly.
Checkpoints are plain (`tinyvit_bench.PlainCheckpointHook`), so mmseg's own tools read them under torch >= 2.6.
A base: run a variant, e.g.

    python -m transfer.segmentation.train configs/segmentation/upernet_tinyvit-5m_512x512_160k_ade20k.py --pretrained CKPT
"""
_base_ = 'mmseg::_base_/schedules/schedule_160k.py'
default_hooks = dict(checkpoint=dict(type='tinyvit_bench.PlainCheckpointHook'))
# mmseg's Swin-T recipe; TinyViT's attention biases play the role of Swin's relative position bias tables
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(custom_keys={
        'attention_biases': dict(decay_mult=0.),
        'norm': dict(decay_mult=0.)
    }))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=160000, by_epoch=False)
]
