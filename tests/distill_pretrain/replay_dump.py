"""Helper run by test_augment / test_gpu_augment under `torchrun --nproc_per_node 2`: each rank replays its
DistributedSampler shard (with DataLoader workers) through a replay pipeline ('pil' or 'tensor') and saves
{index: image} to OUT/rank<r>.pt. Not a test module itself."""
import sys

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler

from distill_pretrain import build_dataset
from distill_pretrain.replay import build_replay

FULL_AUG = dict(img_size=32, color_jitter=0.4, auto_augment="rand-m9-mstd0.5-inc1", re_prob=0.5, mixup_alpha=0.8,
                cutmix_alpha=1.0)


def main(out_dir: str, epoch: int, pipeline: str = "pil") -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    replay = build_replay(pipeline, build_dataset(dict(type="FashionMNIST", split="train", limit=16)), FULL_AUG,
                          base_seed=7)
    replay.dataset.set_epoch(epoch)
    sampler = DistributedSampler(replay.dataset, shuffle=True, seed=123)
    loader = DataLoader(replay.dataset, batch_size=3, sampler=sampler, num_workers=1, collate_fn=replay.collate)
    images = {}
    for batch in loader:
        batch = replay.finish(batch, "cpu")
        for i, x in zip(batch["index"].tolist(), batch["image"]):
            images[i] = x.clone()
    torch.save(images, f"{out_dir}/rank{rank}.pt")
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), *sys.argv[3:])
