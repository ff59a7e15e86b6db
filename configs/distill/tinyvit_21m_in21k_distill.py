r"""TinyViT-21M pretrained on ImageNet-21k by fast distillation (paper supp. §B): drop path 0.1.
  torchrun --nproc_per_node 8 -m distill_pretrain.train configs/distill/tinyvit_21m_in21k_distill.py \
      --cfg-options store.path=STORE [--resume]   # the store from distill_pretrain.save_logits
"""
_base_ = ['./_base_/in21k_distill.py']
student = dict(type='TinyViT', arch='21m', img_size=224, drop_path_rate=0.1)
