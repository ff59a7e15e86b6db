"""Synthetic-but-realistic result records (the names and shapes the harnesses write), in a tmp dir."""
from __future__ import annotations

from pathlib import Path

import pytest

from contracts.records import make_record, write_record


def write_realistic_records(results: Path) -> Path:
    """One or more records for every task the tables lay out; returns the directory."""
    tv5 = {"name": "tinyvit-5m", "source": "random"}
    official = {"name": "tiny_vit_21m_224.dist_in22k_ft_in1k", "source": "timm", "checkpoint_sha256": "ab" * 32}
    distilled = {"name": "tinyvit-5m", "source": "distill", "checkpoint_sha256": "cd" * 32}
    scratch = {"name": "tinyvit-5m", "source": "scratch", "checkpoint_sha256": "ef" * 32}
    recs = [
        make_record("throughput", dataset="synthetic", split="none", backbone=tv5,
                    setting={"img_size": 224, "batch": 16, "device": "cpu", "amp": False},
                    metrics={"params_m": 5.39, "macs_g": 1.27, "ours_img_s": 41.0, "timm_img_s": 40.0,
                             "speedup_vs_timm": 1.025}),
        make_record("linear_probe", dataset="cifar100", backbone=official, setting={"img_size": 224},
                    metrics={"top1": 0.861, "ci95": 0.004}),
        make_record("linear_probe", dataset="fashion_mnist", backbone=distilled, setting={"img_size": 64},
                    metrics={"top1": 0.80}),
        make_record("linear_probe", dataset="fashion_mnist", backbone=scratch, setting={"img_size": 64},
                    metrics={"top1": 0.74}),
        make_record("few_shot", dataset="eurosat", backbone=official, setting={"shots": 5, "ways": 5},
                    metrics={"top1": 87.0, "ci95": 0.6}),
        make_record("few_shot", dataset="fashion_mnist", backbone=distilled, setting={"shots": 5, "ways": 5},
                    metrics={"top1": 0.71, "ci95": 0.02}),
        make_record("detection", dataset="coco", split="val2017", backbone=official,
                    setting={"detector": "cascade_mask_rcnn"},
                    metrics={"coco/bbox_mAP": 0.497, "coco/bbox_mAP_50": 0.69, "coco/bbox_mAP_s": 0.33,
                             "coco/segm_mAP": 0.43}),
        make_record("detection", dataset="labelme_mini", backbone=distilled, setting={"detector": "mask_rcnn"},
                    metrics={"bbox_AP": 0.01, "bbox_APs": 0.0, "segm_AP": 0.0}),
        make_record("segmentation", dataset="labelme_voc_mini", backbone=distilled, setting={"crop_size": [64, 64]},
                    metrics={"mIoU": 3.2, "mAcc": 8.1, "aAcc": 41.0, "IoU.person": 5.1, "Acc.person": 9.0}),
        make_record("store", dataset="imagenet-1k", backbone={"name": "logit-store-fp16", "source": "ours"},
                    setting={"K": 10, "format": "fp16"},
                    metrics={"bytes_per_sample": 44, "storage_GiB": 15.75, "write_records_per_s": 900.0}),
        make_record("store", dataset="imagenet-21k", backbone={"name": "logit-store-fp16", "source": "ours"},
                    setting={"K": 100, "format": "fp16"}, metrics={"bytes_per_sample": 404, "storage_GiB": 480.4}),
        make_record("distill_speed", dataset="fashion_mnist", backbone=tv5, setting={"img_size": 64},
                    metrics={"stored_step_s": 0.21, "online_step_s": 0.47, "scratch_step_s": 0.20,
                             "online_over_stored": 2.24, "online_over_scratch": 2.35}),
        make_record("iteration_time", dataset="labelme_mini", backbone=tv5,
                    setting={"harness": "detection", "img_size": 128}, metrics={"train_step_s": 0.5, "infer_s": 0.1}),
    ]
    for rec in recs:
        write_record(rec, results)
    return results


@pytest.fixture(scope="module")
def records_dir(tmp_path_factory) -> Path:
    return write_realistic_records(tmp_path_factory.mktemp("records"))
