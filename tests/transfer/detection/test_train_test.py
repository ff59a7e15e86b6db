"""Real mmdet training and evaluation of the slim TinyViT Cascade Mask R-CNN on the real mini COCO set."""
from __future__ import annotations

import json
import math

import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

import backbones
from contracts.fileio import file_sha256
from contracts.records import read_records
from mmdet.registry import DATASETS, MODELS
from transfer.detection import test as det_test
from transfer.detection import train as det_train
from transfer.detection.harness import load_config, use_coco_data

MINI = "configs/detection/cascade-mask-rcnn_tinyvit-5m_fpn_mini.py"
SMALL = ["train_dataloader.dataset.pipeline.2.scale=(128,128)", "test_dataloader.dataset.pipeline.1.scale=(128,128)",
         "val_dataloader.dataset.pipeline.1.scale=(128,128)"]
NAMES = {f"{kind}_{m}" for kind in ("bbox", "segm") for m in ("ap", "ap50", "ap75", "ap_s", "ap_m", "ap_l")}
LOSSES = {"loss_rpn_cls", "loss_rpn_bbox"} | {f"s{i}.{k}" for i in range(3) for k in ("loss_cls", "loss_bbox", "loss_mask")}


def out_of(work_dir) -> str:
    """Text of the newest run log in an MMEngine work dir."""
    return sorted(work_dir.glob("*/*.log"))[-1].read_text()


def _model_and_batch(mini_coco, **backbone):
    ann_file, img_dir, _ = mini_coco
    cfg = load_config(MINI)
    use_coco_data(cfg, ann_file, img_dir)
    cfg.model.backbone.update(backbone)
    cfg.train_dataloader.dataset.pipeline[2].scale = (128, 128)
    init_default_scope("mmdet")
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    return cfg, model, pseudo_collate([dataset[0], dataset[3]])


def test_one_training_iteration_gives_finite_losses_for_every_term(mini_coco):
    cfg, model, batch = _model_and_batch(mini_coco)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    before = model.roi_head.bbox_head[2].fc_cls.weight.detach().clone()
    log = model.train().train_step(batch, wrapper)
    assert LOSSES <= set(log)
    for name in LOSSES:
        value = float(log[name].detach())
        assert math.isfinite(value) and value > 0, name
    assert not torch.equal(before, model.roi_head.bbox_head[2].fc_cls.weight)  # the last cascade stage learned


def test_frozen_stages_freezes_what_it_says(mini_coco):
    cfg, model, batch = _model_and_batch(mini_coco, frozen_stages=2)
    backbone = model.backbone
    frozen = [backbone.patch_embed, backbone.stages[0], backbone.stages[1], backbone.norm0, backbone.norm1]
    free = [backbone.stages[2], backbone.stages[3], backbone.norm2, backbone.norm3]
    assert all(not p.requires_grad for m in frozen for p in m.parameters())
    assert all(p.requires_grad for m in free for p in m.parameters())
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    snapshot = {k: v.clone() for k, v in backbone.state_dict().items()}
    model.train().train_step(batch, wrapper)
    assert not backbone.patch_embed.training and not backbone.stages[1].training and backbone.stages[2].training
    after = backbone.state_dict()
    for prefix in ("patch_embed.", "stages.0.", "stages.1.", "norm0.", "norm1."):
        keys = [k for k in after if k.startswith(prefix)]
        assert keys and all(torch.equal(after[k], snapshot[k]) for k in keys), prefix  # weights and BN stats
    changed = [k for k in after if k.startswith("stages.2.") and not torch.equal(after[k], snapshot[k])]
    assert changed


