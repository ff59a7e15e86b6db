"""UperNet + TinyViT-21M (stage channels 96, 192, 384, 576) on ADE20K at 512x512, without a schedule. A base:

    python -m transfer.segmentation.train configs/segmentation/upernet_tinyvit-21m_512x512_160k_ade20k.py --pretrained CKPT
"""
_base_ = './upernet_tinyvit_ade20k.py'
backbone_name = 'tinyvit-21m'
model = dict(
    backbone=dict(arch='21m'),
    decode_head=dict(in_channels=[96, 192, 384, 576]),
    auxiliary_head=dict(in_channels=384))
