r"""Tiny CPU recipe for tests and the demo: TinyViT-5M at 64 px distilled from a logit store saved over real
Fashion-MNIST images (by a real ImageNet teacher, e.g. MobileNetV2), label-free, a few hundred steps.
  python -m distill_pretrain.save_logits configs/distill/save_logits_<...>.py   # writes the store
  python -m distill_pretrain.train configs/distill/tinyvit_5m_fmnist_tiny_cpu.py \
      --cfg-options store.path=STORE
"""
_base_ = ['./_base_/default_runtime.py']
objective = dict(type='stored')  # temperature 1, label-free; `--cfg-options mode=scratch` switches it
epochs = 4
student = dict(type='TinyViT', arch='5m', img_size=64, drop_path_rate=0.0)
store = dict(path='work_dirs/stores/fmnist_mobilenet_v2', expect=None, cycle_epochs=True)
teacher = dict(type='torchvision', name='mobilenet_v2', weights='asset:mobilenet_v2')  # eval agreement only
eval_teacher_agreement = True
labels_index_classes = False  # Fashion-MNIST labels are not ImageNet classes: no top-1 / teacher accuracy
data = dict(
    train=dict(type='FashionMNIST', split='train', limit=2048),
    val=dict(type='FashionMNIST', split='test', limit=256),
    batch_size=32,
    num_workers=0,
    aug=dict(img_size=64, auto_augment=None, color_jitter=None, re_prob=0.0, mixup_alpha=0.0, cutmix_alpha=0.0,
             scale=(0.35, 1.0)))
optim = dict(lr=1e-3, base_batch=32, weight_decay=0.01, warmup_epochs=0.25, warmup_lr=1e-6, min_lr=1e-5,
             clip_grad=5.0)
amp = False
log_interval = 10
save_interval = 0
