# The Swin-T row in the same harness: mmseg's own Swin-T UperNet config (44.41 mIoU on ADE20K), unchanged except
# for what must change offline / on CPU: no URL checkpoint (`--pretrained PATH` sets a local one) and BN in the heads.
_base_ = 'mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py'
custom_imports = dict(imports=['backbones'], allow_failed_imports=False)
dataset_name = 'ade20k'
backbone_name = 'swin-t'
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    backbone=dict(init_cfg=None),
    decode_head=dict(norm_cfg=norm_cfg),
    auxiliary_head=dict(norm_cfg=norm_cfg))
