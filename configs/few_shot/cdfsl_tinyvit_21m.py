"""Paper Tab. 5 few-shot (CD-FSL): 5-way, 5/20/50 shots, 15 queries, 600 episodes; set checkpoint, dataset
(cropdisease | eurosat | isic2018 | chestx) and data_root.

    python -m transfer.few_shot configs/few_shot/cdfsl_tinyvit_21m.py --checkpoint CKPT --dataset eurosat --data-root DIR
"""
backbone = dict(spec='tinyvit-21m', checkpoint=None)
dataset = 'eurosat'
data_root = None
n_way = 5
shots = [5, 20, 50]
n_query = 15
n_episodes = 600
resolution = 224
