"""TinyViT-21M trained from scratch on ImageNet-1k (paper Tab. 1 / supp. §B): drop path 0.2.
  torchrun --nproc_per_node 8 -m distill_pretrain.train configs/distill/tinyvit_21m_in1k_scratch.py [--resume]
"""
_base_ = ['./_base_/in1k_scratch.py']
student = dict(type='TinyViT', arch='21m', img_size=224, drop_path_rate=0.2)
