r"""TinyViT-11M pretrained on ImageNet-21k by fast distillation (paper supp. §B): drop path 0.0.
  torchrun --nproc_per_node 8 -m distill_pretrain.train configs/distill/tinyvit_11m_in21k_distill.py \
      --cfg-options store.path=STORE [--resume]   # the store from distill_pretrain.save_logits
"""
_base_ = ['./_base_/in21k_distill.py']
student = dict(type='TinyViT', arch='11m', img_size=224, drop_path_rate=0.0)
