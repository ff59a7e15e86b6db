"""Tiny CPU recipe for tests and the proof: a ViT-Tiny-shaped student (192-d, 12 blocks, 3 heads) at 32 px with
patch 4 (64 tokens) pretrained by masked autoencoding (`mae`: 75% masking, normalised-pixel MSE, a 2-block
128-d decoder) on real Fashion-MNIST images, label-free. Siblings: vit_tiny_{dmae,tinymim}_fmnist_tiny_cpu.py.
  python -m distill_pretrain.train configs/distill/vit_tiny_mae_fmnist_tiny_cpu.py [--cfg-options epochs=1]
"""
_base_ = ['./_base_/default_runtime.py']
student = dict(type='timm', arch='vit_tiny_patch16_224', img_size=32, patch_size=4, drop_path_rate=0.0)
objective = dict(type='mae', student=student, mask_ratio=0.75, norm_pix_loss=True, decoder_dim=128, decoder_depth=2,
                 decoder_heads=4)
epochs = 2
num_classes = 10  # the classifier is unused by these objectives (the trainer takes 0 as 'unset')
labels_index_classes = False
data = dict(
    train=dict(type='FashionMNIST', split='train', limit=2048),
    val=None,
    batch_size=64,
    num_workers=0,
    aug=dict(img_size=32, auto_augment=None, color_jitter=None, re_prob=0.0, mixup_alpha=0.0, cutmix_alpha=0.0,
             scale=(0.35, 1.0)))
# MAE's recipe shape (AdamW β (0.9, 0.95), wd 0.05, lr 1.5e-4 per 256 images), lr raised for a short CPU run
optim = dict(lr=1.5e-3, base_batch=256, weight_decay=0.05, betas=(0.9, 0.95), warmup_epochs=0.25, warmup_lr=1e-6,
             min_lr=1e-5, clip_grad=None)
amp = False
log_interval = 10
save_interval = 0
