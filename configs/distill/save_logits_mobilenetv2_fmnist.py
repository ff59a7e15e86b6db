r"""Save MobileNetV2 (torchvision ImageNet weights, offline asset) top-10 logits over Fashion-MNIST with the
TinyViT pretraining augmentation (RandAugment, random erasing, Mixup/CutMix) at a small resolution.
  python -m distill_pretrain.save_logits configs/distill/save_logits_mobilenetv2_fmnist.py [--epochs 0:4] \
      [--cfg-options store.path=DIR]   # torchrun --nproc_per_node N -m distill_pretrain.save_logits ... shards it
"""
dataset = dict(type='FashionMNIST', split='train', limit=1024)
augment = dict(img_size=64, mode='train', scale=(0.08, 1.0), hflip=0.5, color_jitter=0.4,
               auto_augment='rand-m9-mstd0.5-inc1', interpolation='bicubic', re_prob=0.25, re_mode='pixel',
               mixup_alpha=0.8, cutmix_alpha=1.0, mix_prob=1.0, switch_prob=0.5)
teacher = dict(type='torchvision', name='mobilenet_v2', weights='asset:mobilenet_v2')
store = dict(path='work_dirs/logits/mobilenetv2_fmnist_k10', topk=10, value_format='fp16', chunk_size=256)
base_seed = 0
epochs = 4
batch_size = 64
num_workers = 2
amp = True
