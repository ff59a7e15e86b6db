"""The ViT proof chain (`--quick`: 1-block ViTs, 32 images, students 2 epochs, teacher 4) end to end: MAE teacher →
mae / dmae / tinymim students from its checkpoint → probe + 5-shot on the held-out classes at every kept pretraining
point, with records naming each objective and the point, the final and curve tables, and the plots."""
from __future__ import annotations

import pytest

from benchmarks import vit_proof
from contracts.fileio import file_sha256
from contracts.records import read_records, validate_record
from contracts.resume import ResumeError

MODELS = ("random ViT-T", "ViT-T mae", "ViT-T dmae", "ViT-T tinymim", "teacher ViT-S mae")


@pytest.mark.slow
def test_quick_proof_trains_the_chain_and_tabulates_every_model_along_its_pretraining(tmp_path):
    assert vit_proof.main(["--quick", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "vit_proof.md").read_text()
    final, curves = text.split("Curves:")
    for model in MODELS:
        assert f"| {model} |" in final
    for model, steps in [("ViT-T mae", (2, 4)), ("ViT-T dmae", (2, 4)), ("ViT-T tinymim", (2, 4)),
                         ("teacher ViT-S mae", (4, 8)), ("random ViT-T", (0,))]:
        for step in steps:  # 2 steps an epoch; students kept every epoch, the teacher every 2 of its 4
            assert f"| {model} | {step} (" in curves
    for objective in ("dmae", "tinymim"):
        for step in (4, 2):
            assert f"{objective} vs mae, 5-shot at step {step}:" in curves
    work = tmp_path / "work"
    assert sorted(p.name for p in (work / "teacher_mae").glob("checkpoint_epoch*")) == \
        ["checkpoint_epoch2.pth", "checkpoint_epoch4.pth"]
    assert (tmp_path / "plots/vit_proof_curves.png").is_file()
    assert (tmp_path / "plots/vit_proof_pretraining.png").is_file()

    records = read_records(tmp_path / "records")
    assert len(records) == 2 * (1 + 3 * 2 + 2)  # probe + few-shot: random, three students and the teacher x 2 points
    for record in records:
        validate_record(record)
        assert record["backbone"]["pool"] == "avg"  # every model read back by load_backbone, one pooling
    shots = [r for r in records if r["task"] == "few_shot"]
    sources = {r["backbone"]["pretrain"]: r["backbone"]["source"] for r in shots}
    assert sources["fmnist-seen-dmae"] == sources["fmnist-seen-tinymim"] == "distill"
    assert sources["none"] == "random"
    for objective in ("mae", "dmae", "tinymim"):
        mine = [r for r in records if r["backbone"]["pretrain"] == f"fmnist-seen-{objective}"
                and r["backbone"]["name"] == "vit-tiny"]
        assert sorted((r["setting"]["pretrain_epoch"], r["setting"]["pretrain_step"]) for r in mine) == \
            [(1, 2), (1, 2), (2, 4), (2, 4)]
        for epoch in (1, 2):
            ckpt = work / f"student_{objective}/checkpoint_epoch{epoch}.pth"
            at = [r for r in mine if r["setting"]["pretrain_epoch"] == epoch]
            assert {r["backbone"]["checkpoint_sha256"] for r in at} == {file_sha256(ckpt)}
        assert {r["backbone"]["depth"] for r in mine} == {1}  # the shape came from the checkpoint's meta
    # the final checkpoint is the last kept one (same weights), so it is not evaluated twice
    last = work / "student_mae"
    assert vit_proof.checkpoints(last)[-1].path.name == "checkpoint_epoch2.pth"
    # rerun into the same OUT with another lr: the teacher's resume state names the first run, refused by field
    with pytest.raises(ResumeError, match=r"teacher_mae/resume.pth: it belongs to another run: optim.lr: saved "
                                          r"0.0015, requested 0.001;"):
        vit_proof.main(["--quick", "--out", str(tmp_path), "--lr", "1e-3"])
