"""The shared OpenMMLab harness (transfer.openmmlab): hooks under the project scope, one set of flags, one unit,
and bad input (unknown model key, missing data path, mismatched checkpoint) named before any training starts."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import CheckpointHook
from mmengine.logging import MessageHub
from mmengine.registry import HOOKS as MMENGINE_HOOKS

import backbones
from mmdet.registry import HOOKS as MMDET_HOOKS
from mmseg.registry import HOOKS as MMSEG_HOOKS
from transfer.detection import DETECTION, coco_metrics
from transfer.detection import train as det_train
from transfer.openmmlab import MetricHistoryHook, PlainCheckpointHook
from transfer.openmmlab.cli import build_parser
from transfer.openmmlab.config import check_backbone_checkpoint, check_model_keys, load_config, use_harness_hooks
from transfer.segmentation import SEGMENTATION, SegDataError, seg_metrics
from transfer.segmentation import train as seg_train

DET_MINI = "configs/detection/cascade-mask-rcnn_tinyvit-5m_fpn_mini.py"
SEG_MINI = "configs/segmentation/upernet_tinyvit-5m_mini_voc.py"


def test_hooks_live_under_the_project_scope_only() -> None:
    for registry in (MMDET_HOOKS, MMSEG_HOOKS, MMENGINE_HOOKS):
        assert registry.get("tinyvit_bench.PlainCheckpointHook") is PlainCheckpointHook
        assert registry.get("tinyvit_bench.MetricHistoryHook") is MetricHistoryHook
        assert "MetricHistoryHook" not in registry.module_dict  # no unscoped name left to clash
    assert issubclass(PlainCheckpointHook, CheckpointHook)  # configs set it as default_hooks.checkpoint
    hook = MMDET_HOOKS.build(dict(type="tinyvit_bench.MetricHistoryHook", task="segmentation"))
    assert hook.convert is seg_metrics


def test_plain_checkpoint_hook_makes_a_checkpoint_weights_only_readable(tmp_path: Path) -> None:
    hub = MessageHub("plain_test")
    hub.update_scalar("train/loss", 1.5)
    hub.update_info("iter", 7)

    def checkpoint() -> dict:
        return {"state_dict": {"w": torch.ones(2)}, "meta": {"seed": np.int64(3), "epoch": np.float32(1.0)},
                "message_hub": hub.state_dict()}

    torch.save(checkpoint(), tmp_path / "stock.pth")
    with pytest.raises(Exception, match="HistoryBuffer|numpy"):
        torch.load(tmp_path / "stock.pth", weights_only=True)
    plain = checkpoint()
    # the two things the hook reads of the runner (a real Runner saves through it in tests/transfer/detection)
    runner = SimpleNamespace(cfg=Config(dict(optim_wrapper=dict(lr=0.1), work_dir="w")), world_size=1)
    PlainCheckpointHook().before_save_checkpoint(runner, plain)
    torch.save(plain, tmp_path / "plain.pth")
    loaded = torch.load(tmp_path / "plain.pth", weights_only=True)
    rng = loaded["meta"].pop("rng")
    assert torch.equal(rng["torch"], torch.get_rng_state())  # restored when the run resumes
    assert loaded["meta"] == {"seed": 3, "epoch": 1.0, "accepted_resume_changes": [],
                              "run_identity": {"optim_wrapper.lr": 0.1, "world_size": 1}}
    assert type(loaded["meta"]["seed"]) is int
    assert loaded["message_hub"]["runtime_info"]["iter"] == 7 and torch.equal(loaded["state_dict"]["w"], torch.ones(2))


def test_user_configs_get_the_plain_hook_with_their_arguments_and_one_history_hook() -> None:
    cfg = Config(dict(default_hooks=dict(checkpoint=dict(type="CheckpointHook", interval=3, by_epoch=False))))
    use_harness_hooks(cfg, "detection")
    use_harness_hooks(cfg, "detection")
    assert cfg.default_hooks.checkpoint == dict(type="tinyvit_bench.PlainCheckpointHook", interval=3, by_epoch=False)
    assert cfg.custom_hooks == [dict(type="tinyvit_bench.MetricHistoryHook", task="detection")]


def test_one_set_of_flags_for_both_tasks() -> None:
    def options(task, mode):  # noqa: ANN001, ANN202
        return {o for a in build_parser(task, mode, "x")._actions for o in a.option_strings}

    common = {"--work-dir", "--resume", "--resume-anyway", "--amp", "--cfg-options", "--launcher", "--data",
              "--pretrained", "--pretrain", "--results-dir", "--no-validate-data", "--sync-bn"}
    det, seg = options(DETECTION, "train"), options(SEGMENTATION, "train")
    assert common <= det and common <= seg
    assert det - seg == {"--skip-bad", "--no-test"} and seg - det == {"--mode", "--stride"}
    assert build_parser(DETECTION, "train", "x").parse_args(["c", "--resume"]).resume == "auto"
    assert build_parser(SEGMENTATION, "train", "x").parse_args(["c", "--resume", "k.pth"]).resume == "k.pth"


def test_one_unit_fractions_with_the_schema_names() -> None:
    raw = {"aAcc": 89.79, "mIoU": 52.2, "mAcc": 58.05, "IoU.person": 43.85, "IoU.background": 90.0}
    metrics = seg_metrics(raw)
    per_class = metrics.pop("iou_per_class")
    assert metrics == pytest.approx({"aacc": 0.8979, "miou": 0.522, "macc": 0.5805})
    assert per_class == pytest.approx({"person": 0.4385, "background": 0.9})
    raw = {f"coco/bbox_{k}": 0.25 for k in ("mAP", "mAP_50", "mAP_75", "mAP_m", "mAP_l")} | {"coco/bbox_mAP_s": -1.0}
    assert coco_metrics(raw) == {"bbox_ap": 0.25, "bbox_ap50": 0.25, "bbox_ap75": 0.25, "bbox_ap_s": None,
                                 "bbox_ap_m": 0.25, "bbox_ap_l": 0.25}  # COCOeval's -1: no object of that size


@pytest.mark.parametrize(("key", "value", "message"), [
    ("model.backbone.archh", "5m", r"model\.backbone\.archh: TinyViT has no argument 'archh'"),
    ("model.neck.in_channel", 3, r"model\.neck\.in_channel: FPN has no argument 'in_channel'"),
    ("model.backbone.type", "TinyVit", r"model\.backbone\.type: 'TinyVit' is not registered in mmdet's MODELS"),
])
def test_unknown_model_keys_are_named(key: str, value: object, message: str) -> None:
    cfg = load_config(DET_MINI, {key: value})
    with pytest.raises(KeyError, match=message):
        check_model_keys(cfg, "mmdet")


def test_unknown_head_key_stops_the_segmentation_cli_before_training(tmp_path: Path) -> None:
    with pytest.raises(KeyError, match=r"model\.decode_head\.channel: UPerHead has no argument 'channel'"):
        seg_train.main([SEG_MINI, "--work-dir", str(tmp_path / "wd"), "--cfg-options", "model.decode_head.channel=8"])
    assert not (tmp_path / "wd").exists()


def test_missing_data_paths_are_named_before_training(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"annotation file /nowhere/ann\.json does not exist"):
        det_train.main([DET_MINI, "--data", "/nowhere/ann.json", "/nowhere/images", "--work-dir", str(tmp_path / "d")])
    with pytest.raises(SegDataError, match=r"data_root /nowhere/voc: folder not found"):
        seg_train.main([SEG_MINI, "--data", "/nowhere/voc", "--work-dir", str(tmp_path / "s")])
    assert not (tmp_path / "d").exists() and not (tmp_path / "s").exists()


def test_a_backbone_checkpoint_that_does_not_fit_is_named(tmp_path: Path) -> None:
    torch.save(backbones.TinyViT("11m").state_dict(), tmp_path / "tinyvit_11m.pth")
    cfg = load_config(DET_MINI)
    cfg.model.backbone.init_cfg = dict(type="Pretrained", checkpoint=str(tmp_path / "tinyvit_11m.pth"))
    with pytest.raises(ValueError, match=r"model\.backbone\.init_cfg\.checkpoint .*tinyvit_11m\.pth: does not fit "
                                         r"the configured TinyViT: .*has shape"):
        check_backbone_checkpoint(cfg, "mmdet")
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "other.pth")
    cfg.model.backbone.init_cfg.checkpoint = str(tmp_path / "other.pth")
    with pytest.raises(ValueError, match=r"other\.pth: does not fit .*not a TinyViT checkpoint \(unknown format\)"):
        check_backbone_checkpoint(cfg, "mmdet")


@pytest.mark.skipif(torch.cuda.is_available(), reason="AMP is refused only without a GPU")
def test_amp_is_refused_on_cpu_by_both_tasks(tmp_path: Path) -> None:
    for main, config in ((det_train.main, DET_MINI), (seg_train.main, SEG_MINI)):
        with pytest.raises(SystemExit, match="--amp needs a GPU"):
            main([config, "--amp", "--work-dir", str(tmp_path)])