@pytest.mark.slow
def test_train_then_test_entry_points_print_the_coco_table_and_write_records(mini_coco, tmp_path, capsys):
    """Fine-tuned from a backbone checkpoint: both records name it (issue 11: test used to say 'random')."""
    ann_file, img_dir, _ = mini_coco
    data = ["--data", str(ann_file), str(img_dir)]
    backbone_ckpt = tmp_path / "tinyvit_5m.pth"
    torch.manual_seed(0)
    torch.save(backbones.TinyViT("5m").state_dict(), backbone_ckpt)  # timm's layout
    options = ["--cfg-options", "train_cfg.max_iters=2", "train_cfg.val_interval=100",
               "default_hooks.checkpoint.interval=2", *SMALL]
    train_metrics = det_train.main([MINI, *data, "--work-dir", str(tmp_path / "wd"), "--pretrained",
                                    str(backbone_ckpt), "--pretrain", "in1k",
                                    "--results-dir", str(tmp_path / "records"), *options])
    checkpoint = tmp_path / "wd" / "iter_2.pth"
    assert checkpoint.is_file()
    assert torch.serialization.get_unsafe_globals_in_checkpoint(str(checkpoint)) == []  # weights_only loads it
    # no --pretrained here: the detector checkpoint says which backbone checkpoint it was fine-tuned from
    metrics = det_test.main([MINI, str(checkpoint), *data, "--work-dir", str(tmp_path / "wd_test"),
                             "--results-dir", str(tmp_path / "records"), "--cfg-options", *SMALL])
    out = capsys.readouterr().out
    assert set(metrics) == set(train_metrics) == NAMES
    assert all(v is None or 0.0 <= v <= 1.0 for v in metrics.values())
    assert metrics == train_metrics  # the same weights evaluated twice through pycocotools
    assert "| bbox |" in out and "| segm |" in out and "AP50" in out and "APl" in out
    # Same data, backbone, split and setting (iter_2.pth): the test record replaces the train one.
    (record,) = read_records(tmp_path / "records", tasks=["detection"])
    assert record["dataset"] == ann_file.parent.name and record["metrics"] == metrics
    assert record["backbone"] == {"name": "tinyvit-5m", "source": "timm", "pretrain": "in1k",
                                  "checkpoint_sha256": file_sha256(backbone_ckpt), "checkpoint": "tinyvit_5m.pth"}
    assert record["setting"]["test_scale"] == [128, 128] and record["setting"]["detector_checkpoint"] == "iter_2.pth"
    assert record["setting"]["detector_checkpoint_sha256"] == file_sha256(checkpoint)
    # A detector checkpoint that does not fit the config is refused before evaluating, naming file and keys.
    state = torch.load(checkpoint, weights_only=True)
    del state["state_dict"]["roi_head.bbox_head.2.fc_cls.weight"]
    torch.save(state, tmp_path / "cut.pth")
    with pytest.raises(ValueError, match=r"cut\.pth does not match the configured CascadeRCNN: missing "
                                         r"\['roi_head.bbox_head.2.fc_cls.weight'\]"):
        det_test.main([MINI, str(tmp_path / "cut.pth"), *data, "--work-dir", str(tmp_path / "wd_cut")])
    # Last, as it rotates iter_2.pth away: --resume reads the plain checkpoint (weights_only) and goes on; training
    # one iteration longer is another run, accepted by name (docs/resume.md).
    resume_options = [o.replace("max_iters=2", "max_iters=3") for o in options]
    assert det_train.main([MINI, *data, "--work-dir", str(tmp_path / "wd"), "--pretrained", str(backbone_ckpt),
                           "--pretrain", "in1k", "--resume", "--resume-anyway", "train_cfg.max_iters", "--no-test",
                           *resume_options]) == {}
    log = out_of(tmp_path / "wd")
    assert "resumed" in log.lower() and (tmp_path / "wd" / "iter_3.pth").is_file()
    assert "accepted changes: train_cfg.max_iters: saved 2, requested 3" in log
    assert torch.load(tmp_path / "wd" / "iter_3.pth", weights_only=True)["meta"]["accepted_resume_changes"] == [
        {"iter": 2, "file": str(tmp_path / "wd" / "iter_2.pth"), "changes": {"train_cfg.max_iters": [2, 3]}}]
    # The loop validates at its last iteration; the history survives the resume.
    history = json.loads((tmp_path / "wd" / "metric_history.json").read_text())
    assert [h["iter"] for h in history] == [2, 3]
    assert {k: v for k, v in history[0].items() if k in NAMES} == train_metrics
