r"""TinyMIM supp. Tab. 1 for ViT-S/16 (384-d, 6 heads; the rest as the ViT-T recipe: 300 epochs, batch 4,096, peak lr
2.4e-3, min lr 1e-5, cosine, warm-up 15, AdamW β (0.9, 0.95), wd 0.05, drop path 0.1, colour jitter 0.4 for the
student only).
  torchrun --nproc_per_node 8 -m distill_pretrain.train configs/distill/vit_small_tinymim_in1k_pretrain.py \
      --cfg-options objective.teacher.checkpoint=checkpoints/mae_pretrain_vit_base.pth
"""
_base_ = ['./vit_tiny_tinymim_in1k_pretrain.py']
student = dict(arch='vit_small_patch16_224')
objective = dict(student=dict(arch='vit_small_patch16_224'))
