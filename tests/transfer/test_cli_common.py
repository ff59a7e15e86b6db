"""The probe / few-shot flags the suite's cells use: class subsets in file order, the records' data set name, a
random TinyViT with explicit windows, checkpoints named by a timm hub id (a prepared hub cache, no network)."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from contracts.assets import fashion_mnist_root
from transfer.cli_common import cli_backbone, data_subset, seeded_subset
from transfer.few_shot.__main__ import main as few_shot_main
from transfer.features import dataset_targets
from transfer.linear_probe import build_dataset
from transfer.linear_probe.__main__ import main as probe_main

BACKBONE_CFG = dict(backbone="tinyvit-5m", checkpoint=None, pretrain=None, allow_keys=None, resolution=64, seed=0)


@pytest.fixture(scope="module")
def test_split():
    return build_dataset("fashion_mnist", fashion_mnist_root(), "test")


def test_data_subset_orders(test_split):
    labels = dataset_targets(test_split)
    first = data_subset(test_split, 50, 0, classes=[5, 9], order="first")
    assert first.indices == np.flatnonzero(np.isin(labels, [5, 9]))[:50].tolist()
    seeded = data_subset(test_split, 50, 3, classes=[5, 9])
    assert set(dataset_targets(seeded).tolist()) == {5, 9} and len(seeded) == 50 and seeded.indices != first.indices
    assert data_subset(test_split, 50, 3, classes=[5, 9]).indices == seeded.indices  # seeded: reproducible
    assert data_subset(test_split, 40, 7).indices == seeded_subset(test_split, 40, 7).indices  # unchanged draw
    assert data_subset(test_split, 40, 7, order="first").indices == list(range(40))
    assert data_subset(test_split, None, 0) is test_split
    with pytest.raises(ValueError, match=r"classes \[42\]: no image has these labels"):
        data_subset(test_split, None, 0, classes=[42])
    with pytest.raises(ValueError, match="subset order 'last'"):
        data_subset(test_split, 5, 0, order="last")


def test_random_tinyvit_with_windows_is_the_students_initialisation():
    from backbones import TinyViT
    backbone = cli_backbone({**BACKBONE_CFG, "window_sizes": [8, 8, 4, 2], "seed": 3})
    torch.manual_seed(3)
    reference = TinyViT("5m", img_size=64, window_sizes=(8, 8, 4, 2), num_classes=0).state_dict()
    assert all(torch.equal(v, reference[k]) for k, v in backbone.model.state_dict().items())
    assert backbone.record == {"name": "tinyvit-5m", "source": "random", "pretrain": "none",
                               "checkpoint_sha256": None, "init_seed": 3, "window_sizes": [8, 8, 4, 2]}
    other_seed = cli_backbone({**BACKBONE_CFG, "seed": 4})
    assert other_seed.record["init_seed"] == 4  # the run's seed reaches every random initialisation
    with pytest.raises(ValueError, match="a checkpoint records its own windows"):
        cli_backbone({**BACKBONE_CFG, "window_sizes": [8, 8, 4, 2], "checkpoint": "asset:mobilenet_v2"})
    with pytest.raises(ValueError, match="apply to tinyvit-5m|11m|21m, not backbone 'vit-tiny'"):
        cli_backbone({**BACKBONE_CFG, "backbone": "vit-tiny", "window_sizes": [8, 8, 4, 2]})


def test_timm_hub_id_as_checkpoint(tmp_path, monkeypatch):
    """`--checkpoint timm/tiny_vit_5m_224.dist_in22k` reads timm's file from the hub cache; the tag names the
    pretraining and the record carries the file's sha256."""
    import timm
    from safetensors.torch import save_file
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.manual_seed(0)
    state = timm.create_model("tiny_vit_5m_224", pretrained=False).state_dict()
    folder = tmp_path / "hub" / "models--timm--tiny_vit_5m_224.dist_in22k"
    snapshot = folder / "snapshots" / ("b" * 40) / "model.safetensors"
    snapshot.parent.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(snapshot))
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text("b" * 40)
    backbone = cli_backbone({**BACKBONE_CFG, "checkpoint": "timm/tiny_vit_5m_224.dist_in22k", "resolution": 224})
    assert backbone.record["pretrain"] == "in21k-distill" and backbone.record["source"] == "timm"
    assert backbone.record["checkpoint_sha256"] == hashlib.sha256(snapshot.read_bytes()).hexdigest()
    loaded = backbone.model.state_dict()
    shared = [k for k in state if k in loaded and "attn.qkv" in k]
    assert shared and all(torch.equal(loaded[k], state[k]) for k in shared)


def test_class_subset_cells_end_to_end(tmp_path):
    """Probe and 5-shot on the held-out classes, first images in file order, records named for the subset."""
    common = ["--backbone", "tinyvit-5m", "--window-sizes", "8", "8", "4", "2", "--dataset", "fashion_mnist",
              "--data-root", str(fashion_mnist_root()), "--resolution", "32", "--classes", "5", "6", "7", "8", "9",
              "--subset", "first", "--record-dataset", "fashion_mnist_novel", "--cache-dir", str(tmp_path / "f"),
              "--results-dir", str(tmp_path / "rec"), "--cfg-options", "methods=[logreg]"]
    (probe,) = probe_main([*common, "--max-train", "60", "--max-test", "40"])
    assert probe["dataset"] == "fashion_mnist_novel" and probe["setting"]["n_train"] == 60
    assert probe["backbone"]["window_sizes"] == [8, 8, 4, 2]
    (shots,) = few_shot_main([*common, "--max-images", "100", "--shots", "2", "--n-query", "3", "--n-episodes",
                              "4", "--episodes-dir", str(tmp_path / "ep")])
    assert shots["dataset"] == "fashion_mnist_novel"
    (episodes,) = Path(tmp_path / "ep").glob("fashion_mnist_novel_5way2shot3query_4ep_seed0.json")
    assert episodes.is_file()
