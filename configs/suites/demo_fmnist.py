"""The demo's transfer grid: both demo students (distilled from the store, trained from scratch), random init and
the teacher, on the five Fashion-MNIST classes neither student saw (5-9): fast linear probe (logistic regression,
first 5,000 train / 5,000 test images of those classes) and 5-way 5-shot few-shot (600 shared episodes over the
same test images), at 64 px, seed 0.

    python -m benchmarks.suite configs/suites/demo_fmnist.py --out results

`python -m benchmarks.demo` runs it after training the students (their checkpoints under results/work/); its
`--quick` size passes `--cfg-options tasks.linear_probe.max_train=200 ...` (benchmarks/demo.py).
"""
backbones = dict(
    distill=dict(spec='tinyvit-5m', checkpoint='results/work/student_stored/checkpoint.pth'),
    scratch=dict(spec='tinyvit-5m', checkpoint='results/work/student_scratch/checkpoint.pth'),
    random=dict(spec='tinyvit-5m', window_sizes=(8, 8, 4, 2)),  # the students' shape, random weights (seed 0)
    teacher=dict(spec='torchvision:mobilenet_v2', checkpoint='asset:mobilenet_v2'),
)
datasets = dict(
    fashion_mnist_novel=dict(type='fashion_mnist', root='asset:fashion_mnist', classes=[5, 6, 7, 8, 9],
                             subset='first', record_name='fashion_mnist_novel'),
)
tasks = dict(
    linear_probe=dict(type='linear_probe', datasets=['fashion_mnist_novel'], modes=['fast'], resolution=64,
                      max_train=5000, max_test=5000, options=dict(methods=['logreg'])),
    few_shot=dict(type='few_shot', datasets=['fashion_mnist_novel'], shots=[5], resolution=64, max_images=5000,
                  n_way=5, n_query=15, n_episodes=600, options=dict(methods=['logreg'])),
)
seeds = [0]
tables = ['tab5']
slurm = dict(default=dict(time=30, cpus=2, gpus=0, mem='8G'))
