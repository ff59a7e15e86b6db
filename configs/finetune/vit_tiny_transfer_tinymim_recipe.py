r"""End-to-end fine-tuning transfer of a ViT-Tiny (the D-MAE table's protocol: full fine-tuning on Flowers, Pets,
Aircraft, Cars, CIFAR-100) with TinyMIM's fine-tuning recipe shape.
  python -m transfer.finetune configs/finetune/vit_tiny_transfer_tinymim_recipe.py --backbone vit-tiny \
      --checkpoint work_dirs/vit_tiny_dmae_in1k_pretrain/checkpoint.pth --dataset flowers102 --data-root DIR

The paper's values (TinyMIM supp. Tab. 2, ViT-T, IN-1k fine-tuning): peak lr 5e-3 at batch 2,048 (scaled
linearly to the actual batch), 5 warm-up epochs, cosine, layer-wise lr decay 0.65, AdamW β (0.9, 0.95), ε 1e-8,
weight decay 0.05, drop path 0.1, label smoothing 0.1, no gradient clipping, RandAugment 9/0.5, Mixup 0.8, CutMix
1.0, random erasing 0.25, 224 px. Chosen here for transfer to small data sets (neither seed text gives the D-MAE
transfer schedule): 100 epochs instead of 200, batch 256 (one device; lr 6.25e-4 after scaling), minimum lr 1e-6,
warm-up from 1e-6. The objective's name goes into the record's `pretrain` (`mae`, `dmae`, `tinymim`), so
`python -m benchmarks.table --layout dmae` puts the row beside the poster's.
"""
_base_ = ['../distill/_base_/default_runtime.py']
objective = dict(type='finetune', label_smoothing=0.1)
epochs = 100
student = dict(drop_path_rate=0.1)
resolution = 224
data = dict(
    batch_size=256,
    num_workers=8,
    aug=dict(img_size=224, auto_augment='rand-m9-mstd0.5-inc1', color_jitter=None, re_prob=0.25, mixup_alpha=0.8,
             cutmix_alpha=1.0))
optim = dict(lr=5e-3, base_batch=2048, weight_decay=0.05, betas=(0.9, 0.95), eps=1e-8, warmup_epochs=5,
             warmup_lr=1e-6, min_lr=1e-6, clip_grad=None, accum_steps=1, layer_decay=0.65)
log_interval = 20
save_interval = 500
