# TinyViT-21M pretrained on ImageNet-21k by fast distillation (paper supp. §B): drop path 0.1.
_base_ = ['./_base_/in21k_distill.py']
student = dict(type='TinyViT', arch='21m', img_size=224, drop_path_rate=0.1)
