"""The segmentation configs build into real mmseg models / optimizers with the settings the issue fixes."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

import backbones  # noqa: F401 - registers TinyViT and LayerDecayOptimWrapperConstructor
from backbones import TinyViT
from backbones.tiny_vit import resize_attention_biases
from mmseg.registry import MODELS

CONFIGS = Path(__file__).resolve().parents[3] / "configs" / "segmentation"
ARCHS = ("5m", "11m", "21m")


def _build(cfg: Config) -> torch.nn.Module:
    init_default_scope("mmseg")
    return MODELS.build(cfg.model)


@pytest.mark.parametrize("arch", ARCHS)
def test_tinyvit_upernet_config(arch: str) -> None:
    cfg = Config.fromfile(CONFIGS / f"upernet_tinyvit-{arch}_512x512_160k_ade20k.py")
    assert cfg.custom_imports == dict(imports=["backbones", "transfer.segmentation"], allow_failed_imports=False)
    model = _build(cfg)
    channels = list(model.backbone.out_channels)
    assert isinstance(model.backbone, TinyViT) and model.backbone.window_sizes == (16, 16, 32, 16)
    assert list(model.decode_head.in_channels) == channels
    assert model.decode_head.psp_modules.pool_scales == (1, 2, 3, 6)
    assert model.auxiliary_head.in_index == 2 and model.auxiliary_head.in_channels == channels[2]
    assert model.auxiliary_head.loss_decode.loss_weight == 0.4
    assert model.decode_head.num_classes == 150
    assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in model.modules())
    # mmseg's Swin-T recipe: AdamW 6e-5, wd 0.01, linear warm-up 1500 then poly, 160k, 2 images x 8 GPUs
    assert cfg.optim_wrapper.optimizer == dict(type="AdamW", lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01)
    assert [s.type for s in cfg.param_scheduler] == ["LinearLR", "PolyLR"] and cfg.param_scheduler[0].end == 1500
    assert cfg.train_cfg.max_iters == 160000 and cfg.train_dataloader.batch_size == 2
    assert cfg.train_dataloader.dataset.type == "ADE20KDataset" and cfg.crop_size == (512, 512)


def test_tinymim_setting_config() -> None:
    cfg = Config.fromfile(CONFIGS / "upernet_tinyvit-5m_512x512_160k_ade20k_tinymim-setting.py")
    model = _build(cfg)
    assert max(m.drop_prob for m in model.backbone.modules() if type(m).__name__ == "DropPath") == pytest.approx(0.1)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    opt = wrapper.optimizer
    assert isinstance(opt, torch.optim.AdamW) and opt.defaults["betas"] == (0.9, 0.999)
    scales = sorted({round(g["lr_scale"], 6) for g in opt.param_groups})
    depth = model.backbone.get_layer_depth("backbone.patch_embed.conv1.conv.weight", "backbone.")[1]
    assert scales[-1] == 1.0 and scales[0] == pytest.approx(0.65 ** (depth - 1), rel=1e-4)
    assert {g["weight_decay"] for g in opt.param_groups} == {0.0, 0.05}
    from mmengine.optim.scheduler import LinearLR
    from mmengine.registry import PARAM_SCHEDULERS
    scheds = [PARAM_SCHEDULERS.build(dict(s, optimizer=wrapper)) for s in cfg.param_scheduler]
    assert all(isinstance(s, LinearLR) for s in scheds) and scheds[1].end_factor == 0.0 and scheds[0].end == 1500
    assert cfg.train_cfg.max_iters == 160000 and cfg.auto_scale_lr.base_batch_size == 16


def test_all_tinymim_variants_build_and_swin_row() -> None:
    for arch in ("11m", "21m"):
        cfg = Config.fromfile(CONFIGS / f"upernet_tinyvit-{arch}_512x512_160k_ade20k_tinymim-setting.py")
        assert cfg.optim_wrapper.paramwise_cfg.layer_decay_rate == 0.65 and cfg.model.backbone.arch == arch
    cfg = Config.fromfile(CONFIGS / "upernet_swin-t_512x512_160k_ade20k.py")
    model = _build(cfg)
    assert type(model.backbone).__name__ == "SwinTransformer" and cfg.model.backbone.init_cfg is None
    assert list(model.decode_head.in_channels) == [96, 192, 384, 768]
    assert cfg.model.decode_head.norm_cfg.type == "BN" and cfg.model.auxiliary_head.norm_cfg.type == "BN"


def test_224_checkpoint_loads_into_512_windows(tmp_path: Path) -> None:
    """`--pretrained` on the 512 config: weights by name, attention-bias tables interpolated (7 → 16, 14 → 32)."""
    source = TinyViT("5m", img_size=224)
    torch.save(source.state_dict(), tmp_path / "tinyvit_5m_224.pth")
    cfg = Config.fromfile(CONFIGS / "upernet_tinyvit-5m_512x512_160k_ade20k.py")
    cfg.model.backbone.init_cfg = dict(type="Pretrained", checkpoint=str(tmp_path / "tinyvit_5m_224.pth"))
    model = _build(cfg)
    model.init_weights()
    src, dst = source.state_dict(), model.backbone.state_dict()
    key = "stages.1.blocks.0.attn.attention_biases"
    assert src[key].shape == (4, 49) and dst[key].shape == (4, 256)
    assert torch.equal(dst["stages.2.blocks.0.attn.qkv.weight"], src["stages.2.blocks.0.attn.qkv.weight"])
    assert torch.allclose(dst[key], resize_attention_biases(src[key], 16))
    key = "stages.2.blocks.0.attn.attention_biases"
    assert torch.allclose(dst[key], resize_attention_biases(src[key], 32))
