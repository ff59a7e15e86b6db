r"""Tiny CPU recipe: `tinymim` (Q-K and V-V relation distillation of the last blocks, whole image, the student's 3
heads regrouped into the teacher's 6) for the ViT-Tiny-shaped 32-px student of vit_tiny_mae_fmnist_tiny_cpu.py.
  python -m distill_pretrain.train configs/distill/vit_tiny_tinymim_fmnist_tiny_cpu.py \
      --cfg-options objective.teacher.checkpoint=work_dirs/vit_small_mae_fmnist/checkpoint.pth
"""
_base_ = ['./vit_tiny_mae_fmnist_tiny_cpu.py']
objective = dict(_delete_=True, type='tinymim', student={{_base_.student}},
                 teacher=dict(name='vit_small_patch16_224', img_size=32, patch_size=4, checkpoint=None),
                 student_layer=-1, teacher_layer=-1, heads=None, qk_weight=1.0, vv_weight=1.0)
