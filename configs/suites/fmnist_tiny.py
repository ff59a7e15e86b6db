"""A tiny grid that runs in about a minute on 2 CPU cores: random TinyViT-5M and the ImageNet MobileNetV2 (offline
asset) × fast linear probe + 5-way 5-shot on Fashion-MNIST at 32 px (100 / 50 images, 5 episodes) — 4 cells.
What the suite runner's tests and benchmark run, and a first try of the SLURM launcher:

    python -m benchmarks.suite configs/suites/fmnist_tiny.py --out /tmp/fmnist_tiny [--launcher slurm]
"""
backbones = dict(
    random=dict(spec='tinyvit-5m'),
    teacher=dict(spec='torchvision:mobilenet_v2', checkpoint='asset:mobilenet_v2'),
)
datasets = dict(fmnist=dict(type='fashion_mnist', root='asset:fashion_mnist'))
tasks = dict(
    probe=dict(type='linear_probe', datasets=['fmnist'], modes=['fast'], resolution=32, max_train=100, max_test=50,
               options=dict(methods=['logreg'], c_grid=[1.0])),
    shots=dict(type='few_shot', datasets=['fmnist'], shots=[5], resolution=32, max_images=100, n_query=5,
               n_episodes=5, options=dict(methods=['logreg'])),
)
seeds = [0]
tables = ['tab5']
env = dict(OMP_NUM_THREADS='1')
slurm = dict(poll_s=0.5, max_retries=1, default=dict(time=10, cpus=1, mem='2G'))
