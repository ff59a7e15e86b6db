# UperNet + TinyViT-5M (stage channels 64, 128, 160, 320), ADE20K 512x512, 160k iterations, mmseg's Swin-T recipe.
_base_ = './_base_/upernet_tinyvit_512x512_160k_ade20k.py'
backbone_name = 'tinyvit-5m'
model = dict(
    backbone=dict(arch='5m'),
    decode_head=dict(in_channels=[64, 128, 160, 320]),
    auxiliary_head=dict(in_channels=160))
