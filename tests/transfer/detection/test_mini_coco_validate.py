"""The real mini COCO set and the checks that stop bad COCO input before mmdet sees it."""
from __future__ import annotations

import contextlib
import io
import json
import re
import shutil

import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from transfer.detection import BadCocoInput, validate_coco
from transfer.detection import train as det_train
from transfer.detection.harness import check_datasets, use_coco_data
from transfer.openmmlab.config import check_backbone_checkpoint, load_config

MINI = "configs/detection/cascade-mask-rcnn_tinyvit-5m_fpn_mini.py"


def test_mini_coco_is_the_real_set_and_self_evaluates_to_ap_1(mini_coco):
    ann_file, img_dir, classes = mini_coco
    data = json.loads(ann_file.read_text())
    assert len(data["images"]) == 4 and len(data["annotations"]) == 31
    assert "_background_" not in classes and min(c["id"] for c in data["categories"]) == 1
    assert min(a["id"] for a in data["annotations"]) == 1
    assert all((img_dir / im["file_name"]).is_file() for im in data["images"])
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(ann_file))
        for iou_type in ("bbox", "segm"):
            dets = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"],
                     "segmentation": a["segmentation"], "score": 1.0} for a in data["annotations"]]
            ev = COCOeval(gt, gt.loadRes(dets), iou_type)
            ev.evaluate(), ev.accumulate(), ev.summarize()
            assert ev.stats[0] == pytest.approx(1.0), iou_type
    assert validate_coco(ann_file, img_dir).num_skipped == 0


@pytest.fixture()
def broken_copy(mini_coco, tmp_path):
    """A writable copy of the mini set and a function that saves an edited json next to it."""
    ann_file, img_dir, _ = mini_coco
    images = tmp_path / "images"
    shutil.copytree(img_dir, images)
    data = json.loads(ann_file.read_text())

    def save(edited: dict) -> tuple:
        path = tmp_path / "annotations.json"
        path.write_text(json.dumps(edited))
        return path, images
    return data, images, save


def test_missing_and_empty_image_files_are_named(broken_copy):
    data, images, save = broken_copy
    (images / data["images"][0]["file_name"]).unlink()
    (images / data["images"][1]["file_name"]).write_bytes(b"")
    ann_file, img_dir = save(data)
    with pytest.raises(BadCocoInput) as err:
        validate_coco(ann_file, img_dir)
    message = str(err.value)
    assert str(ann_file) in message and data["images"][0]["file_name"] in message and "does not exist" in message
    assert data["images"][1]["file_name"] in message and "empty" in message
    check = validate_coco(ann_file, img_dir, skip_bad=True)
    lost = sum(a["image_id"] in (data["images"][0]["id"], data["images"][1]["id"]) for a in data["annotations"])
    assert check.skipped == {"missing image file": 1, "empty image file": 1, "annotation of a skipped image": lost}
    assert len(check.dataset["images"]) == 2 and len(check.dataset["annotations"]) == 31 - lost


def test_degenerate_boxes_and_invalid_polygons(broken_copy):
    data, _, save = broken_copy
    data["annotations"][0]["bbox"][2] = 0.0
    data["annotations"][1]["segmentation"] = [[10.0, 10.0, 20.0, 20.0]]
    data["annotations"][2]["segmentation"] = [[5.0, 5.0, 5.0, 5.0, 5.0, 5.0]]
    data["annotations"][3]["bbox"] = [1.0, 2.0, float("nan"), 4.0]
    ann_file, img_dir = save(data)
    with pytest.raises(BadCocoInput) as err:
        validate_coco(ann_file, img_dir)
    message = str(err.value)
    for ann_id in (1, 2, 3, 4):
        assert f"annotation id {ann_id} " in message
    assert "4 problems" in message and "non-positive width/height" in message and "(< 3)" in message
    check = validate_coco(ann_file, img_dir, skip_bad=True)
    assert check.skipped == {"degenerate bbox": 1, "invalid polygon": 2, "bad bbox": 1}
    assert len(check.dataset["annotations"]) == 27


def test_annotation_id_zero_is_refused(broken_copy):
    data, _, save = broken_copy
    data["annotations"][0]["id"] = 0
    with pytest.raises(BadCocoInput, match="annotation id 0"):
        validate_coco(*save(data))


def test_train_entry_point_stops_before_mmdet_and_skips_with_count(broken_copy, tmp_path, capsys):
    data, _, save = broken_copy
    data["annotations"][5]["bbox"][3] = -3.0
    ann_file, img_dir = save(data)
    argv = [MINI, "--data", str(ann_file), str(img_dir), "--work-dir", str(tmp_path / "wd")]
    with pytest.raises(BadCocoInput, match=f"(?s){re.escape(str(ann_file))}.*annotation id 6 "):
        det_train.main(argv)
    # --skip-bad: the cleaned json replaces the bad one for every dataloader and the evaluators.
    cfg = load_config(MINI, work_dir=str(tmp_path / "wd"))
    use_coco_data(cfg, ann_file, img_dir)
    (check,) = check_datasets(cfg, skip_bad=True)
    assert check.skipped == {"degenerate bbox": 1}
    assert "skipped 1 degenerate bbox" in capsys.readouterr().out
    cleaned = cfg.train_dataloader.dataset.ann_file
    assert cleaned.startswith(str(tmp_path / "wd" / "checked_data")) and cfg.test_evaluator.ann_file == cleaned
    assert len(json.loads(open(cleaned).read())["annotations"]) == 30


def test_missing_backbone_checkpoint_is_named_before_training():
    cfg = load_config("configs/detection/cascade-mask-rcnn_tinyvit-21m_fpn_1x_coco.py")
    with pytest.raises(FileNotFoundError, match="tiny_vit_21m_22kto1k_distill.pth.*--pretrained PATH"):
        check_backbone_checkpoint(cfg, "mmdet")
