r"""Tiny CPU recipe: `dmae` (MAE + attention-map distillation of the last block, teacher fed the same visible patches)
for the ViT-Tiny-shaped 32-px student of vit_tiny_mae_fmnist_tiny_cpu.py, from a ViT-Small-shaped teacher. The
teacher is a timm name (random weights: tests) or a checkpoint, e.g. the MAE teacher of benchmarks/vit_proof.py:
  python -m distill_pretrain.train configs/distill/vit_tiny_dmae_fmnist_tiny_cpu.py \
      --cfg-options objective.teacher.checkpoint=work_dirs/vit_small_mae_fmnist/checkpoint.pth
"""
_base_ = ['./vit_tiny_mae_fmnist_tiny_cpu.py']
objective = dict(_delete_=True, type='dmae', student={{_base_.student}},
                 teacher=dict(name='vit_small_patch16_224', img_size=32, patch_size=4, checkpoint=None),
                 student_layers=(-1, ), teacher_layers=(-1, ), attn_weight=1.0,
                 mask_ratio=0.75, norm_pix_loss=True, decoder_dim=128, decoder_depth=2, decoder_heads=4)
