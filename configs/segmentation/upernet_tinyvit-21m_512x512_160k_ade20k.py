# UperNet + TinyViT-21M (stage channels 96, 192, 384, 576), ADE20K 512x512, 160k iterations, mmseg's Swin-T recipe.
_base_ = './_base_/upernet_tinyvit_512x512_160k_ade20k.py'
backbone_name = 'tinyvit-21m'
model = dict(
    backbone=dict(arch='21m'),
    decode_head=dict(in_channels=[96, 192, 384, 576]),
    auxiliary_head=dict(in_channels=384))
