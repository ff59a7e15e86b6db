"""The shipped student recipes hold the paper's numbers (supp. §B), through `_base_` inheritance."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from distill_pretrain.config import load_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "distill"
VARIANTS = ("5m", "11m", "21m")


def _load(name: str):
    return load_config(CONFIGS / f"{name}.py")


@pytest.mark.parametrize("arch,drop_path", zip(VARIANTS, (0.0, 0.0, 0.1)))
def test_in21k_distillation(arch: str, drop_path: float) -> None:
    cfg = _load(f"tinyvit_{arch}_in21k_distill")
    assert cfg.mode == cfg.objective.type == "stored" and cfg.epochs == 90 and cfg.pretrain_name == "in21k-distill"
    assert cfg.student.arch == arch and cfg.student.drop_path_rate == drop_path
    o = cfg.optim
    assert (o.lr, o.base_batch, o.weight_decay, o.warmup_epochs, o.clip_grad) == (2e-3, 4096, 0.01, 5, 5.0)
    assert cfg.store.expect["topk"] == 100 and cfg.objective.temperature == 1.0 and cfg.objective.gt_weight == 0.0
    assert cfg.data.train.type == "ImageFolder"


@pytest.mark.parametrize("arch", VARIANTS)
def test_in1k_finetune(arch: str) -> None:
    cfg = _load(f"tinyvit_{arch}_in21k_ft_in1k")
    assert cfg.mode == "finetune" and cfg.epochs == 30 and cfg.student.init.endswith("checkpoint.pth")
    o = cfg.optim
    assert (o.lr, o.base_batch, o.weight_decay, o.layer_decay, o.warmup_epochs) == (5e-4, 1024, 1e-8, 0.8, 5)
    assert cfg.freeze_bn_stats is True
    assert cfg.data.aug.mixup_alpha == 0.0 and cfg.data.aug.cutmix_alpha == 0.0


@pytest.mark.parametrize("size,windows", [(384, [12, 12, 24, 12]), (512, [16, 16, 32, 16])])
def test_higher_resolution_finetune(size: int, windows: list[int]) -> None:
    cfg = _load(f"tinyvit_21m_in1k_ft_{size}")
    assert cfg.student.img_size == size and list(cfg.student.window_sizes) == windows
    assert cfg.data.aug.img_size == size and cfg.epochs == 30 and cfg.freeze_bn_stats is True
    o = cfg.optim
    assert (o.lr, o.weight_decay, o.warmup_epochs, o.base_batch) == (4e-5, 1e-8, 5, 1024)
    assert cfg.data.batch_size * 8 * o.accum_steps == 1024  # accumulated batch on 8 GPUs
    assert cfg.data.aug.mixup_alpha == 0.0 and cfg.data.aug.cutmix_alpha == 0.0


@pytest.mark.parametrize("arch,drop_path", zip(VARIANTS, (0.0, 0.1, 0.2)))
def test_in1k_from_scratch(arch: str, drop_path: float) -> None:
    cfg = _load(f"tinyvit_{arch}_in1k_scratch")
    assert cfg.mode == "scratch" and cfg.epochs == 300 and cfg.student.drop_path_rate == drop_path
    assert cfg.student.init is None and cfg.objective.label_smoothing == 0.1 and cfg.pretrain_name == "in1k"
    o = cfg.optim
    assert (o.lr, o.base_batch, o.weight_decay, o.warmup_epochs, o.clip_grad) == (1e-3, 1024, 0.05, 20, 5.0)


def test_every_recipe_resolves() -> None:
    names = sorted(p.stem for p in CONFIGS.glob("tinyvit_*.py"))
    assert len(names) == 12
    for name in names:
        _load(name)  # unknown keys / bad modes would raise


def test_every_runnable_config_names_its_command() -> None:
    """The docstring of each config under configs/distill/ (not `_base_/`) shows how to run it."""
    for path in sorted(CONFIGS.glob("*.py")):
        head = ast.get_docstring(ast.parse(path.read_text())) or ""
        module = "save_logits" if path.stem.startswith("save_logits") else "train"
        assert f"-m distill_pretrain.{module} configs/distill/{path.name}" in head, path.name


def test_entry_point_help(capsys: pytest.CaptureFixture) -> None:
    from distill_pretrain.train import parse_args
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--help"])
    assert exit_info.value.code == 0 and "--cfg-options" in capsys.readouterr().out
