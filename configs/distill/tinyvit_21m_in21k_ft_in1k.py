r"""TinyViT-21M: ImageNet-21k distilled checkpoint finetuned on ImageNet-1k (paper supp. §B); drop path 0.2
as the official 22k→1k recipe.
  torchrun --nproc_per_node 8 -m distill_pretrain.train configs/distill/tinyvit_21m_in21k_ft_in1k.py \
      --cfg-options student.init=CHECKPOINT [--resume]
"""
_base_ = ['./_base_/in1k_finetune.py']
student = dict(type='TinyViT', arch='21m', img_size=224, drop_path_rate=0.2,
               init='work_dirs/tinyvit_21m_in21k_distill/checkpoint.pth')
