# UperNet + TinyViT on ADE20K, 512x512, 160k iterations: mmseg's own bases (read from the installed package via the
# `mmseg::` scope) with mmseg's Swin-T UperNet recipe (AdamW lr 6e-5, wd 0.01, 1500-iter warm-up then poly,
# auxiliary FCN head on stage 3 with weight 0.4, 8 GPUs x 2 images = batch 16).
# Variants set `arch`, the head in_channels and `backbone_name`; pretrained weights come in through
# `model.backbone.init_cfg` (the train entry point's `--pretrained PATH` sets it; nothing is downloaded).
_base_ = [
    'mmseg::_base_/models/upernet_swin.py', 'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py', 'mmseg::_base_/schedules/schedule_160k.py'
]
custom_imports = dict(imports=['backbones'], allow_failed_imports=False)
dataset_name = 'ade20k'
crop_size = (512, 512)
# BN everywhere by default (CPU / single GPU); multi-GPU runs convert it with `--sync-bn` (MMEngine `sync_bn`).
norm_cfg = dict(type='BN', requires_grad=True)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(
        _delete_=True,
        type='TinyViT',
        arch='5m',
        img_size=512,
        # windows enlarged for 512 input; the attention-bias tables of 224 checkpoints (7, 7, 14, 7) are
        # interpolated when loaded (TinyViT's state-dict hook / backbones.load_pretrained)
        window_sizes=(16, 16, 32, 16),
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.1,
        init_cfg=None),
    decode_head=dict(
        in_channels=[64, 128, 160, 320], pool_scales=(1, 2, 3, 6), num_classes=150, norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=160, in_index=2, num_classes=150, norm_cfg=norm_cfg,
                        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)))

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
# 8 GPUs x 2 images per GPU = 16
train_dataloader = dict(batch_size=2)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader
auto_scale_lr = dict(enable=False, base_batch_size=16)
