"""Demo student: TinyViT-5M at 64 px (global attention per stage: windows 8,8,4,2) trained label-free from the
demo store (`mode='stored'`), or on the seen classes' labels with the same images, augmentation and steps
(`mode='scratch'`, the paper's "train from scratch" baseline).

    python -m distill_pretrain.train configs/demo/student_fmnist_seen.py \
        --cfg-options mode=stored store.path=STORE --work-dir DIR
"""
_base_ = ['../distill/tinyvit_5m_fmnist_tiny_cpu.py']
student = dict(img_size=64, window_sizes=(8, 8, 4, 2))
store = dict(path='work_dirs/demo/store')
epochs = 4
data = dict(
    train=dict(type='FashionMNIST', split='train', classes=[0, 1, 2, 3, 4], limit=2400),
    val=dict(type='FashionMNIST', split='test', classes=[0, 1, 2, 3, 4], limit=256),
    batch_size=32,
    # scratch mode uses this; stored mode replays the store's own transform, which is the same
    aug=dict(img_size=64, scale=(0.35, 1.0), color_jitter=None, auto_augment=None, re_prob=0.0, mixup_alpha=0.0,
             cutmix_alpha=0.0, mix_prob=0.0))
