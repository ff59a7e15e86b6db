"""Plain ViT-T in the dense harnesses: mmseg's MAE UperNet (with our weights converted) and the mmdet simple-FPN
Cascade Mask R-CNN, each built from its config and trained one step on the real mini sets."""
from __future__ import annotations

import math

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

from backbones.vit import build_vit, forward_tokens
from backbones.vit_to_mmseg import main as vit_to_mmseg
from contracts.checkpoint import save_checkpoint

SEG_MINI = "configs/segmentation/upernet_vit-t_mini_voc.py"
DET_MINI = "configs/detection/cascade-mask-rcnn_vit-t_simple-fpn_mini.py"


@pytest.fixture(scope="module")
def one_thread():
    torch.set_num_threads(1)  # a shared 2-core box: two threads oversubscribe


def test_config_recipes_are_the_papers():
    seg = Config.fromfile("configs/segmentation/upernet_vit-t_512x512_160k_ade20k_tinymim-setting.py")
    backbone = seg.model.backbone
    assert (backbone.type, backbone.embed_dims, backbone.drop_path_rate) == ("MAE", 192, 0.1)
    assert seg.optim_wrapper.optimizer.lr == 1e-4 and seg.optim_wrapper.paramwise_cfg.decay_rate == 0.65
    assert seg.param_scheduler[0].end == 1500 and seg.param_scheduler[1].end == 160000
    assert seg.train_dataloader.batch_size * 8 == 16 and seg.crop_size == (512, 512)
    assert "SyncBN" not in seg.pretty_text and seg.model.pretrained is None
    small = Config.fromfile("configs/segmentation/upernet_vit-s_512x512_160k_ade20k_tinymim-setting.py")
    assert small.model.backbone.embed_dims == 384 and small.model.decode_head.in_channels == [384] * 4


def test_converted_checkpoint_makes_mmseg_mae_compute_the_same_features(tmp_path, one_thread):
    from mmseg.models.backbones import MAE
    torch.manual_seed(0)
    vit = build_vit("vit_tiny_patch16_224", img_size=64, depth=2).eval()
    src = save_checkpoint(tmp_path / "checkpoint.pth", vit.state_dict(),
                          {"arch": "vit_tiny_patch16_224", "img_size": 64, "window_sizes": None, "num_classes": 0,
                           "epoch": 0, "objective": "tinymim"})
    vit_to_mmseg([str(src), str(tmp_path / "mmseg.pth")])
    mae = MAE(img_size=(64, 64), embed_dims=192, num_layers=2, num_heads=3, init_values=1.0, out_indices=[1],
              norm_cfg=dict(type="LN", eps=1e-6),
              init_cfg=dict(type="Pretrained", checkpoint=str(tmp_path / "mmseg.pth")))
    mae.init_weights()
    mae.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ours = forward_tokens(vit, x, depth=2)[:, 1:].transpose(1, 2).reshape(1, 192, 4, 4)
        theirs = mae(x)[0]
    torch.testing.assert_close(theirs, ours, atol=1e-4, rtol=1e-4)


def test_mmseg_upernet_vit_t_mini_trains_one_step(tmp_path, monkeypatch, one_thread):
    from mmseg.registry import DATASETS, MODELS

    from transfer.segmentation import build_mini_seg
    monkeypatch.setenv("TINYVIT_SEG_MINI", build_mini_seg(tmp_path / "seg")["data_root"])
    cfg = Config.fromfile(SEG_MINI)
    init_default_scope("mmseg")
    model = MODELS.build(cfg.model)
    model.init_weights()
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    lrs = {g["lr"] for g in wrapper.optimizer.param_groups}
    assert len(lrs) > 5  # mmseg's layer-wise decay over the ViT's 12 blocks
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    before = model.backbone.layers[0].attn.qkv.weight.detach().clone()
    log = model.train_step(pseudo_collate([dataset[0], dataset[1]]), wrapper)
    assert {"decode.loss_ce", "aux.loss_ce"} <= set(log) and all(math.isfinite(float(v.detach())) for v in log.values())
    assert not torch.equal(before, model.backbone.layers[0].attn.qkv.weight)


def test_mmdet_vit_t_simple_fpn_mini_trains_one_step(tmp_path, one_thread):
    from mmdet.registry import DATASETS, MODELS

    from transfer.detection import build_mini_coco
    from transfer.detection.harness import load_config, use_coco_data
    ann_file, img_dir, _ = build_mini_coco(tmp_path / "coco")
    torch.manual_seed(0)
    vit = build_vit("vit_tiny_patch16_224", img_size=224)
    ckpt = save_checkpoint(tmp_path / "checkpoint.pth", vit.state_dict(),
                           {"arch": "vit_tiny_patch16_224", "img_size": 224, "window_sizes": None, "num_classes": 0,
                            "epoch": 0, "objective": "dmae"})
    cfg = load_config(DET_MINI, work_dir=str(tmp_path / "work"))
    use_coco_data(cfg, ann_file, img_dir)
    cfg.model.backbone.init_cfg = dict(type="Pretrained", checkpoint=str(ckpt))
    cfg.train_dataloader.dataset.pipeline[2].scale = (128, 128)
    init_default_scope("mmdet")
    model = MODELS.build(cfg.model)
    model.init_weights()  # loads our checkpoint by name (pos_embed resampled 14x14 → 12x12 grid)
    torch.testing.assert_close(model.backbone.vit.blocks[3].mlp.fc1.weight, vit.blocks[3].mlp.fc1.weight)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    before = model.backbone.vit.blocks[0].attn.qkv.weight.detach().clone()
    log = model.train().train_step(pseudo_collate([dataset[0], dataset[3]]), wrapper)
    for name in ("loss_rpn_cls", "s0.loss_cls", "s2.loss_mask"):
        value = float(log[name].detach())
        assert math.isfinite(value) and value > 0, name
    assert not torch.equal(before, model.backbone.vit.blocks[0].attn.qkv.weight)
