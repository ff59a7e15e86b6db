"""Paper supp. §B "ImageNet-1k finetuning on higher resolution": windows grow with the input (the attention-bias
tables are interpolated when the 224 checkpoint loads), 30 epochs, accumulated batch 1,024, lr 4e-5, cosine with
5 warm-up epochs, wd 1e-8, BatchNorm statistics frozen, Mixup / CutMix off.
"""
_base_ = ['./in1k_finetune.py']
optim = dict(lr=4e-5, base_batch=1024, weight_decay=1e-8, warmup_epochs=5, warmup_lr=4e-8, min_lr=4e-7,
             accum_steps=4, layer_decay=0.8)
data = dict(batch_size=32)  # per GPU: 32 × 8 GPUs × 4 accumulation steps = 1,024
