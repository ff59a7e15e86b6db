"""The student factory and optimiser for timm ViT students: name resolution, classifier count, checkpoint meta that
rebuilds the model, and layer-wise LR decay by the BEiT / MAE depth rule (TinyMIM Tab. 2's 0.65)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from distill_pretrain.config import DEFAULTS
from distill_pretrain.optim import build_optimizer
from distill_pretrain.student import build_student, student_meta

REPO = Path(__file__).resolve().parents[2]
SLIM = dict(img_size=32, patch_size=8, depth=2)


def vit_cfg(**kw):
    """The trainer's student section (with its TinyViT defaults, arch='5m' among them) for a timm ViT."""
    return {**DEFAULTS["student"], "type": "timm", "model_name": "vit_tiny_patch16_224", **SLIM, **kw}


def test_model_name_wins_over_the_tinyvit_arch_default():
    model = build_student(vit_cfg(), num_classes=10)
    assert type(model).__name__ == "VisionTransformer" and model.num_classes == 10 and len(model.blocks) == 2
    assert student_meta(model, vit_cfg())["arch"] == "vit_tiny_patch16_224"


def test_student_num_classes_zero_is_a_feature_extractor():
    model = build_student(vit_cfg(num_classes=0), num_classes=10)  # the trainer's count loses to the section's
    assert model.num_classes == 0 and isinstance(model.head, nn.Identity)
    assert build_student(vit_cfg(num_classes=None), num_classes=7).num_classes == 7  # None: the trainer's count
    with pytest.raises(ValueError, match=r"student.num_classes=-1"):
        build_student(vit_cfg(num_classes=-1), num_classes=10)


def test_meta_records_the_vit_shape_and_rebuilds_it(tmp_path):
    from backbones.vit import vit_from_spec
    from contracts.checkpoint import save_checkpoint
    torch.manual_seed(0)
    model = build_student(vit_cfg(), num_classes=10)
    meta = student_meta(model, vit_cfg())
    assert {k: meta[k] for k in ("img_size", "patch_size", "depth", "embed_dim", "num_heads", "global_pool")} == dict(
        img_size=32, patch_size=8, depth=2, embed_dim=192, num_heads=3, global_pool="token")
    path = save_checkpoint(tmp_path / "s.pth", model.state_dict(), {**meta, "epoch": 0, "objective": "mae"})
    rebuilt = vit_from_spec(str(path))  # from the meta alone (a feature extractor: no classifier)
    assert set(model.state_dict()) - set(rebuilt.state_dict()) == {"head.weight", "head.bias"}
    for key, value in rebuilt.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def _scales(optimizer) -> dict[int, float]:
    return {id(p): g["lr_scale"] for g in optimizer.param_groups for p in g["params"]}


def test_layer_decay_applies_the_vit_depth_rule():
    model = build_student(vit_cfg(), num_classes=10)
    scales = _scales(build_optimizer(model, lr=1.0, weight_decay=0.05, layer_decay=0.5))
    named = {n: scales[id(p)] for n, p in model.named_parameters()}
    # embeddings + cls token = layer 0, block i = layer i + 1, final norm + head = layer depth + 1 (full LR)
    assert named["cls_token"] == named["pos_embed"] == named["patch_embed.proj.weight"] == 0.5 ** 3
    assert named["blocks.0.attn.qkv.weight"] == named["blocks.0.norm1.bias"] == 0.5 ** 2
    assert named["blocks.1.mlp.fc2.weight"] == 0.5
    assert named["norm.weight"] == named["head.weight"] == named["head.bias"] == 1.0
    plain = _scales(build_optimizer(model, lr=1.0, weight_decay=0.05, layer_decay=None))
    assert set(plain.values()) == {1.0}


def test_tinymim_finetune_recipe_gets_its_layer_decay():
    from distill_pretrain.config import load_config
    cfg = load_config(REPO / "configs/distill/vit_tiny_tinymim_in1k_finetune.py",
                      {f"student.{k}": v for k, v in SLIM.items()})
    model = build_student({k: v for k, v in cfg.student.items() if k != "init"}, cfg.num_classes)
    o = cfg.optim
    opt = build_optimizer(model, o.lr, o.weight_decay, tuple(o.betas), o.eps, o.layer_decay)
    scales = _scales(opt)
    assert o.layer_decay == 0.65
    assert scales[id(model.blocks[0].attn.qkv.weight)] == pytest.approx(0.65 ** 2)
    assert scales[id(model.patch_embed.proj.weight)] == pytest.approx(0.65 ** 3)
    assert scales[id(model.head.weight)] == 1.0


