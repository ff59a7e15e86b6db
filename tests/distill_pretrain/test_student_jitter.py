"""Student-only colour jitter (TinyMIM supp. Tab. 1): two views per sample from one seed in both replay pipelines —
the teacher's is the no-jitter replay, the student's that view jittered — and the teachers of `tinymim`, `dmae`,
`online` and save_logits read the teacher's view; a trainer run with it resumes bitwise."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torchvision import transforms

from distill_pretrain import LogitStore, build_dataset, save_logits
from distill_pretrain.augment import AugmentConfig, seeded_global_rngs, student_jitter_seed
from distill_pretrain.objectives import OBJECTIVES, Objective
from distill_pretrain.replay import build_replay, drop_unreadable, teacher_view

REPO = Path(__file__).resolve().parents[2]
BASE = dict(img_size=32, auto_augment=None, color_jitter=None, re_prob=0.0, mixup_alpha=0.0, cutmix_alpha=0.0)
AUGS = {"crop_flip": BASE, "mixup": dict(BASE, mixup_alpha=0.8), "cutmix": dict(BASE, cutmix_alpha=1.0),
        "erase_const": dict(BASE, re_prob=1.0, re_mode="const"), "erase_pixel": dict(BASE, re_prob=1.0)}


@pytest.fixture(scope="module")
def photos():
    return build_dataset(dict(type="SkimagePhotos"))


def _views(photos, pipeline: str, aug: dict, jitter: float | None = 0.4) -> dict[str, torch.Tensor]:
    replay = build_replay(pipeline, photos, dict(aug, student_color_jitter=jitter), base_seed=3)
    batch = replay.finish(replay.collate([replay.dataset.get(i, 1) for i in range(len(photos))]), "cpu")
    return {k: batch[k] for k in ("image", "teacher_image") if k in batch}


@pytest.mark.parametrize("pipeline", ["pil", "tensor"])
@pytest.mark.parametrize("name", sorted(AUGS))
def test_teacher_view_is_the_no_jitter_replay_student_view_differs(photos, pipeline, name):
    views = _views(photos, pipeline, AUGS[name])
    plain = _views(photos, pipeline, AUGS[name], jitter=None)
    assert set(plain) == {"image"}
    assert torch.equal(views["teacher_image"], plain["image"])  # bit for bit, erasing / mixing included
    moved = (views["image"] - views["teacher_image"]).abs().mean((1, 2, 3))
    assert (moved > 0).all(), moved


def test_student_view_is_torchvisions_jitter_of_the_crop(photos):
    """Independent of the replay code: timm's crop + flip under the seed, then torchvision's ColorJitter(0.4) under
    the derived seed, then ToTensor + Normalize."""
    cfg = AugmentConfig.coerce(AUGS["crop_flip"])
    primary, _, final = cfg.build_parts()
    replay = build_replay("pil", photos, dict(AUGS["crop_flip"], student_color_jitter=0.4), base_seed=3)
    for i in range(len(photos)):
        item = replay.dataset.get(i, 1)
        with seeded_global_rngs(item["seed"]):
            crop = transforms.Compose(primary)(photos[i][0].convert("RGB"))
        with seeded_global_rngs(student_jitter_seed(item["seed"])):
            jittered = transforms.ColorJitter(0.4, 0.4, 0.4)(crop)
        assert torch.equal(item["image"], transforms.Compose(final)(jittered)), i


@pytest.mark.parametrize("name", ["crop_flip", "mixup", "cutmix", "erase_const"])
def test_both_views_bit_equal_across_pipelines(photos, name):
    pil, tensor = _views(photos, "pil", AUGS[name]), _views(photos, "tensor", AUGS[name])
    for key in ("image", "teacher_image"):
        assert torch.equal(pil[key], tensor[key]), key


def test_views_stay_aligned_when_samples_are_dropped(photos):
    replay = build_replay("tensor", photos, dict(AUGS["cutmix"], student_color_jitter=0.4), base_seed=3)
    batch = replay.finish(replay.collate([replay.dataset.get(i, 1) for i in range(4)]), "cpu")
    batch["valid"] = torch.tensor([True, False, True, True])
    kept, skipped = drop_unreadable(batch)
    assert skipped == 1 and torch.equal(kept["teacher_image"], batch["teacher_image"][[0, 2, 3]])
    assert teacher_view(kept) is kept["teacher_image"] and teacher_view({"image": kept["image"]}) is kept["image"]
    assert AugmentConfig().to_dict() == AugmentConfig(student_color_jitter=None).to_dict()  # old stores' hash
    with pytest.raises(ValueError, match="student_color_jitter must be None or > 0, got -0.1"):
        AugmentConfig(student_color_jitter=-0.1)


class _Recorder(torch.nn.Module):
    """A teacher that records its input and returns uniform probabilities over 10 classes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen = x
        return torch.full((len(x), 10), 0.1)


