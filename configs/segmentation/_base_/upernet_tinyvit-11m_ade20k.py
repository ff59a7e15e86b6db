"""UperNet + TinyViT-11M (stage channels 64, 128, 256, 448) on ADE20K at 512x512, without a schedule. A base:

    python -m transfer.segmentation.train configs/segmentation/upernet_tinyvit-11m_512x512_160k_ade20k.py --pretrained CKPT
"""
_base_ = './upernet_tinyvit_ade20k.py'
backbone_name = 'tinyvit-11m'
model = dict(
    backbone=dict(arch='11m'),
    decode_head=dict(in_channels=[64, 128, 256, 448]),
    auxiliary_head=dict(in_channels=256))
