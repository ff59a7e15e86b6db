"""Paper supp. §B "ImageNet-1k finetuning from the pretrained model": 30 epochs, batch 1,024, lr 5e-4,
cosine with 5 warm-up epochs, wd 1e-8, layer-wise LR decay 0.8 (output → input), BatchNorm running
statistics frozen, Mixup / CutMix off. Ground-truth labels from `student.init` (objective 'finetune').
"""
_base_ = ['./default_runtime.py']
objective = dict(type='finetune', label_smoothing=0.1)
pretrain_name = 'in21k-distill-ft-in1k'
epochs = 30
student = dict(type='TinyViT', arch='21m', img_size=224, drop_path_rate=0.2,
               init='work_dirs/tinyvit_21m_in21k_distill/checkpoint.pth')
num_classes = 1000
data = dict(
    train=dict(type='ImageFolder', root='data/imagenet/train'),
    val=dict(type='ImageFolder', root='data/imagenet/val'),
    batch_size=128,        # per GPU: 128 × 8 GPUs = 1,024
    num_workers=8,
    aug=dict(img_size=224, auto_augment='rand-m9-mstd0.5-inc1', color_jitter=0.4, re_prob=0.25,
             mixup_alpha=0.0, cutmix_alpha=0.0))
optim = dict(lr=5e-4, base_batch=1024, weight_decay=1e-8, warmup_epochs=5, warmup_lr=5e-7, min_lr=5e-6,
             clip_grad=5.0, accum_steps=1, layer_decay=0.8)
freeze_bn_stats = True
