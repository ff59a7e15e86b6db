"""Every detection config builds a real mmdet model with the recipe it claims (no weights loaded, no data)."""
from __future__ import annotations

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

import backbones  # noqa: F401 - registers TinyViT and the layer-decay constructor
from mmdet.registry import MODELS

CONFIGS = {
    "cascade-mask-rcnn_tinyvit-5m_fpn_1x_coco.py": ("TinyViT", [64, 128, 160, 320], [8, 11]),
    "cascade-mask-rcnn_tinyvit-11m_fpn_1x_coco.py": ("TinyViT", [64, 128, 256, 448], [8, 11]),
    "cascade-mask-rcnn_tinyvit-21m_fpn_1x_coco.py": ("TinyViT", [96, 192, 384, 576], [8, 11]),
    "cascade-mask-rcnn_tinyvit-21m_fpn_ms-crop-3x_coco.py": ("TinyViT", [96, 192, 384, 576], [27, 33]),
    "cascade-mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py": ("SwinTransformer", [96, 192, 384, 768], [8, 11]),
    "cascade-mask-rcnn_tinyvit-5m_fpn_mini.py": ("TinyViT", [64, 128, 160, 320], None),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_config_builds_the_claimed_detector(name):
    kind, channels, milestones = CONFIGS[name]
    cfg = Config.fromfile(f"configs/detection/{name}")
    assert "SyncBN" not in cfg.pretty_text and "backbones" in cfg.custom_imports.imports
    init_default_scope("mmdet")
    model = MODELS.build(cfg.model)
    assert type(model).__name__ == "CascadeRCNN" and type(model.backbone).__name__ == kind
    assert list(cfg.model.neck.in_channels) == channels
    model.eval()
    with torch.no_grad():  # the neck's in_channels are what the backbone really returns
        feats = model.backbone(torch.zeros(1, 3, 64, 64))
    assert [f.shape[1] for f in feats] == channels
    heads = model.roi_head.bbox_head
    assert len(heads) == 3 and all(h.num_shared_convs == 4 and h.num_shared_fcs == 1 for h in heads)
    assert all(type(h.loss_bbox).__name__ == "GIoULoss" and h.reg_decoded_bbox for h in heads)
    assert all(isinstance(h.shared_convs[0].bn, torch.nn.BatchNorm2d) for h in heads)
    optimizer = cfg.optim_wrapper.optimizer
    assert (optimizer.type, optimizer.lr, optimizer.weight_decay) == ("AdamW", 1e-4 if milestones else 4e-4, 0.05)
    if milestones:
        warmup, steps = cfg.param_scheduler
        assert warmup.type == "LinearLR" and not warmup.by_epoch and steps.milestones == milestones
        assert cfg.train_cfg.max_epochs == milestones[-1] + (1 if milestones == [8, 11] else 3)


def test_layer_decay_and_no_decay_groups_from_the_config():
    cfg = Config.fromfile("configs/detection/cascade-mask-rcnn_tinyvit-5m_fpn_1x_coco.py")
    cfg.optim_wrapper.paramwise_cfg.layer_decay_rate = 0.8
    init_default_scope("mmdet")
    model = MODELS.build(cfg.model)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    group_of = {id(p): g for g in wrapper.optimizer.param_groups for p in g["params"]}
    blocks = model.backbone.stages[1].blocks[0]
    first, last = model.backbone.patch_embed.conv1.conv.weight, model.backbone.stages[3].blocks[-1].mlp.fc1.weight
    assert group_of[id(first)]["lr"] < group_of[id(last)]["lr"] <= 1e-4
    assert group_of[id(model.roi_head.bbox_head[0].fc_cls.weight)]["lr"] == pytest.approx(1e-4)
    assert group_of[id(blocks.attn.attention_biases)]["weight_decay"] == 0.0
    assert group_of[id(blocks.attn.norm.weight)]["weight_decay"] == 0.0
    assert group_of[id(blocks.attn.qkv.weight)]["weight_decay"] == 0.05
