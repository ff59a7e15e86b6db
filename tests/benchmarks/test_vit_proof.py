"""The ViT proof chain (`--quick`: 1-block ViTs, 32 images) end to end: MAE teacher → mae / dmae / tinymim students
from its checkpoint → probe + 5-shot on the held-out classes, with records naming each objective."""
from __future__ import annotations

import pytest

from benchmarks import vit_proof
from contracts.fileio import file_sha256
from contracts.records import read_records, validate_record


@pytest.mark.slow
def test_quick_proof_trains_the_chain_and_tabulates_every_model(tmp_path):
    assert vit_proof.main(["--quick", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "vit_proof.md").read_text()
    for model in ("random ViT-T", "ViT-T mae", "ViT-T dmae", "ViT-T tinymim", "teacher ViT-S mae"):
        assert f"| {model} |" in text
    assert "dmae vs mae, 5-shot" in text and "tinymim vs mae, 5-shot" in text
    for objective in ("mae", "dmae", "tinymim"):
        assert (tmp_path / f"work/student_{objective}/checkpoint.pth").is_file()
    shots = [r for r in read_records(tmp_path / "records") if r["task"] == "few_shot"]
    pretrains = {r["backbone"]["pretrain"] for r in shots}
    assert {"fmnist-seen-mae", "fmnist-seen-dmae", "fmnist-seen-tinymim", "none"} <= pretrains
    sources = {r["backbone"]["pretrain"]: r["backbone"]["source"] for r in shots}
    assert sources["fmnist-seen-dmae"] == sources["fmnist-seen-tinymim"] == "distill"
    records = read_records(tmp_path / "records")
    assert len(records) == 2 * 5  # probe + few-shot for each of the five models
    for record in records:
        validate_record(record)
        assert record["backbone"]["pool"] == "avg"  # every model read back by load_backbone, one pooling
    for objective in ("mae", "dmae", "tinymim"):
        ckpt = tmp_path / f"work/student_{objective}/checkpoint.pth"
        mine = [r for r in records if r["backbone"]["pretrain"] == f"fmnist-seen-{objective}"
                and r["backbone"]["name"] == "vit-tiny"]
        assert len(mine) == 2 and {r["backbone"]["checkpoint_sha256"] for r in mine} == {file_sha256(ckpt)}
        assert {r["backbone"]["depth"] for r in mine} == {1}  # the shape came from the checkpoint's meta
