"""Proof run on real offline data: 5-way 5-shot on Fashion-MNIST's test split, ImageNet MobileNetV2 (asset weights).

    python -m transfer.few_shot configs/few_shot/fashion_mnist_mobilenet_v2.py
"""
backbone = dict(spec='torchvision:mobilenet_v2', checkpoint='asset:mobilenet_v2')
dataset = 'fashion_mnist'
data_root = '.cache/assets/fashion_mnist'
shots = [5]
n_episodes = 100
resolution = 64
