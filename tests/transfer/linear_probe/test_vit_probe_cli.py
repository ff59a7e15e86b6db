"""The probe command line on ViT checkpoints written by the real trainer (`mae`, `dmae`, `tinymim`, 2 steps each at
32 px, 2 blocks, patch 8) and real Fashion-MNIST images: records validate and name source, pretrain and sha256."""
from __future__ import annotations

from pathlib import Path

import pytest

from contracts.fileio import file_sha256
from contracts.records import read_records, validate_record

REPO = Path(__file__).resolve().parents[3]
SLIM = {"depth": 2, "patch_size": 8}
SOURCES = {"mae": "scratch", "dmae": "distill", "tinymim": "distill"}  # backbones.provenance.OBJECTIVE_SOURCES


def train_vit_checkpoint(objective: str, work: Path) -> Path:
    """A ViT-Tiny-shaped student trained for 2 steps by `distill_pretrain.train` (teacher: random ViT-S shape)."""
    from distill_pretrain import train
    parts = ["student", "objective.student"] + (["objective.teacher"] if objective != "mae" else [])
    train.main([str(REPO / f"configs/distill/vit_tiny_{objective}_fmnist_tiny_cpu.py"), "--work-dir", str(work),
                "--cfg-options", "epochs=1", "data.train.limit=8", "data.batch_size=4", "record=False",
                *[f"{p}.{k}={v}" for p in parts for k, v in SLIM.items()]])
    return work / "checkpoint.pth"


def fashion_mnist_root() -> str:
    from contracts import assets
    return str(assets.fashion_mnist_root())


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("vit_students")
    return {o: train_vit_checkpoint(o, work / o) for o in SOURCES}


@pytest.mark.parametrize("objective", sorted(SOURCES))
def test_probe_cli_on_trainer_written_vit_checkpoint(objective, checkpoints, tmp_path, capsys):
    from transfer.linear_probe.__main__ import main as probe_main
    ckpt = checkpoints[objective]
    records = probe_main(["--backbone", "vit-tiny", "--checkpoint", str(ckpt), "--dataset", "fashion_mnist",
                          "--data-root", fashion_mnist_root(), "--resolution", "32", "--max-train", "40",
                          "--max-test", "20", "--cache-dir", str(tmp_path / "cache"), "--results-dir",
                          str(tmp_path / "rec"), "--cfg-options", "methods=[logreg]", "c_grid=[1.0]"])
    saved = read_records(tmp_path / "rec", tasks=["linear_probe"])
    assert len(records) == len(saved) == 1
    for record in saved:
        validate_record(record)
        block = record["backbone"]
        assert (block["name"], block["source"], block["pretrain"]) == ("vit-tiny", SOURCES[objective],
                                                                       f"fashionmnist-{objective}")
        assert block["checkpoint_sha256"] == file_sha256(ckpt)
        assert (block["patch_size"], block["depth"], block["img_size"], block["pool"]) == (8, 2, 32, "token")
        assert block["load_report"]["unexpected"] == ["head.weight", "head.bias"]  # the unused 10-class head
        assert 0 <= record["metrics"]["top1"] <= 1
    assert "Fashion-MNIST" in capsys.readouterr().out


def test_probe_cli_refuses_a_vit_checkpoint_of_another_size(checkpoints, tmp_path):
    from transfer.linear_probe.__main__ import main as probe_main
    with pytest.raises(ValueError, match=r"meta arch='vit_tiny_patch16_224' is not a vit-base"):
        probe_main(["--backbone", "vit-base", "--checkpoint", str(checkpoints["mae"]), "--dataset", "fashion_mnist",
                    "--data-root", fashion_mnist_root(), "--resolution", "32", "--max-train", "4", "--max-test", "4",
                    "--results-dir", str(tmp_path / "rec")])