def test_teachers_of_the_objectives_read_the_teacher_view():
    from backbones.vit import build_vit
    torch.manual_seed(0)
    student = build_vit("vit_tiny_patch16_224", img_size=32, patch_size=8, depth=2)
    a, b = torch.randn(2, 4, 3, 32, 32)
    tinymim = OBJECTIVES.build(dict(type="tinymim", student=student, teacher=copy.deepcopy(student)))
    assert tinymim(student, {"image": a, "teacher_image": a})["loss"].item() < 1e-6  # the model with itself
    assert tinymim(student, {"image": a, "teacher_image": b})["loss"].item() > 1e-3
    dmae = OBJECTIVES.build(dict(type="dmae", student=student, teacher=copy.deepcopy(student)))
    with torch.no_grad():
        dmae.head_maps[0].weight.copy_(torch.eye(3))
    torch.manual_seed(1)
    assert dmae(student, {"image": a, "teacher_image": a})["loss_attn"].item() < 1e-10
    torch.manual_seed(1)  # the same mask
    assert dmae(student, {"image": a, "teacher_image": b})["loss_attn"].item() > 1e-6
    online: Objective = OBJECTIVES.build(dict(type="online"))
    online.set_teacher(_Recorder())
    student_cls = build_vit("vit_tiny_patch16_224", img_size=32, patch_size=8, depth=1, num_classes=10)
    online(student_cls, {"image": a, "teacher_image": b, "label": torch.full((4,), -1)})
    assert online.teacher.seen is b


def test_save_logits_teacher_sees_its_view_and_tinymim_trainer_resumes_bitwise(tmp_path):
    from distill_pretrain.config import load_config
    from distill_pretrain.teachers import build_teacher
    from distill_pretrain.trainer import Trainer
    save_logits.main([str(REPO / "configs/distill/save_logits_mobilenetv2_fmnist.py"), "--cfg-options",
                      f"store.path={tmp_path / 's'}", "dataset.limit=4", "epochs=1", "num_workers=0", "batch_size=4",
                      "store.chunk_size=4", "augment.img_size=32", "augment.auto_augment=None", "pipeline=tensor",
                      "augment.color_jitter=None", "augment.student_color_jitter=0.4"])
    store = LogitStore.open(tmp_path / "s")
    replay = build_replay("tensor", build_dataset(store.manifest["extra"]["dataset_cfg"]), store.manifest["transform"],
                          store.manifest["base_seed"])
    batch = replay.finish(replay.collate([replay.dataset.get(i, 0) for i in range(4)]), "cpu")
    teacher, _ = build_teacher(dict(type="torchvision", name="mobilenet_v2", weights="asset:mobilenet_v2"))
    with torch.no_grad():
        top = teacher.eval()(batch["teacher_image"]).softmax(-1).topk(3).indices
    assert torch.equal(torch.as_tensor(store.read(0, list(range(4))).indices[:, :3]).long(), top)

    slim = {"depth": 2, "patch_size": 8}
    options = {"epochs": 1, "data.train.limit": 16, "data.batch_size": 4, "log_interval": 1, "record": False,
               "data.pipeline": "tensor", "data.aug.student_color_jitter": 0.4,
               **{f"{part}.{k}": v for part in ("student", "objective.student", "objective.teacher")
                  for k, v in slim.items()}}
    config = REPO / "configs/distill/vit_tiny_tinymim_fmnist_tiny_cpu.py"
    full = Trainer(load_config(config, options), tmp_path / "full")
    assert full.aug_cfg.student_color_jitter == 0.4
    full_hist = full.train()
    Trainer(load_config(config, {**options, "stop_after_steps": 2}), tmp_path / "split").train()
    second = Trainer(load_config(config, options), tmp_path / "split")
    assert second.resume()
    assert [h["loss"] for h in second.train()] == [h["loss"] for h in full_hist] and len(full_hist) == 4
    for key, value in full.model.state_dict().items():
        assert torch.equal(value, second.model.state_dict()[key]), key
