"""Paper supp. §B "ImageNet-21k pretraining": fast distillation from the sparse logit store.
90 epochs, AdamW, wd 0.01, lr 0.002 at batch 4,096 (linear scaling to the actual total batch), cosine with
5 warm-up epochs, gradient clipping 5, K = 100 stored logits, temperature 1, Mixup / CutMix off (the official
22k-distillation configs disable them), label-free (no ground-truth term).
"""
_base_ = ['./default_runtime.py']
objective = dict(type='stored', temperature=1.0, gt_weight=0.0)
pretrain_name = 'in21k-distill'
epochs = 90
student = dict(type='TinyViT', arch='5m', img_size=224, drop_path_rate=0.0)
store = dict(path='data/stores/in21k_florence_k100', expect=dict(topk=100), cycle_epochs=False)
data = dict(
    train=dict(type='ImageFolder', root='data/imagenet21k/train'),
    val=None,
    batch_size=128,        # per GPU: 128 × 32 GPUs = 4,096
    num_workers=8,
    aug=None)              # stored mode replays the store's own transform (its manifest)
optim = dict(lr=2e-3, base_batch=4096, weight_decay=0.01, betas=(0.9, 0.999), eps=1e-8, warmup_epochs=5,
             warmup_lr=2e-6, min_lr=2e-5, clip_grad=5.0, accum_steps=1, layer_decay=None)
# A store for this recipe is saved (distill_pretrain.save_logits) with the transform
# dict(img_size=224, auto_augment='rand-m9-mstd0.5-inc1', color_jitter=0.4, re_prob=0.25, mixup_alpha=0.0,
# cutmix_alpha=0.0); the student reads it back from the store's manifest.
