"""Paper supp. §B "ImageNet-1k training from scratch": 300 epochs, AdamW, wd 0.05, lr 1e-3 at batch 1,024,
cosine with 20 warm-up epochs, gradient clipping 5. Augmentation as the official 1k recipe (RandAugment,
random erasing, Mixup 0.8 / CutMix 1.0, label smoothing 0.1).
"""
_base_ = ['./default_runtime.py']
objective = dict(type='scratch', label_smoothing=0.1)
pretrain_name = 'in1k'
epochs = 300
num_classes = 1000
student = dict(type='TinyViT', arch='5m', img_size=224, drop_path_rate=0.0)
data = dict(
    train=dict(type='ImageFolder', root='data/imagenet/train'),
    val=dict(type='ImageFolder', root='data/imagenet/val'),
    batch_size=128,        # per GPU: 128 × 8 GPUs = 1,024
    num_workers=8,
    aug=dict(img_size=224, auto_augment='rand-m9-mstd0.5-inc1', color_jitter=0.4, re_prob=0.25,
             mixup_alpha=0.8, cutmix_alpha=1.0))
optim = dict(lr=1e-3, base_batch=1024, weight_decay=0.05, warmup_epochs=20, warmup_lr=1e-6, min_lr=1e-5,
             clip_grad=5.0, accum_steps=1, layer_decay=None)
