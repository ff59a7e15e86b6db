r"""Tiny CPU fine-tuning transfer (tests and the README example): the 32-px, patch-4 ViT-Tiny-shaped student of
configs/distill/vit_tiny_mae_fmnist_tiny_cpu.py fine-tuned on the five held-out Fashion-MNIST classes 5–9 (as in
the demo), TinyMIM's recipe shape (layer decay 0.65, AdamW β (0.9, 0.95), wd 0.05, label smoothing 0.1) with light
augmentation (no RandAugment / Mixup / CutMix / erasing at 32 px), 1,000 training and 500 test images, 2 epochs.
  python -m distill_pretrain.train configs/distill/vit_tiny_mae_fmnist_tiny_cpu.py     # writes the checkpoint
  python -m transfer.finetune configs/finetune/vit_tiny_fmnist_tiny_cpu.py \
      --checkpoint work_dirs/vit_tiny_mae_fmnist_tiny_cpu/checkpoint.pth
"""
_base_ = ['../distill/_base_/default_runtime.py']
backbone = 'vit-tiny'
dataset = 'fashion_mnist'
data_root = '.cache/assets/fashion_mnist'
classes = [5, 6, 7, 8, 9]
max_train = 1000
max_test = 500
resolution = 32
objective = dict(type='finetune', label_smoothing=0.1)
epochs = 2
student = dict(drop_path_rate=0.0)
data = dict(
    batch_size=32,
    num_workers=0,
    aug=dict(img_size=32, auto_augment=None, color_jitter=None, re_prob=0.0, mixup_alpha=0.0, cutmix_alpha=0.0,
             scale=(0.35, 1.0)))
optim = dict(lr=1e-3, base_batch=32, weight_decay=0.05, betas=(0.9, 0.95), warmup_epochs=0.25, warmup_lr=1e-6,
             min_lr=1e-5, clip_grad=None, layer_decay=0.65)
device = 'cpu'
amp = False
log_interval = 10
save_interval = 0
