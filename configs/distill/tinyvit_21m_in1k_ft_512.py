r"""TinyViT-21M finetuned at 512² (windows 16, 16, 32, 16), from the 384² checkpoint.
  torchrun --nproc_per_node 8 -m distill_pretrain.train configs/distill/tinyvit_21m_in1k_ft_512.py \
      --cfg-options student.init=CHECKPOINT [--resume]
"""
_base_ = ['./_base_/in1k_finetune_highres.py']
student = dict(type='TinyViT', arch='21m', img_size=512, window_sizes=[16, 16, 32, 16], drop_path_rate=0.1,
               init='work_dirs/tinyvit_21m_in1k_ft_384/checkpoint.pth')
data = dict(aug=dict(img_size=512, crop_pct=1.0))
