"""A dense cell run twice with its seed gives the same weights and metrics (before `--seed`, two runs of the same
mini Cascade Mask R-CNN cell gave bbox AP 0.058 and 0.082); another seed gives other weights; the record carries
the seed. Real mmdet / mmseg runners on the real mini sets, a few iterations at small size."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from contracts.records import read_records
from transfer.detection import build_mini_coco
from transfer.detection import train as det_train
from transfer.segmentation import build_mini_seg
from transfer.segmentation import train as seg_train

REPO = Path(__file__).resolve().parents[2]
DETECTION = REPO / "configs/detection/cascade-mask-rcnn_tinyvit-5m_fpn_mini.py"
SEGMENTATION = REPO / "configs/segmentation/upernet_tinyvit-5m_mini_voc.py"
DET_SMALL = ["train_dataloader.dataset.pipeline.2.scale=(128,128)",
             "test_dataloader.dataset.pipeline.1.scale=(128,128)",
             "val_dataloader.dataset.pipeline.1.scale=(128,128)"]


def _weights(work: Path, iters: int) -> dict[str, torch.Tensor]:
    return torch.load(work / f"iter_{iters}.pth", weights_only=True)["state_dict"]


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _three_runs(train, argv, tmp_path: Path, iters: int) -> list[tuple[dict, dict, dict]]:
    """(metrics, weights, record) of runs with seeds 3, 3, 4."""
    runs = []
    for i, seed in enumerate((3, 3, 4)):
        work, records = tmp_path / f"work{i}", tmp_path / f"records{i}"
        metrics = train.main([*argv, "--work-dir", str(work), "--results-dir", str(records), "--seed", str(seed)])
        (record,) = read_records(records)
        runs.append((metrics, _weights(work, iters), record))
    return runs


@pytest.mark.slow
def test_detection_cell_repeats_with_its_seed(tmp_path):
    torch.set_num_threads(1)
    ann_file, img_dir, _ = build_mini_coco(tmp_path / "mini_coco")
    argv = [str(DETECTION), "--data", str(ann_file), str(img_dir), "--cfg-options", "train_cfg.max_iters=3",
            "train_cfg.val_interval=100", "default_hooks.checkpoint.interval=3", *DET_SMALL]
    (first, w1, r1), (second, w2, r2), (other, w3, r3) = _three_runs(det_train, argv, tmp_path, 3)
    assert first == second and _same(w1, w2)
    assert not _same(w1, w3)  # the seed is what made them equal
    assert r1["setting"]["seed"] == r2["setting"]["seed"] == 3 and r3["setting"]["seed"] == 4


@pytest.mark.slow
def test_segmentation_cell_repeats_with_its_seed(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    monkeypatch.setenv("TINYVIT_SEG_MINI", build_mini_seg(tmp_path / "seg_mini")["data_root"])
    argv = [str(SEGMENTATION), "--cfg-options", "train_cfg.max_iters=2", "train_cfg.val_interval=2",
            "default_hooks.checkpoint.interval=2"]
    (first, w1, r1), (second, w2, r2), (other, w3, r3) = _three_runs(seg_train, argv, tmp_path, 2)
    assert first == second and _same(w1, w2)
    assert not _same(w1, w3)
    assert r1["setting"]["seed"] == 3 and r3["setting"]["seed"] == 4


def test_seed_flags_set_mmengines_randomness():
    """--seed / --deterministic become `randomness`; without them the config's stays (MMEngine draws a seed, which
    the train record, and the test record from the checkpoint's meta, then carry)."""
    from transfer.openmmlab.cli import build_parser, prepare_config
    from transfer.detection.harness import DETECTION as TASK
    parser = build_parser(TASK, "train", det_train.__doc__)
    cfg = prepare_config(TASK, parser.parse_args([str(DETECTION), "--seed", "7", "--deterministic",
                                                  "--no-validate-data"]), ())
    assert cfg.randomness == {"seed": 7, "deterministic": True}
    cfg = prepare_config(TASK, parser.parse_args([str(DETECTION), "--no-validate-data"]), ())
    assert "randomness" not in cfg or cfg.randomness.get("seed") is None
