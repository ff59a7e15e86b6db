"""Seeded augmentation: seeds independent of the run's shape, pixel-exact replay (workers, processes), no global
RNG leakage, Mixup/CutMix as pure functions of the sample seed."""
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from distill_pretrain import AugmentConfig, ReplayDataset, build_dataset, collate_replay, sample_seed, sample_seeds

sys.path.insert(0, str(Path(__file__).parent))
from replay_dump import FULL_AUG  # noqa: E402

NO_MIX = dict(mixup_alpha=0.0, cutmix_alpha=0.0)
AUGS = {
    "crop_flip": dict(img_size=32, auto_augment=None, color_jitter=None, re_prob=0.0, **NO_MIX),
    "color_jitter": dict(img_size=32, auto_augment=None, color_jitter=0.4, re_prob=0.0, **NO_MIX),
    "randaugment": dict(img_size=32, auto_augment="rand-m9-mstd0.5-inc1", re_prob=0.0, **NO_MIX),
    "random_erasing": dict(img_size=32, auto_augment=None, re_prob=1.0, **NO_MIX),
    "mixup": dict(img_size=32, auto_augment=None, re_prob=0.0, mixup_alpha=0.8, cutmix_alpha=0.0),
    "cutmix": dict(img_size=32, auto_augment=None, re_prob=0.0, mixup_alpha=0.0, cutmix_alpha=1.0),
    "full": FULL_AUG,
}


@pytest.fixture(scope="module")
def photos():
    return build_dataset(dict(type="FashionMNIST", split="train", limit=16))


def test_seed_is_pure_and_shape_independent():
    s = sample_seed(0, 3, 12345)
    assert 0 <= s < 2**32 and s == sample_seed(0, 3, 12345)
    assert len({sample_seed(0, e, i) for e in range(5) for i in range(200)}) == 1000
    np.testing.assert_array_equal(sample_seeds(9, 4, np.arange(50)), [sample_seed(9, 4, i) for i in range(50)])


@pytest.mark.parametrize("name", list(AUGS))
def test_pixel_exact_replay_across_workers(photos, name):
    replay = ReplayDataset(photos, AUGS[name], base_seed=5)
    expected = {i: replay.get(i, 2) for i in range(len(photos))}
    replay.set_epoch(2)
    order = list(np.random.default_rng(0).permutation(len(photos)))
    loader = DataLoader(replay, batch_size=5, sampler=order, num_workers=2, collate_fn=collate_replay)
    seen = 0
    for batch in loader:
        for j, i in enumerate(batch["index"].tolist()):
            assert torch.equal(batch["image"][j], expected[i]["image"]), f"{name}: index {i} differs in a worker"
            assert batch["seed"][j] == expected[i]["seed"] == sample_seed(5, 2, i)
            seen += 1
    assert seen == len(photos)
    # the augmentation is really random: another epoch gives other pixels
    assert not torch.equal(replay.get(0, 3)["image"], expected[0]["image"])
    mixed = [e["mix"] for e in expected.values() if e["mix"] is not None]
    assert bool(mixed) == (name in ("mixup", "cutmix", "full"))


def test_mix_semantics(photos):
    cut = ReplayDataset(photos, AUGS["cutmix"], base_seed=1)
    item = cut.get(3, 0)
    partner, lam, partner_label = item["mix"]
    assert partner != 3 and 0.0 <= lam <= 1.0 and partner_label == photos[partner][1]
    own, _ = cut.augment(3, item["seed"])
    other, _ = cut.augment(partner, sample_seed(1, 0, partner))
    from_partner = (item["image"] == other).all(0) & (item["image"] != own).any(0)
    assert abs(1.0 - from_partner.float().mean().item() - lam) < 0.1  # the CutMix box area matches 1 - λ
    mix = ReplayDataset(photos, AUGS["mixup"], base_seed=1)
    item = mix.get(3, 0)
    partner, lam, _ = item["mix"]
    own, _ = mix.augment(3, item["seed"])
    other, _ = mix.augment(partner, sample_seed(1, 0, partner))
    assert torch.equal(item["image"], own * lam + other * (1 - lam))


def test_no_global_rng_leak(photos):
    replay = ReplayDataset(photos, FULL_AUG, base_seed=0)
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    ref = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    replay.get(0, 0)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == ref


def test_config_hash_and_unknown_keys():
    assert AugmentConfig().hash() == AugmentConfig.coerce({}).hash()
    assert AugmentConfig(img_size=32).hash() != AugmentConfig().hash()
    with pytest.raises(ValueError, match="img_sise"):
        AugmentConfig.coerce(dict(img_sise=32))


@pytest.mark.slow
def test_pixel_exact_replay_torchrun_two_processes(photos, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           str(Path(__file__).parent / "replay_dump.py"), str(tmp_path), "1"]
    subprocess.run(cmd, check=True, env=env, timeout=300, capture_output=True)
    got = {**torch.load(tmp_path / "rank0.pt"), **torch.load(tmp_path / "rank1.pt")}
    assert sorted(got) == list(range(len(photos)))
    replay = ReplayDataset(photos, FULL_AUG, base_seed=7)
    for i, x in got.items():
        assert torch.equal(x, replay.get(i, 1)["image"]), f"index {i} differs between 2 processes and 1"


class _EpochKeys:
    """A batch sampler yielding (epoch, index) keys of 8 samples in batches of 4; its epoch is set from outside."""

    epoch = 0

    def __iter__(self):
        return iter([[(self.epoch, i) for i in range(s, s + 4)] for s in (0, 4)])

    def __len__(self):
        return 2


def test_epoch_index_keys_serve_persistent_workers(photos):
    from distill_pretrain.replay import build_replay
    replay = build_replay("tensor", photos, FULL_AUG, base_seed=2)  # __getitem__ is ReplayDataset's, shared
    keys = _EpochKeys()
    loader = DataLoader(replay.dataset, batch_sampler=keys, num_workers=1, persistent_workers=True,
                        collate_fn=replay.collate)
    seen = []
    for epoch in (0, 1):  # the worker started in epoch 0 serves epoch 1 without set_epoch
        keys.epoch = epoch
        for batch in loader:
            batch = replay.finish(batch, "cpu")
            want = replay.finish(replay.collate([replay.dataset.get(i, epoch) for i in batch["index"].tolist()]),
                                 "cpu")
            assert torch.equal(batch["image"], want["image"]) and torch.equal(batch["seed"], want["seed"])
            seen.append(batch["image"])
    assert not torch.equal(seen[0], seen[2])  # epoch 1 is another augmentation of the same indices
