"""UperNet + TinyViT-5M on ADE20K, 512x512, 160k iterations with mmseg's Swin-T UperNet recipe: the model base and
the Swin schedule together (the base other configs inherit from when they change only the backbone). A base:

    python -m transfer.segmentation.train configs/segmentation/upernet_tinyvit-5m_512x512_160k_ade20k.py --pretrained CKPT
"""
_base_ = ['./upernet_tinyvit_ade20k.py', './schedule_swin_160k.py']
