"""`python -m transfer.finetune` end to end on real data: a ViT checkpoint written by the real trainer (`mae`, 2
blocks, patch 8, 32 px) fine-tuned on real Fashion-MNIST through the trainer's `finetune` objective; the record
validates; CIFAR-100 in the exact CIFAR file format; exact resume; TinyViT students; bad input named. (Where its
records land in the D-MAE table: tests/benchmarks/test_table_finetune.py.)"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from contracts.fileio import file_sha256
from contracts.records import read_records, validate_record

REPO = Path(__file__).resolve().parents[3]
CONFIG = str(REPO / "configs/finetune/vit_tiny_fmnist_tiny_cpu.py")
SLIM = {"depth": 2, "patch_size": 8}


def _fashion_mnist_root() -> str:
    from contracts.assets import fashion_mnist_root
    return str(fashion_mnist_root())


def _write_cifar100(root: Path) -> None:
    """The probe tests' writer of CIFAR-100 in its exact pickle layout."""
    path = REPO / "tests/transfer/linear_probe/test_linear_probe_datasets.py"
    spec = importlib.util.spec_from_file_location("_lp_writers", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.write_cifar100(root)


@pytest.fixture(scope="module")
def mae_checkpoint(tmp_path_factory) -> Path:
    """A ViT-Tiny-shaped `mae` student, 2 steps of the real `distill_pretrain.train` on Fashion-MNIST."""
    from distill_pretrain import train
    work = tmp_path_factory.mktemp("mae")
    train.main([str(REPO / "configs/distill/vit_tiny_mae_fmnist_tiny_cpu.py"), "--work-dir", str(work),
                "--cfg-options", "epochs=1", "data.train.limit=32", "data.batch_size=16", "record=False",
                *[f"{p}.{k}={v}" for p in ("student", "objective.student") for k, v in SLIM.items()]])
    return work / "checkpoint.pth"


def _finetune(*args: str, root: str | None = None) -> list[dict]:
    from transfer.finetune.__main__ import main
    return main([CONFIG, "--data-root", root or _fashion_mnist_root(), *args])


def test_finetune_cli_learns_held_out_classes_and_writes_one_record(mae_checkpoint, tmp_path, capsys):
    records = _finetune("--checkpoint", str(mae_checkpoint), "--classes", "1", "8", "--max-train", "160",
                        "--max-test", "200", "--batch-size", "16", "--work-dir", str(tmp_path / "ft"),
                        "--results-dir", str(tmp_path / "rec"))
    out = capsys.readouterr().out
    assert "Fine-tune" in out and "Fashion-MNIST" in out and "eta" in (tmp_path / "ft/train.log").read_text()
    (record,) = read_records(tmp_path / "rec")
    validate_record(record)
    assert records[0]["metrics"] == record["metrics"]
    assert (record["task"], record["dataset"], record["split"]) == ("finetune", "fashion_mnist", "test")
    block = record["backbone"]
    assert (block["name"], block["pretrain"], block["checkpoint_pretrain"]) == ("vit-tiny", "mae", "fashionmnist-mae")
    assert block["checkpoint_sha256"] == file_sha256(mae_checkpoint)
    setting = record["setting"]
    assert (setting["classes"], setting["num_classes"], setting["n_train"], setting["n_test"]) == ([1, 8], 2, 160, 200)
    assert (setting["layer_decay"], setting["resolution"], setting["epochs"], setting["steps"]) == (0.65, 32, 2, 20)
    # 2 classes (trouser / bag): chance is 0.5; 20 steps from the MAE weights get far above it
    assert record["metrics"]["top1"] - record["metrics"]["ci95"] > 0.6 and record["metrics"]["top5"] == 1.0
    assert 0 < record["metrics"]["loss"] < 1.0
    # the trainer wrote no `distill` record beside it; the fine-tuned checkpoint has a new 2-class head
    assert not (tmp_path / "ft/records").exists()
    tuned = torch.load(tmp_path / "ft/checkpoint.pth", weights_only=True)
    assert tuned["meta"]["objective"] == "finetune" and tuned["meta"]["pretrain"] == "mae-ft-fashion_mnist"
    assert tuple(tuned["state_dict"]["head.weight"].shape) == (2, 192)


def test_cifar100_in_its_exact_file_format_fine_tunes_on_all_its_classes(mae_checkpoint, tmp_path):
    _write_cifar100(tmp_path / "cifar")
    _finetune("--checkpoint", str(mae_checkpoint), "--dataset", "cifar100", "--batch-size", "2", "--epochs", "1",
              "--work-dir", str(tmp_path / "ft"), "--results-dir", str(tmp_path / "rec"),
              "--cfg-options", "verify_md5=False", "classes=None", "max_train=None", "max_test=None",
              root=str(tmp_path / "cifar"))
    records = read_records(tmp_path / "rec")
    assert records[0]["dataset"] == "cifar100" and records[0]["setting"]["num_classes"] == 100
    validate_record(records[0])


def test_resume_continues_exactly(mae_checkpoint, tmp_path):
    common = ["--checkpoint", str(mae_checkpoint), "--max-train", "48", "--max-test", "16", "--batch-size", "16"]
    whole = _finetune(*common, "--work-dir", str(tmp_path / "whole"), "--results-dir", str(tmp_path / "r1"))
    assert _finetune(*common, "--work-dir", str(tmp_path / "cut"), "--results-dir", str(tmp_path / "r2"),
                     "--cfg-options", "stop_after_steps=4") == []  # stopped inside epoch 2: no record yet
    assert not (tmp_path / "r2").exists()
    resumed = _finetune(*common, "--work-dir", str(tmp_path / "cut"), "--results-dir", str(tmp_path / "r2"),
                        "--resume")
    assert resumed[0]["setting"]["steps"] == whole[0]["setting"]["steps"] == 6
    assert resumed[0]["metrics"] == whole[0]["metrics"]
    a = torch.load(tmp_path / "whole/checkpoint.pth", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "cut/checkpoint.pth", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_of_another_run_is_refused_until_accepted(mae_checkpoint, tmp_path):
    from contracts.resume import ResumeError
    common = ["--checkpoint", str(mae_checkpoint), "--max-train", "48", "--max-test", "16", "--batch-size", "16",
              "--work-dir", str(tmp_path / "cut"), "--results-dir", str(tmp_path / "r")]
    assert _finetune(*common, "--cfg-options", "stop_after_steps=2") == []
    log = (tmp_path / "cut/train.log").read_text()
    with pytest.raises(ResumeError, match=r"cut/resume.pth: it belongs to another run: optim.lr: saved 0.001, "
                                          r"requested 0.002; .*--resume-anyway optim.lr"):
        _finetune(*common, "--resume", "--lr", "2e-3")
    with pytest.raises(ResumeError, match=r"train_data.length: saved 48, requested 32; train_data.sha256"):
        _finetune(*common[:3], "32", *common[4:], "--resume")  # another subset of the training split
    assert (tmp_path / "cut/train.log").read_text() == log  # refused before anything was written
    (record,) = _finetune(*common, "--resume", "--resume-anyway", "optim.lr", "--lr", "2e-3")
    tuned = torch.load(tmp_path / "cut/checkpoint.pth", weights_only=True)["meta"]
    assert tuned["accepted_resume_changes"][0]["changes"] == {"optim.lr": [0.001, 0.002]}
    assert record["setting"]["base_lr"] == 0.002
    assert "accepted changes: optim.lr: saved 0.001, requested 0.002" in (tmp_path / "cut/train.log").read_text()


def test_tinyvit_student_from_random_init_and_from_its_checkpoint(tmp_path):
    args = ["--backbone", "tinyvit-5m", "--max-train", "16", "--max-test", "16", "--batch-size", "8", "--epochs", "1"]
    (scratch,) = _finetune(*args, "--work-dir", str(tmp_path / "scratch"), "--results-dir", str(tmp_path / "rec"))
    assert (scratch["backbone"]["source"], scratch["backbone"]["pretrain"]) == ("random", "none")
    assert scratch["setting"]["objective"] == "scratch"
    ckpt = tmp_path / "scratch/checkpoint.pth"
    (tuned,) = _finetune(*args, "--checkpoint", str(ckpt), "--classes", "0", "1", "2",
                         "--work-dir", str(tmp_path / "tuned"), "--results-dir", str(tmp_path / "rec"))
    block = tuned["backbone"]
    assert (block["name"], block["source"], block["checkpoint_sha256"]) == ("tinyvit-5m", "scratch",
                                                                            file_sha256(ckpt))
    assert block["pretrain"] == "fashion_mnist"  # trained from random weights on it (the meta's name)
    head = torch.load(tmp_path / "tuned/checkpoint.pth", weights_only=True)["state_dict"]["head.fc.weight"]
    assert head.shape[0] == 3


def test_bad_input_is_named(mae_checkpoint, tmp_path):
    from backbones import read_checkpoint
    from contracts.checkpoint import save_checkpoint
    from distill_pretrain.data import build_dataset
    from distill_pretrain.trainer import Trainer
    from transfer.cli_common import run_cli
    from transfer.linear_probe.datasets import DatasetNotFound
    out = ["--work-dir", str(tmp_path / "w"), "--results-dir", str(tmp_path / "rec")]
    with pytest.raises(ValueError, match="is not a vit-small"):
        _finetune("--backbone", "vit-small", "--checkpoint", str(mae_checkpoint), *out)
    with pytest.raises(ValueError, match="not a TinyViT checkpoint"):
        _finetune("--backbone", "tinyvit-5m", "--checkpoint", str(mae_checkpoint), *out)
    obj = read_checkpoint(mae_checkpoint)
    del obj["state_dict"]["blocks.1.mlp.fc1.weight"]
    save_checkpoint(tmp_path / "partial.pth", obj["state_dict"], obj["meta"])
    with pytest.raises(ValueError, match=r"partial\.pth.*blocks\.1\.mlp\.fc1\.weight"):
        _finetune("--checkpoint", str(tmp_path / "partial.pth"), *out)
    with pytest.raises(DatasetNotFound, match=f"Fashion-MNIST \\(train\\) not found .*{tmp_path.name}.*raw"):
        _finetune("--checkpoint", str(mae_checkpoint), *out, root=str(tmp_path))
    with pytest.raises(SystemExit, match="error: Fashion-MNIST"):  # the CLI: one line, no traceback
        run_cli(lambda: _finetune("--checkpoint", str(mae_checkpoint), *out, root=str(tmp_path)))
    with pytest.raises(ValueError, match="--classes \\[42\\] matches no sample"):
        _finetune("--checkpoint", str(mae_checkpoint), "--classes", "42", *out)
    # the trainer's seam: an 'external' data set is the caller's, never built from the config
    with pytest.raises(ValueError, match=r"Trainer\(cfg, work_dir, datasets="):
        build_dataset({"type": "external", "name": "fashion_mnist"})
    with pytest.raises(ValueError, match=r"datasets=\.\.\.\): keys \['test'\]"):
        Trainer({"mode": "scratch", "data": {"train": {"type": "external"}}}, tmp_path, datasets={"test": None})


def test_help_names_the_flags(capsys):
    from transfer.finetune.__main__ import main
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    assert all(flag in out for flag in ("--checkpoint", "--epochs", "--lr", "--layer-decay", "--classes", "--resume"))


def test_official_mae_format_file_fine_tunes_with_its_pretrain_named(tmp_path):
    """An official MAE pretraining file (timm names under `model`, decoder keys, no classifier) loads into the
    student by name; its pretraining comes from --pretrain."""
    from backbones.vit import build_vit
    encoder = build_vit("vit_tiny_patch16_224", img_size=32, patch_size=8).state_dict()
    official = {"model": {**{k: v for k, v in encoder.items() if not k.startswith("head")},
                          "mask_token": torch.zeros(1, 1, 128), "decoder_embed.weight": torch.zeros(128, 192)}}
    path = tmp_path / "mae_pretrain_vit_tiny.pth"
    torch.save(official, path)
    (record,) = _finetune("--backbone", "vit-tiny/patch8@32", "--checkpoint", str(path), "--pretrain", "in1k-mae",
                          "--max-train", "8", "--max-test", "8", "--batch-size", "4", "--epochs", "1",
                          "--work-dir", str(tmp_path / "ft"), "--results-dir", str(tmp_path / "rec"))
    block = record["backbone"]
    assert (block["source"], block["pretrain"], block["patch_size"]) == ("official", "in1k-mae", 8)
    assert sorted(block["load_report"]["skipped"]) == ["decoder_embed.weight", "mask_token"]
    tuned = torch.load(tmp_path / "ft/checkpoint.pth", weights_only=True)["state_dict"]
    assert tuned["head.weight"].shape == (5, 192) and not torch.equal(tuned["blocks.0.attn.qkv.weight"],
                                                                      encoder["blocks.0.attn.qkv.weight"])
