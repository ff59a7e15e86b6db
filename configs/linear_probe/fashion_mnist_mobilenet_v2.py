"""Proof run on real offline data: ImageNet MobileNetV2 (asset weights) on Fashion-MNIST, fast probe at 64 px.

    python -m transfer.linear_probe configs/linear_probe/fashion_mnist_mobilenet_v2.py
"""
backbone = dict(spec='torchvision:mobilenet_v2', checkpoint='asset:mobilenet_v2')
dataset = 'fashion_mnist'
data_root = '.cache/assets/fashion_mnist'
mode = 'fast'
resolution = 64
max_train = 1000
max_test = 500
