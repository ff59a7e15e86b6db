"""Proof on real data: ImageNet MobileNetV2 vs the same network randomly initialised, on Fashion-MNIST."""
import numpy as np
import pytest
import torch

from contracts.assets import fashion_mnist_root, mobilenet_v2_weights
from transfer.features import load_backbone
from transfer.few_shot import run_few_shot
from transfer.linear_probe import build_dataset, run_fast_probe
from transfer.cli_common import seeded_subset

RES = 64


@pytest.fixture(scope="module")
def fmnist(tmp_path_factory):
    try:
        root = fashion_mnist_root()
        mobilenet_v2_weights()
    except FileNotFoundError as err:
        pytest.skip(f"offline assets missing: {err}")
    torch.set_num_threads(2)
    train = seeded_subset(build_dataset("fashion_mnist", root, "train"), 1000, 0)
    test = seeded_subset(build_dataset("fashion_mnist", root, "test"), 500, 1)
    return train, test, tmp_path_factory.mktemp("features")


@pytest.mark.slow
def test_fast_probe_and_few_shot_separate_pretrained_from_random(fmnist, tmp_path):
    train, test, cache = fmnist
    probes, shots = {}, {}
    for name, ckpt in (("pretrained", "asset:mobilenet_v2"), ("random", None)):
        backbone = load_backbone("torchvision:mobilenet_v2", ckpt)
        probes[name] = run_fast_probe(backbone, train, test, resolution=RES, cache_dir=cache,
                                      c_grid=(0.01, 0.1, 1.0), head_epochs=30)
        # few-shot over the probe's test images: their features come from the cache
        shots[name] = run_few_shot(backbone, test, n_way=5, n_shot=5, n_query=15, n_episodes=100, seed=0,
                                   dataset_name="fashion_mnist", episodes_path=tmp_path / "episodes.json",
                                   resolution=RES, cache_dir=cache, finetune_epochs=50)
    pre, rnd = probes["pretrained"]["results"], probes["random"]["results"]
    print({k: v["top1"] for k, v in pre.items()}, {k: v["top1"] for k, v in rnd.items()})
    assert pre["logreg"]["top1"] >= 0.80
    assert rnd["logreg"]["top1"] <= 0.30
    assert pre["linear_heads"]["top1"] >= 0.70 and rnd["linear_heads"]["top1"] <= 0.30
    assert probes["pretrained"]["backbone"]["checkpoint_sha256"] is not None
    assert probes["pretrained"]["backbone"]["pretrain"] == "in1k"  # the asset is an ImageNet-1k classifier
    assert probes["random"]["backbone"]["source"] == "random"
    from transfer.few_shot import few_shot_records
    from transfer.linear_probe import probe_records
    for name in probes:  # both runs give records that pass the schema (make_record validates)
        assert len(probe_records(probes[name], "fashion_mnist", resolution=RES, seed=0)) == 2
        assert len(few_shot_records(shots[name], "fashion_mnist")) == 2
    for method in ("finetune", "logreg"):
        p, r = shots["pretrained"]["results"][method], shots["random"]["results"][method]
        print(method, p["top1"], p["ci95"], r["top1"], r["ci95"])
        assert p["top1"] - p["ci95"] > r["top1"] + r["ci95"], (method, p["top1"], p["ci95"], r["top1"], r["ci95"])
        assert len(p["accuracies"]) == 100
