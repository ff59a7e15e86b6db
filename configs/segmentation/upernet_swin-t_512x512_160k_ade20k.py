"""The Swin-T row in the same harness: mmseg's own Swin-T UperNet config (44.41 mIoU on ADE20K), unchanged except
for what must change offline / on CPU: no URL checkpoint (`--pretrained PATH` sets a local one), BN in the heads,
and the project's hooks (plain checkpoints, the validation curve).

    python -m transfer.segmentation.train configs/segmentation/upernet_swin-t_512x512_160k_ade20k.py \
        --pretrained checkpoints/swin_tiny_patch4_window7_224.pth --pretrain in1k
"""
_base_ = 'mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py'
custom_imports = dict(imports=['backbones', 'transfer.segmentation'], allow_failed_imports=False)
default_hooks = dict(checkpoint=dict(type='tinyvit_bench.PlainCheckpointHook'))
custom_hooks = [dict(type='tinyvit_bench.MetricHistoryHook', task='segmentation')]
dataset_name = 'ade20k'
backbone_name = 'swin-t'
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    backbone=dict(init_cfg=None),
    decode_head=dict(norm_cfg=norm_cfg),
    auxiliary_head=dict(norm_cfg=norm_cfg))
