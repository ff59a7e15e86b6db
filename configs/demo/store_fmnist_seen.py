"""Demo store: MobileNetV2 (torchvision ImageNet-1k weights, offline asset) saves its top-10 probabilities + seeds
over Fashion-MNIST train images of the five "seen" classes 0-4 (T-shirt, Trouser, Pullover, Dress, Coat), at
64 px with light augmentation. Classes 5-9 (Sandal, Shirt, Sneaker, Bag, Ankle boot) are held out for transfer.

    python -m distill_pretrain.save_logits configs/demo/store_fmnist_seen.py --cfg-options store.path=STORE
"""
_base_ = ['../distill/save_logits_mobilenetv2_fmnist.py']
dataset = dict(type='FashionMNIST', split='train', classes=[0, 1, 2, 3, 4], limit=2400)
augment = dict(img_size=64, scale=(0.35, 1.0), color_jitter=None, auto_augment=None, re_prob=0.0,
               mixup_alpha=0.0, cutmix_alpha=0.0, mix_prob=0.0)
store = dict(path='work_dirs/demo/store', topk=10)
epochs = 4
num_workers = 0
