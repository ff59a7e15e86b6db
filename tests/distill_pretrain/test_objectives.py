"""The objectives registry and the trainer's contract with an objective: config names it, the loop optimises,
resumes (bit for bit) and checkpoints its trainable parameters, exports only the student; device choice and
bfloat16 autocast (CPU). Real Fashion-MNIST images, a slim TinyViT at 32 px."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from distill_pretrain import dist as dist_mod
from distill_pretrain.config import load_config
from distill_pretrain.objectives import OBJECTIVES, Objective, build_objective
from distill_pretrain.trainer import Trainer

REPO = Path(__file__).resolve().parents[2]
SLIM = dict(embed_dims=[16, 32, 32, 64], depths=[1, 1, 1, 1], head_dim=16)
AUG = dict(img_size=32, auto_augment=None, color_jitter=None, re_prob=0.0, mixup_alpha=0.0, cutmix_alpha=0.0,
           scale=(0.35, 1.0))


@OBJECTIVES.register_module("test_projection", force=True)
class ProjectionObjective(Objective):
    """Label-free toy objective with a trainable part sized from the student, as an MAE decoder would be: a
    projection of the logits."""

    def __init__(self, student: nn.Module, dim: int = 8) -> None:
        super().__init__()
        self.proj = nn.Linear(student.num_classes, dim)
        self.target = nn.Parameter(torch.randn(dim))

    def forward(self, student: nn.Module, batch) -> dict:
        out = self.proj(student(batch["image"]))
        return {"loss": (out.float() - self.target).pow(2).mean(), "out_dtype_bf16": float(out.dtype == torch.bfloat16)}


def _cfg(**over):
    options = {"objective": dict(type="test_projection", dim=8), "mode": None, "store.path": None,
               "num_classes": 10, "epochs": 2, "student.img_size": 32, "data.train.limit": 16, "data.val": None,
               "data.batch_size": 4, "data.aug": AUG, "optim.accum_steps": 2, "optim.warmup_epochs": 0.5,
               "ema.decay": None, "eval_teacher_agreement": False, "teacher": None, "log_interval": 1,
               "record": False, "device": "cpu"}
    options.update(over)
    cfg = load_config(REPO / "configs/distill/tinyvit_5m_fmnist_tiny_cpu.py", options)
    cfg.student.arch = SLIM
    return cfg


def test_registry_names_builtins_and_refuses_unknown() -> None:
    assert {"stored", "online", "scratch", "finetune"} <= set(OBJECTIVES.module_dict)
    assert build_objective(dict(type="stored", temperature=2.0)).temperature == 2.0
    assert build_objective(dict(type="finetune")).needs_init and build_objective(dict(type="scratch")).needs_labels
    with pytest.raises(ValueError, match="'nope' is not registered; known: .*'stored'"):
        build_objective(dict(type="nope"))
    with pytest.raises(TypeError, match="objective=.*'scratch'.*temperature"):
        build_objective(dict(type="scratch", temperature=2.0))
    with pytest.raises(ValueError, match="'test_projection' is built from the student"):
        build_objective(dict(type="test_projection"))
    student = nn.Linear(2, 7)
    student.num_classes = 7
    assert build_objective(dict(type="test_projection", dim=3), student).proj.weight.shape == (3, 7)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        build_objective(dict(type="online", temperature=0))
    # `mode` is the short form of objective.type and wins over it; objective arguments stay
    cfg = _cfg(mode="scratch", objective=dict(type="stored", label_smoothing=0.2))
    assert cfg.objective == {"type": "scratch", "label_smoothing": 0.2} and cfg.mode == "scratch"
    with pytest.raises(TypeError, match="objective=.*'stored'.*unexpected keyword argument 'temprature'"):
        _cfg(objective=dict(type="stored", temprature=2.0))  # refused when the config is read
    with pytest.raises(ValueError, match="no objective"):
        _cfg(objective=None)
    with pytest.raises(ValueError, match="'stored' needs store.path"):
        _cfg(objective=dict(type="stored"))
    with pytest.raises(ValueError, match="'online' needs a teacher"):
        _cfg(objective=dict(type="online"))


def test_teacher_is_moved_but_never_saved_or_trained() -> None:
    student = nn.Linear(2, 10)
    student.num_classes = 10
    objective = ProjectionObjective(student)
    teacher = nn.Linear(3, 3)
    objective.set_teacher(teacher)
    assert set(objective.state_dict()) == {"target", "proj.weight", "proj.bias"}  # no student, no teacher
    assert all(p is not teacher.weight for p in objective.parameters())
    objective.to(torch.float64).train()
    assert teacher.weight.dtype == torch.float64 and not teacher.training and not teacher.weight.requires_grad


def test_objective_parameters_are_trained_resumed_exactly_and_not_exported(tmp_path: Path) -> None:
    full = Trainer(_cfg(), tmp_path / "full")
    start = {k: v.clone() for k, v in full.objective.state_dict().items()}
    groups = {id(p): g for g in full.optimizer.param_groups for p in g["params"]}
    assert groups[id(full.objective.proj.weight)]["weight_decay"] == full.cfg.optim.weight_decay > 0
    assert groups[id(full.objective.target)]["weight_decay"] == 0.0 == groups[id(full.objective.proj.bias)][
        "weight_decay"]
    hist = full.train()
    assert len(hist) == 4 and all(math.isfinite(h["loss"]) for h in hist)  # 2 epochs × 16 / (4 × 2)
    assert not torch.equal(full.objective.proj.weight, start["proj.weight"])  # optimised with the student
    assert not torch.equal(full.objective.target, start["target"])

    first = Trainer(_cfg(stop_after_steps=1), tmp_path / "split")
    first.train()
    assert set(torch.load(tmp_path / "split" / "resume.pth", weights_only=True)["objective"]) == set(start)
    second = Trainer(_cfg(), tmp_path / "split")
    assert second.resume()
    assert [h["loss"] for h in second.train()] == [h["loss"] for h in hist]
    for key, value in full.objective.state_dict().items():
        assert torch.equal(value, second.objective.state_dict()[key]), key
    for key, value in full.model.state_dict().items():
        assert torch.equal(value, second.model.state_dict()[key]), key

    ckpt = torch.load(tmp_path / "full" / "checkpoint.pth", weights_only=True)
    assert set(ckpt["state_dict"]) == set(full.model.state_dict())  # the student only
    assert ckpt["meta"]["objective"] == "test_projection"
    assert ckpt["meta"]["pretrain"] == "fashionmnist-test_projection" and ckpt["meta"]["store"] is None


def test_public_prepare_and_train_step(tmp_path: Path) -> None:
    """What benchmarks drive: `prepare` (pipeline device stage) then `train_step` (one optimizer step, the data
    position and step count untouched); with the tensor pipeline too."""
    trainer = Trainer(_cfg(**{"optim.accum_steps": 1, "data.pipeline": "tensor"}), tmp_path)
    assert trainer.replay.pipeline == "tensor"
    batch = trainer.prepare(next(iter(trainer.loader())))
    assert batch["image"].dtype == torch.float32 and batch["image"].shape == (4, 3, 32, 32) and batch["skipped"] == 0
    start = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    out = trainer.train_step(batch)
    assert set(out) == {"loss", "out_dtype_bf16", "grad_norm"} and math.isfinite(out["loss"]) and out["grad_norm"] > 0
    assert (trainer.step, trainer.epoch, trainer.batch_in_epoch) == (0, 0, 0)
    assert not torch.equal(trainer.model.state_dict()["head.fc.weight"], start["head.fc.weight"])
    assert trainer.train_step(batch)["loss"] != out["loss"]  # the same batch again, after one update


def test_bfloat16_autocast_runs_on_cpu_without_scaler(tmp_path: Path) -> None:
    trainer = Trainer(_cfg(amp=True, amp_dtype="bfloat16", stop_after_steps=1), tmp_path)
    assert trainer.use_amp and not trainer.scaler.is_enabled() and trainer.amp_description == "bfloat16"
    hist = trainer.train()
    assert math.isfinite(hist[0]["loss"]) and hist[0]["out_dtype_bf16"] == 1.0  # the student ran in bfloat16
    fp16 = Trainer(_cfg(amp=True, amp_dtype="float16"), tmp_path / "fp16")
    assert not fp16.use_amp and "needs CUDA" in fp16.amp_description
    with pytest.raises(ValueError, match="amp_dtype"):
        _cfg(amp_dtype="float8")


def test_device_choice(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert dist_mod.select_device("auto") == torch.device("cuda", 0)
    assert dist_mod.select_device(None, local_rank=1) == torch.device("cuda", 1)
    assert dist_mod.select_device("cuda") == torch.device("cuda", 0)
    assert dist_mod.select_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert dist_mod.select_device("auto") == torch.device("cpu")
    with pytest.raises(ValueError, match="'cuda:1' but CUDA is not available"):
        dist_mod.select_device("cuda:1")
    with pytest.raises(ValueError, match="'tpu'"):
        dist_mod.select_device("tpu")
    # a Trainer built without dist_info asks for the config's device ('auto' unless told otherwise), and sets cuDNN
    # autotuning for that device as the config says (`contracts.runtime.cudnn_autotune`: on CUDA devices only)
    import distill_pretrain.trainer as trainer_mod
    asked, tuned = [], []
    monkeypatch.setattr(trainer_mod, "select_device", lambda request: asked.append(request) or torch.device("cpu"))
    monkeypatch.setattr(trainer_mod, "cudnn_autotune", lambda device, enabled: tuned.append((device, enabled)))
    cfg = _cfg()
    cfg.device = "auto"
    assert Trainer(cfg, tmp_path).device == torch.device("cpu") and asked == ["auto"]
    cfg.cudnn_benchmark = False
    Trainer(cfg, tmp_path / "off")
    assert tuned == [(torch.device("cpu"), True), (torch.device("cpu"), False)]


def test_timm_student_from_config_defaults() -> None:
    """student.type='timm' with the section's TinyViT defaults (arch='5m', window_sizes=None) filled in."""
    from distill_pretrain.student import build_student, student_name
    cfg = _cfg(student=dict(_delete_=True, type="timm", model_name="vit_tiny_patch16_224", img_size=32, patch_size=8,
                            depth=1))
    model = build_student(cfg.student, 10)
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10) and student_name(model, cfg.student) == \
        "vit_tiny_patch16_224"
    with pytest.raises(ValueError, match="student.type='resnet'"):
        build_student({**cfg.student, "type": "resnet"}, 10)


def test_accuracy_logs_count_only_labelled_samples() -> None:
    from distill_pretrain.objectives.losses import accuracy_logs
    logits = torch.tensor([[5.0, 0, 0], [0, 5.0, 0], [0, 5.0, 0]])  # predicts 0, 1, 1
    batch = {"label": torch.tensor([0, -1, 2])}
    logs = accuracy_logs(logits, batch, teacher_top1=torch.tensor([0, 1, 2]))
    assert {k: round(float(v), 4) for k, v in logs.items()} == {"agree": 0.6667, "teacher_acc": 1.0, "acc": 0.5}
    assert set(accuracy_logs(logits, {**batch, "labels_index_classes": False}, torch.tensor([0, 1, 2]))) == {"agree"}
    assert accuracy_logs(logits, {"label": torch.tensor([-1, -1, -1])}) == {}
