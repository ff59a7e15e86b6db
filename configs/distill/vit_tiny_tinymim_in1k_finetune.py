r"""TinyMIM supp. Tab. 2, ImageNet-1k fine-tuning of a pretrained ViT-T/16 (ViT-S: same values): 200 epochs, batch
2,048, peak lr 5e-3, 5 warm-up epochs, cosine, layer-wise lr decay 0.65, AdamW β (0.9, 0.95), ε 1e-8, wd 0.05,
drop path 0.1, label smoothing 0.1, RandAugment 9/0.5, Mixup 0.8, CutMix 1.0, random erasing 0.25, no gradient
clipping, 224 px (the supplement gives no accuracies). Also the D-MAE table's fine-tuning protocol
shape (set student.init to a `dmae` / `mae` checkpoint and pretrain_name accordingly).
  torchrun --nproc_per_node 8 -m distill_pretrain.train configs/distill/vit_tiny_tinymim_in1k_finetune.py \
      --cfg-options student.init=work_dirs/vit_tiny_tinymim_in1k_pretrain/checkpoint.pth
"""
_base_ = ['./_base_/default_runtime.py']
objective = dict(type='finetune', label_smoothing=0.1)
pretrain_name = 'in1k-tinymim-ft-in1k'
epochs = 200
student = dict(type='timm', arch='vit_tiny_patch16_224', img_size=224, drop_path_rate=0.1,
               init='work_dirs/vit_tiny_tinymim_in1k_pretrain/checkpoint.pth')
num_classes = 1000
data = dict(
    train=dict(type='ImageFolder', root='data/imagenet/train'),
    val=dict(type='ImageFolder', root='data/imagenet/val'),
    batch_size=256,        # per GPU: 256 × 8 GPUs = 2,048
    num_workers=10,
    aug=dict(img_size=224, auto_augment='rand-m9-mstd0.5-inc1', color_jitter=None, re_prob=0.25, mixup_alpha=0.8,
             cutmix_alpha=1.0))
optim = dict(lr=5e-3, base_batch=2048, weight_decay=0.05, betas=(0.9, 0.95), eps=1e-8, warmup_epochs=5,
             warmup_lr=1e-6, min_lr=1e-6, clip_grad=None, accum_steps=1, layer_decay=0.65)
