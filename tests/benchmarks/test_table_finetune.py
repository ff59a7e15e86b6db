"""`transfer.finetune` records through the D-MAE layout: written by the real `python -m transfer.finetune` from an
official MAE-format ViT-Tiny file (patch 8, 32 px; `--pretrain mae`), on real Fashion-MNIST (a stand-in: never beside
the poster) and on CIFAR-100 in its exact file format (beside the poster's ViT-Tiny MAE row)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from benchmarks import table
from benchmarks.paper_numbers import paper_numbers
from contracts.records import read_records

REPO = Path(__file__).resolve().parents[2]
CONFIG = str(REPO / "configs/finetune/vit_tiny_fmnist_tiny_cpu.py")


@pytest.fixture(scope="module")
def mae_file(tmp_path_factory) -> Path:
    """An official MAE pretraining file: timm names under `model`, decoder keys, no classifier."""
    from backbones.vit import build_vit
    torch.manual_seed(0)
    encoder = build_vit("vit_tiny_patch16_224", img_size=32, patch_size=8).state_dict()
    path = tmp_path_factory.mktemp("mae") / "mae_pretrain_vit_tiny.pth"
    torch.save({"model": {**{k: v for k, v in encoder.items() if not k.startswith("head")},
                          "mask_token": torch.zeros(1, 1, 128)}}, path)
    return path


def _finetune(mae_file: Path, work: Path, *args: str) -> Path:
    """Fine-tune on the config's data set (or the one `args` name); returns the records folder."""
    from transfer.finetune.__main__ import main
    records = work / "records"
    main([CONFIG, "--backbone", "vit-tiny/patch8@32", "--checkpoint", str(mae_file), "--pretrain", "mae",
          "--max-train", "8", "--max-test", "8", "--batch-size", "4", "--epochs", "1", "--work-dir", str(work / "ft"),
          "--results-dir", str(records), *args])
    return records


def test_fashion_mnist_record_is_a_dmae_stand_in(mae_file, tmp_path, capsys):
    from contracts.assets import AssetMissing, fashion_mnist_root
    try:
        root = fashion_mnist_root()
    except AssetMissing as err:  # set up by `python -m contracts.assets fetch`
        pytest.skip(str(err))
    records = _finetune(mae_file, tmp_path, "--data-root", str(root))
    capsys.readouterr()
    table.main(["--records", str(records), "--layout", "dmae"])
    out = capsys.readouterr().out
    assert "stand-in" in out and "fashion_mnist" in out and "mae" in out
    sections = {(s.layout, s.kind) for s in table.build_tables(read_records(records), ["dmae"])}
    assert ("dmae", "stand-in") in sections and ("dmae", "joined") not in sections


def test_cifar100_record_joins_the_dmae_poster_row(mae_file, tmp_path, cifar100_writer):
    records = read_records(_finetune(mae_file, tmp_path, "--dataset", "cifar100", "--data-root",
                                     str(cifar100_writer(tmp_path / "cifar")), "--cfg-options", "verify_md5=False",
                                     "classes=None"))
    assert records[0]["dataset"] == "cifar100"
    joined, stand_in = table.layout_table("dmae", table.records_frame(records), paper_numbers())
    assert stand_in.empty and len(joined) == 1
    row = joined.iloc[0]
    assert (row["model"], row["pretrain"]) == ("ViT-Tiny", "mae")
    assert row["CIFAR-100 | paper"] == 78.9  # D-MAE poster, ViT-Tiny MAE, full fine-tuning
    assert row["CIFAR-100 | ours"] == pytest.approx(100 * records[0]["metrics"]["top1"])
