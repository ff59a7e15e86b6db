"""Shared fixtures of the trainer tests: real stores written by `distill_pretrain.save_logits` (a real MobileNetV2
teacher over real Fashion-MNIST images) and the slim 32 px TinyViT recipe that trains on them in seconds."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SLIM_ARCH = dict(embed_dims=[16, 32, 32, 64], depths=[1, 1, 1, 1], head_dim=16)
SLIM_OPTIONS = {"store.cycle_epochs": False, "epochs": 2, "student.img_size": 32, "student.drop_path_rate": 0.1,
                "data.train.limit": 32, "data.val": None, "data.batch_size": 4, "optim.accum_steps": 2,
                "optim.warmup_epochs": 0.5, "ema.decay": 0.9, "eval_teacher_agreement": False, "log_interval": 1,
                "record": False}


def _save_store(path: Path, pipeline: str) -> Path:
    """2 epochs × 32 Fashion-MNIST images, MobileNetV2 top-10, with Mixup/CutMix (partners replayed too)."""
    from distill_pretrain import save_logits
    save_logits.main([str(REPO / "configs/distill/save_logits_mobilenetv2_fmnist.py"), "--cfg-options",
                      f"store.path={path}", "dataset.limit=32", "epochs=2", "num_workers=0", "batch_size=32",
                      "store.chunk_size=16", "augment.img_size=32", "augment.auto_augment=None",
                      "augment.re_prob=0.25", "augment.scale=(0.35,1.0)", f"pipeline={pipeline}"])
    return path


@pytest.fixture(scope="session")
def store(tmp_path_factory) -> Path:
    """A 'pil'-pipeline store."""
    return _save_store(tmp_path_factory.mktemp("store") / "s", "pil")


@pytest.fixture(scope="session")
def tensor_store(tmp_path_factory) -> Path:
    """A 'tensor'-pipeline store."""
    return _save_store(tmp_path_factory.mktemp("store") / "t", "tensor")


def _slim_cfg(store: Path | None, **over):
    from distill_pretrain.config import load_config
    options = {"store.path": store and str(store), **SLIM_OPTIONS, **over}
    cfg = load_config(REPO / "configs/distill/tinyvit_5m_fmnist_tiny_cpu.py", options)
    cfg.student.arch = SLIM_ARCH  # a dict does not merge over the base's '5m' string
    return cfg


@pytest.fixture(scope="session")
def slim_cfg():
    """`slim_cfg(store, **options)`: the tiny recipe on `store` (None: no store), 2 epochs of 4 optimizer steps
    (32 images, batch 4, accumulation 2), EMA, the slim TinyViT at 32 px; `options` override config keys."""
    return _slim_cfg


@pytest.fixture(scope="session")
def slim_config_file(tmp_path_factory):
    """`slim_config_file(store, **options)`: the same recipe as a config file (for runs in a subprocess)."""
    def write(store: Path, **over) -> Path:
        nested: dict = {"student": {"_delete_": True, "type": "TinyViT", "arch": SLIM_ARCH}}
        for key, value in {**SLIM_OPTIONS, "store.path": str(store), **over}.items():
            *sections, name = key.split(".")
            node = nested
            for section in sections:
                node = node.setdefault(section, {})
            node[name] = value
        path = tmp_path_factory.mktemp("cfg") / "slim.py"
        path.write_text(f"_base_ = ['{REPO / 'configs/distill/tinyvit_5m_fmnist_tiny_cpu.py'}']\n"
                        + "".join(f"{key} = {value!r}\n" for key, value in nested.items()))
        return path
    return write
