# TinyViT-5M trained from scratch on ImageNet-1k (paper Tab. 1 / supp. §B): drop path 0.0.
_base_ = ['./_base_/in1k_scratch.py']
student = dict(type='TinyViT', arch='5m', img_size=224, drop_path_rate=0.0)
