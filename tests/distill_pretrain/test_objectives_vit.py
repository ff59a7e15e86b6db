"""`mae`, `dmae`, `tinymim` on real Fashion-MNIST images with tiny random-weight ViTs (the `Objective` interface)."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F

from backbones.vit import build_vit
from distill_pretrain.objectives import OBJECTIVES


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    """16 real Fashion-MNIST training images, 32 px, 3 channels, normalised."""
    from torchvision.datasets import FashionMNIST

    from contracts import assets
    ds = FashionMNIST(str(assets.fashion_mnist_root()), train=True, download=False)
    x = torch.from_numpy(np.stack([np.asarray(ds[i][0]) for i in range(16)])).float().div(255)
    x = F.interpolate(x[:, None], size=32, mode="bilinear", align_corners=False).expand(-1, 3, -1, -1)
    return ((x - 0.29) / 0.35).contiguous()


def vit(name: str = "vit_tiny_patch16_224", depth: int = 2, seed: int = 0, **kw):
    torch.manual_seed(seed)
    return build_vit(name, img_size=32, patch_size=8, depth=depth, **kw)


TEACHER = dict(name="vit_small_patch16_224", img_size=32, patch_size=8, depth=2)
CASES = {"mae": {}, "dmae": {"teacher": TEACHER}, "tinymim": {"teacher": TEACHER}}


def train_steps(objective, student, images, steps: int, opt=None, first_step: int = 0):
    opt = opt or torch.optim.AdamW([*student.parameters(), *objective.parameters()], lr=1e-3)
    losses = []
    for step in range(first_step, first_step + steps):
        torch.manual_seed(step)  # the mask of step i is a function of i, as the trainer's RNG makes it
        out = objective(student, {"image": images})
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(out["loss"].item())
    return losses, opt


@pytest.mark.parametrize("name", sorted(CASES))
def test_loss_is_finite_and_decreases_on_real_images(name, images):
    student = vit()
    objective = OBJECTIVES.build(dict(type=name, student=student, **CASES[name]))
    torch.manual_seed(0)
    first = objective(student, {"image": images})["loss"].item()
    opt = torch.optim.AdamW([*student.parameters(), *objective.parameters()], lr=1e-3)
    for _ in range(6):
        torch.manual_seed(0)  # same mask every step: the same problem must get easier
        loss = objective(student, {"image": images})["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.manual_seed(0)
    out = objective(student, {"image": images})
    assert all(torch.isfinite(v) for v in out.values())
    assert out["loss"].item() < 0.9 * first, (name, first, out["loss"].item())


def test_teacher_is_frozen_and_outside_parameters_and_state_dict():
    objective = OBJECTIVES.build(dict(type="dmae", student=vit(), teacher=TEACHER))
    assert objective.teacher is not None and not any(p.requires_grad for p in objective.teacher.parameters())
    assert not any(k.startswith(("teacher", "_teacher")) for k in objective.state_dict())
    assert {k for k in objective.state_dict() if k.startswith("head_maps")} == {"head_maps.0.weight"}
    objective.train()
    assert not objective.teacher.training


def test_relation_kl_of_a_model_with_itself_is_zero(images):
    student = vit(depth=3)
    objective = OBJECTIVES.build(dict(type="tinymim", student=student, teacher=copy.deepcopy(student),
                                      student_layer=1, teacher_layer=1))
    out = objective(student, {"image": images})
    assert out["loss"].item() < 1e-6 and out["loss_qk"].item() < 1e-6


def test_attention_loss_is_zero_for_the_teacher_itself_with_identity_head_map(images):
    student = vit(depth=3)
    objective = OBJECTIVES.build(dict(type="dmae", student=student, teacher=copy.deepcopy(student),
                                      student_layers=(1, -1), teacher_layers=(1, 2)))
    with torch.no_grad():
        for m in objective.head_maps:
            m.weight.copy_(torch.eye(3))
    assert objective(student, {"image": images})["loss_attn"].item() < 1e-10


def test_head_counts_3_to_12(images):
    base = dict(name="vit_base_patch16_224", img_size=32, patch_size=8, depth=1)
    student = vit()
    tinymim = OBJECTIVES.build(dict(type="tinymim", student=student, teacher=base))
    assert tinymim.heads == 12
    dmae = OBJECTIVES.build(dict(type="dmae", student=student, teacher=base))
    assert dmae.head_maps[0].weight.shape == (12, 3)
    for objective in (tinymim, dmae):
        loss = objective(student, {"image": images[:2]})["loss"]
        loss.backward()
        assert torch.isfinite(loss) and student.blocks[-1].attn.qkv.weight.grad.abs().sum() > 0
        student.zero_grad()


def test_bad_input_names_key_and_value():
    student = vit()
    with pytest.raises(ValueError, match=r"key 'heads'"):
        OBJECTIVES.build(dict(type="tinymim", student=student, teacher=TEACHER, heads=5))
    with pytest.raises(ValueError, match="teacher: ResNet has no timm ViT attention"):
        OBJECTIVES.build(dict(type="dmae", student=student, teacher=timm.create_model("resnet18", num_classes=0)))
    with pytest.raises(ValueError, match=r"teacher_layer: layer index 7 is beyond the depth 2"):
        OBJECTIVES.build(dict(type="tinymim", student=student, teacher=TEACHER, teacher_layer=7))
    with pytest.raises(ValueError, match=r"student_layers: layer index -3 is beyond the depth 2"):
        OBJECTIVES.build(dict(type="dmae", student=student, teacher=TEACHER, student_layers=(-3,)))
    with pytest.raises(ValueError, match=r"teacher.patch_size"):
        OBJECTIVES.build(dict(type="dmae", student=student, teacher=dict(TEACHER, patch_size=4)))
    with pytest.raises(ValueError, match=r"mask_ratio=1.0"):
        OBJECTIVES.build(dict(type="mae", student=student, mask_ratio=1.0))


def test_resume_is_bitwise(images):
    def fresh():
        student = vit()
        return student, OBJECTIVES.build(dict(type="dmae", student=student, teacher=TEACHER))

    student, objective = fresh()
    _, opt = train_steps(objective, student, images[:4], 2)
    state = copy.deepcopy({"s": student.state_dict(), "o": objective.state_dict(), "opt": opt.state_dict()})
    straight, _ = train_steps(objective, student, images[:4], 2, opt, first_step=2)
    student2, objective2 = fresh()
    student2.load_state_dict(state["s"])
    objective2.load_state_dict(state["o"])
    opt2 = torch.optim.AdamW([*student2.parameters(), *objective2.parameters()], lr=1e-3)
    opt2.load_state_dict(state["opt"])
    resumed, _ = train_steps(objective2, student2, images[:4], 2, opt2, first_step=2)
    assert resumed == straight
    for (k, a), b in zip(student.state_dict().items(), student2.state_dict().values()):
        assert torch.equal(a, b), k


def test_dmae_through_the_trainer_resumes_exactly_and_exports_a_loadable_student(tmp_path):
    from pathlib import Path

    from backbones.provenance import describe_checkpoint
    from backbones.vit import vit_from_spec
    from distill_pretrain.config import load_config
    from distill_pretrain.trainer import Trainer
    slim = {"depth": 2, "patch_size": 8}
    options = {"epochs": 1, "data.train.limit": 16, "data.batch_size": 4, "log_interval": 1, "record": False,
               **{f"{part}.{k}": v for part in ("student", "objective.student", "objective.teacher")
                  for k, v in slim.items()}}
    config = Path(__file__).resolve().parents[2] / "configs/distill/vit_tiny_dmae_fmnist_tiny_cpu.py"
    full = Trainer(load_config(config, options), tmp_path / "full")
    full_hist = full.train()
    first = Trainer(load_config(config, {**options, "stop_after_steps": 2}), tmp_path / "split")
    first.train()
    second = Trainer(load_config(config, options), tmp_path / "split")
    assert second.resume()
    second_hist = second.train()
    assert [h["loss"] for h in second_hist] == [h["loss"] for h in full_hist] and len(full_hist) == 4
    for key, value in full.objective.state_dict().items():
        assert torch.equal(value, second.objective.state_dict()[key]), key
    ckpt = tmp_path / "full" / "checkpoint.pth"
    block = describe_checkpoint(ckpt, "vit-t")
    assert (block["source"], block["pretrain"]) == ("distill", "fashionmnist-dmae")
    loaded = vit_from_spec({"checkpoint": str(ckpt), **slim})
    torch.testing.assert_close(loaded.blocks[1].attn.qkv.weight, full.model.blocks[1].attn.qkv.weight)


def test_paper_recipes_resolve_with_their_numbers():
    from pathlib import Path

    from distill_pretrain.config import load_config
    root = Path(__file__).resolve().parents[2] / "configs/distill"
    tinymim = load_config(root / "vit_tiny_tinymim_in1k_pretrain.py", {})
    assert tinymim.mode == "tinymim" and tinymim.epochs == 300 and tinymim.optim.betas == (0.9, 0.95)
    assert tinymim.optim.lr * tinymim.data.batch_size * 8 / tinymim.optim.base_batch == pytest.approx(2.4e-3)
    assert (tinymim.optim.min_lr, tinymim.optim.warmup_epochs, tinymim.student.drop_path_rate) == (1e-5, 15, 0.1)
    assert (tinymim.data.aug.student_color_jitter, tinymim.data.aug.color_jitter) == (0.4, None)  # student only
    small = load_config(root / "vit_small_tinymim_in1k_pretrain.py", {})
    assert small.objective.student.arch == small.student.arch == "vit_small_patch16_224"
    ft = load_config(root / "vit_tiny_tinymim_in1k_finetune.py", {})
    assert (ft.mode, ft.epochs, ft.optim.lr, ft.optim.base_batch) == ("finetune", 200, 5e-3, 2048)
    assert ft.optim.layer_decay == 0.65
    assert (ft.data.aug.mixup_alpha, ft.data.aug.cutmix_alpha, ft.data.aug.re_prob) == (0.8, 1.0, 0.25)
    dmae = load_config(root / "vit_tiny_dmae_in1k_pretrain.py", {})
    assert dmae.mode == "dmae" and dmae.objective.teacher.name == "vit_base_patch16_224" and dmae.epochs == 400
