"""UperNet + TinyViT-21M in TinyMIM's ADE20K setting (supplement Tab. 3): TinyMIM's schedule
(`_base_/schedule_tinymim_160k.py`) and stochastic depth 0.1.

    python -m transfer.segmentation.train configs/segmentation/upernet_tinyvit-21m_512x512_160k_ade20k_tinymim-setting.py --pretrained CKPT
"""
_base_ = ['./_base_/upernet_tinyvit-21m_ade20k.py', './_base_/schedule_tinymim_160k.py']
model = dict(backbone=dict(drop_path_rate=0.1))
