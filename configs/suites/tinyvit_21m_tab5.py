"""The paper's Tab. 5 grid: TinyViT-21M pretrained four ways (#0 IN-1k, #1 IN-1k with distillation, #2 IN-21k,
#3 IN-21k with distillation) × linear probe (fast mode and the MoCo v3 protocol) on CIFAR-10 / CIFAR-100 / Flowers /
Cars / Pets and 5-way 5 / 20 / 50-shot CD-FSL on ISIC / EuroSAT / CropDisease / ChestX: 88 cells at 224 px.

    python -m benchmarks.suite configs/suites/tinyvit_21m_tab5.py --dry-run \
        --cfg-options datasets.cifar100.root=/data/cifar backbones.in21k.checkpoint=work_dirs/in21k/checkpoint.pth
    python -m benchmarks.suite configs/suites/tinyvit_21m_tab5.py --launcher slurm

#0 and #3 are the official microsoft/Cream releases (fetched once into .cache/weights, sha256 recorded); #1 and #2
have no release: train them with configs/distill/ (or name your files) and point `backbones.<label>.checkpoint` at
them. Each data set's `root` holds the layout its CLI documents (`transfer.linear_probe.datasets`,
`transfer.few_shot.datasets`). The tables compare every cell with the paper's numbers (`benchmarks.table`, tab5).
"""
backbones = dict(
    in1k=dict(spec='tinyvit-21m', checkpoint='tiny_vit_21m_1k', allow_pickle=True),
    in1k_distill=dict(spec='tinyvit-21m', checkpoint='checkpoints/tiny_vit_21m_in1k_distill.pth',
                      pretrain='in1k-distill'),
    in21k=dict(spec='tinyvit-21m', checkpoint='checkpoints/tiny_vit_21m_in21k.pth', pretrain='in21k'),
    in21k_distill=dict(spec='tinyvit-21m', checkpoint='tiny_vit_21m_22k_distill', allow_pickle=True),
)
datasets = dict(
    cifar10=dict(type='cifar10', root='/data/cifar10'),
    cifar100=dict(type='cifar100', root='/data/cifar100'),
    flowers=dict(type='flowers102', root='/data/flowers102'),
    cars=dict(type='stanford_cars', root='/data/stanford_cars'),
    pets=dict(type='oxford_pets', root='/data/oxford_pets'),
    isic=dict(type='isic2018', root='/data/cdfsl/ISIC'),
    eurosat=dict(type='eurosat', root='/data/cdfsl/EuroSAT/2750'),
    cropdisease=dict(type='cropdisease', root='/data/cdfsl/CropDiseases'),
    chestx=dict(type='chestx', root='/data/cdfsl/chestX'),
)
tasks = dict(
    linear_probe=dict(type='linear_probe', datasets=['cifar10', 'cifar100', 'flowers', 'cars', 'pets'],
                      modes=['fast', 'moco_v3'], resolution=224, epochs=90, num_workers=8),
    few_shot=dict(type='few_shot', datasets=['isic', 'eurosat', 'cropdisease', 'chestx'], shots=[5, 20, 50],
                  resolution=224, n_way=5, n_query=15, n_episodes=600, num_workers=8),
)
seeds = [0]
tables = ['tab5']
slurm = dict(
    max_retries=2, poll_s=30,
    default=dict(time=120, cpus=10, gpus=1, mem='64G'),
    linear_probe=dict(time=720),  # the MoCo v3 protocol trains 90 epochs
)
