# UperNet + TinyViT-11M (stage channels 64, 128, 256, 448), ADE20K 512x512, 160k iterations, mmseg's Swin-T recipe.
_base_ = './_base_/upernet_tinyvit_512x512_160k_ade20k.py'
backbone_name = 'tinyvit-11m'
model = dict(
    backbone=dict(arch='11m'),
    decode_head=dict(in_channels=[64, 128, 256, 448]),
    auxiliary_head=dict(in_channels=256))
