r"""TinyViT-21M finetuned at 384² (windows 12, 12, 24, 12), from the 224² IN-1k finetuned checkpoint.
  torchrun --nproc_per_node 8 -m distill_pretrain.train configs/distill/tinyvit_21m_in1k_ft_384.py \
      --cfg-options student.init=CHECKPOINT [--resume]
"""
_base_ = ['./_base_/in1k_finetune_highres.py']
student = dict(type='TinyViT', arch='21m', img_size=384, window_sizes=[12, 12, 24, 12], drop_path_rate=0.1,
               init='work_dirs/tinyvit_21m_in21k_ft_in1k/checkpoint.pth')
data = dict(aug=dict(img_size=384, crop_pct=1.0))
