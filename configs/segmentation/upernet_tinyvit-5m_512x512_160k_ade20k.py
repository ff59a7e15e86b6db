"""UperNet + TinyViT-5M, ADE20K 512x512, 160k iterations, mmseg's Swin-T recipe.

    python -m transfer.segmentation.train configs/segmentation/upernet_tinyvit-5m_512x512_160k_ade20k.py --pretrained CKPT [--pretrain NAME]
    python -m transfer.segmentation.test configs/segmentation/upernet_tinyvit-5m_512x512_160k_ade20k.py SEGMENTOR_CKPT [--mode slide]
"""
_base_ = './_base_/upernet_tinyvit_512x512_160k_ade20k.py'
