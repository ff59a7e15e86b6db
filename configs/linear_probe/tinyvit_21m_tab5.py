"""Paper Tab. 5 linear probe (MoCo v3 protocol + fast mode) of TinyViT-21M; set checkpoint, dataset, data_root.

    python -m transfer.linear_probe configs/linear_probe/tinyvit_21m_tab5.py \
        --checkpoint tiny_vit_21m_22k_distill.pth --dataset cifar100 --data-root /data/cifar
"""
backbone = dict(spec='tinyvit-21m', checkpoint=None)
dataset = 'cifar100'
data_root = None
mode = 'both'
resolution = 224
epochs = 90
train_batch_size = 256
base_lr = 0.1