def test_layer_decay_on_a_model_without_a_depth_rule_is_refused():
    cnn = build_student({**DEFAULTS["student"], "type": "timm", "model_name": "resnet18"}, num_classes=10)
    with pytest.raises(ValueError, match=r"layer_decay_rate=0.65 \(optim.layer_decay\): ResNet has no layer-depth"):
        build_optimizer(cnn, lr=1.0, weight_decay=0.05, layer_decay=0.65)
    assert build_optimizer(cnn, lr=1.0, weight_decay=0.05, layer_decay=None).param_groups


def test_mmengine_constructor_finds_a_vit_backbone():
    from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS

    from backbones.vit import build_vit

    class Detector(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = build_vit("vit_tiny_patch16_224", **SLIM)
            self.neck = nn.Linear(192, 4)

    model = Detector()
    constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(dict(
        type="LayerDecayOptimWrapperConstructor",
        optim_wrapper_cfg=dict(type="OptimWrapper", optimizer=dict(type="AdamW", lr=1.0, weight_decay=0.05)),
        paramwise_cfg=dict(layer_decay_rate=0.5)))
    scales = _scales(constructor(model).optimizer)
    assert scales[id(model.backbone.blocks[1].attn.proj.weight)] == 0.5
    assert scales[id(model.backbone.cls_token)] == 0.5 ** 3 and scales[id(model.neck.weight)] == 1.0


def test_finetune_recipe_runs_from_a_trainer_written_mae_checkpoint(tmp_path):
    """TinyMIM Tab. 2's recipe shape (finetune, layer decay 0.65) on a ViT student initialised from an `mae` run's
    checkpoint, both through `distill_pretrain.train`, on real Fashion-MNIST images (2 steps each)."""
    from contracts.assets import fashion_mnist_root
    from distill_pretrain import train
    from backbones import load_checkpoint
    shape = [f"{p}.{k}={v}" for p in ("student", "objective.student") for k, v in SLIM.items()]
    common = ["epochs=1", "data.train.limit=8", "data.batch_size=4", "data.num_workers=0", "record=False"]
    train.main([str(REPO / "configs/distill/vit_tiny_mae_fmnist_tiny_cpu.py"), "--work-dir", str(tmp_path / "mae"),
                "--cfg-options", *common, *shape])
    init = tmp_path / "mae/checkpoint.pth"
    trainer = train.main([
        str(REPO / "configs/distill/vit_tiny_tinymim_in1k_finetune.py"), "--work-dir", str(tmp_path / "ft"),
        "--cfg-options", *common, *[s for s in shape if s.startswith("student.")], f"student.init={init}",
        "num_classes=10", "data.train.type=FashionMNIST", f"data.train.root={fashion_mnist_root()}",
        "data.train.split=train", "data.val=None", "data.aug.img_size=32", "data.aug.auto_augment=None", "amp=False",
        "pretrain_name=fashionmnist-mae-ft"])
    scales = {n: g["lr_scale"] for g in trainer.optimizer.param_groups
              for n, p in trainer.model.named_parameters() if any(p is q for q in g["params"])}
    assert scales["blocks.0.attn.qkv.weight"] == pytest.approx(0.65 ** 2) and scales["head.weight"] == 1.0
    first = load_checkpoint(init)["state_dict"]["blocks.0.attn.qkv.weight"]
    tuned = load_checkpoint(tmp_path / "ft/checkpoint.pth")
    assert tuned["meta"]["objective"] == "finetune" and tuned["meta"]["patch_size"] == 8
    assert not torch.equal(first, tuned["state_dict"]["blocks.0.attn.qkv.weight"])  # started there, then trained
    # two runs in one process: each logs to its own work dir's train.log
    pretrain_log, finetune_log = ((tmp_path / d / "train.log").read_text() for d in ("mae", "ft"))
    assert "objective=mae" in pretrain_log and "objective=finetune" not in pretrain_log
    assert "objective=finetune" in finetune_log
