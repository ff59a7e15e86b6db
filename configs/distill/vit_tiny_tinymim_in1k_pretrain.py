r"""TinyMIM supp. Tab. 1, ImageNet-1k pretraining of ViT-T/16 by relation distillation (`tinymim`): 300 epochs
(100-epoch variant: epochs=100, warmup_epochs=5), batch 4,096, peak lr 2.4e-3 = 1.5e-4 x 4096 / 256, min lr 1e-5,
cosine, 15 warm-up epochs, AdamW β (0.9, 0.95), ε 1e-8, wd 0.05, drop path 0.1, no dropout,
RandomResizedCrop + flip at 224, colour jitter 0.4 for the student only (aug.student_color_jitter: the teacher sees
the crop + flip view, the student the same view jittered). Teacher: an MIM-pretrained ViT-B/16 (TinyMIM distils the
last block's Q-K / V-V relations; the official MAE-Base file loads by name). (The supplement in
seeds/ gives hyper-parameters only, no accuracies.)
  torchrun --nproc_per_node 8 -m distill_pretrain.train configs/distill/vit_tiny_tinymim_in1k_pretrain.py \
      --cfg-options objective.teacher.checkpoint=checkpoints/mae_pretrain_vit_base.pth
"""
_base_ = ['./_base_/default_runtime.py']
student = dict(type='timm', arch='vit_tiny_patch16_224', img_size=224, drop_path_rate=0.1)
objective = dict(type='tinymim', student=student,
                 teacher=dict(name='vit_base_patch16_224', img_size=224, checkpoint='checkpoints/mae_pretrain_vit_base.pth'),
                 student_layer=-1, teacher_layer=-1, heads=None, qk_weight=1.0, vv_weight=1.0)
pretrain_name = 'in1k-tinymim'
epochs = 300
num_classes = 1000  # the classifier is not trained by this objective
data = dict(
    train=dict(type='ImageFolder', root='data/imagenet/train'),
    val=None,
    batch_size=512,        # per GPU: 512 × 8 GPUs = 4,096
    num_workers=10,
    aug=dict(img_size=224, scale=(0.08, 1.0), auto_augment=None, color_jitter=None, re_prob=0.0, mixup_alpha=0.0,
             cutmix_alpha=0.0, student_color_jitter=0.4))
optim = dict(lr=1.5e-4, base_batch=256, weight_decay=0.05, betas=(0.9, 0.95), eps=1e-8, warmup_epochs=15,
             warmup_lr=0.0, min_lr=1e-5, clip_grad=None, accum_steps=1, layer_decay=None)
