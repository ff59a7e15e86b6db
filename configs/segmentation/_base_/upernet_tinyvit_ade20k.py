"""UperNet + TinyViT-5M on ADE20K at 512x512, without a schedule: mmseg's own model, data and runtime bases (read
from the installed package via the `mmseg::` scope) with mmseg's Swin-T UperNet heads (auxiliary FCN head on stage
3 with weight 0.4, 8 GPUs x 2 images = batch 16). `upernet_tinyvit-{11m,21m}_ade20k.py` change the arch; the schedules
are `schedule_swin_160k.py` / `schedule_tinymim_160k.py`. Pretrained weights come in through
`model.backbone.init_cfg` (`--pretrained PATH`; nothing is downloaded). A base: run a variant, e.g.

    python -m transfer.segmentation.train configs/segmentation/upernet_tinyvit-5m_512x512_160k_ade20k.py --pretrained CKPT
"""
_base_ = [
    'mmseg::_base_/models/upernet_swin.py', 'mmseg::_base_/datasets/ade20k.py', 'mmseg::_base_/default_runtime.py'
]
custom_imports = dict(imports=['backbones', 'transfer.segmentation'], allow_failed_imports=False)
custom_hooks = [dict(type='tinyvit_bench.MetricHistoryHook', task='segmentation')]
backbone_name = 'tinyvit-5m'
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

# 8 GPUs x 2 images per GPU = 16
train_dataloader = dict(batch_size=2)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader
auto_scale_lr = dict(enable=False, base_batch_size=16)
