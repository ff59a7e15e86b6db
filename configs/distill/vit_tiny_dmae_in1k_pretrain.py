r"""D-MAE ("A Closer Look at Self-Supervised Lightweight Vision Transformers"), ImageNet-1k pretraining of ViT-T/16:
MAE (75% masking, normalised-pixel loss) + attention-map distillation MSE(A_T, M·A_S) of the last block from a
frozen MAE-Base teacher fed the same visible patches, M a learnable head map (3 → 12), weight 1. Values from the
authors' code (wangsr126/MAE-Lite, mae_lite_distill_exp.py / mae_lite_exp.py): 400 epochs, batch 4,096, lr 1.5e-4 x
batch / 256, 40 warm-up epochs, cosine to 0, AdamW β (0.9, 0.95), wd 0.05, RandomResizedCrop (0.08, 1) + flip, no
colour jitter. Decoder: our choice (MAE's 8-block 512-d default is sized for ViT-B; 4 blocks x 256-d here).
Paper: D-MAE-Tiny 78.4 top-1 (fine-tuned); transfer table in benchmarks/paper_numbers.csv.
  torchrun --nproc_per_node 8 -m distill_pretrain.train configs/distill/vit_tiny_dmae_in1k_pretrain.py \
      --cfg-options objective.teacher.checkpoint=checkpoints/mae_pretrain_vit_base.pth
"""
_base_ = ['./_base_/default_runtime.py']
student = dict(type='timm', arch='vit_tiny_patch16_224', img_size=224, drop_path_rate=0.0)
objective = dict(type='dmae', student=student,
                 teacher=dict(name='vit_base_patch16_224', img_size=224, checkpoint='checkpoints/mae_pretrain_vit_base.pth'),
                 student_layers=(-1, ), teacher_layers=(-1, ), attn_weight=1.0,
                 mask_ratio=0.75, norm_pix_loss=True, decoder_dim=256, decoder_depth=4, decoder_heads=8)
pretrain_name = 'in1k-dmae'
epochs = 400
num_classes = 1000  # the classifier is not trained by this objective
data = dict(
    train=dict(type='ImageFolder', root='data/imagenet/train'),
    val=None,
    batch_size=512,        # per GPU: 512 × 8 GPUs = 4,096
    num_workers=10,
    aug=dict(img_size=224, scale=(0.08, 1.0), auto_augment=None, color_jitter=None, re_prob=0.0, mixup_alpha=0.0,
             cutmix_alpha=0.0))
optim = dict(lr=1.5e-4, base_batch=256, weight_decay=0.05, betas=(0.9, 0.95), eps=1e-8, warmup_epochs=40,
             warmup_lr=0.0, min_lr=0.0, clip_grad=None, accum_steps=1, layer_decay=None)
