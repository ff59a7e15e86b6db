"""The other writers' records through the tables: detection and segmentation train CLIs on the mini sets, the
distillation trainer, the throughput and store benchmarks — each at tiny size, once per module, each started from a
TinyViT-5M checkpoint whose meta names its pretraining where it takes one.
A writer whose record breaks the schema fails here (`RecordError` from `write_record`).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import table
from contracts.records import read_records

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow



@pytest.fixture(scope="module")
def dense(tmp_path_factory, monkeypatch_module, student_writer):
    """The records folder the real writers wrote to."""
    import torch

    torch.set_num_threads(1)
    work = tmp_path_factory.mktemp("dense")
    records = work / "records"
    student = student_writer(work / "tinyvit_5m.pth", arch="5m", mode="stored", pretrain="in21k-distill")

    def detection() -> None:
        from transfer.detection import build_mini_coco
        from transfer.detection import train as det_train
        ann_file, img_dir, _ = build_mini_coco(work / "mini_coco")
        det_train.main([str(REPO / "configs/detection/cascade-mask-rcnn_tinyvit-5m_fpn_mini.py"), "--work-dir",
                        str(work / "det"), "--data", str(ann_file), str(img_dir), "--results-dir", str(records),
                        "--cfg-options", "train_cfg.max_iters=1", "train_cfg.val_interval=1",
                        "train_dataloader.dataset.pipeline.2.scale=(128,128)",
                        "test_dataloader.dataset.pipeline.1.scale=(128,128)",
                        "val_dataloader.dataset.pipeline.1.scale=(128,128)",
                        "model.backbone.init_cfg._delete_=True", "model.backbone.init_cfg.type=Pretrained",
                        f"model.backbone.init_cfg.checkpoint={student}"])

    def segmentation() -> None:
        from transfer.segmentation import build_mini_seg
        from transfer.segmentation import train as seg_train
        monkeypatch_module.setenv("TINYVIT_SEG_MINI", str(build_mini_seg(work / "seg_mini")["data_root"]))
        seg_train.main([str(REPO / "configs/segmentation/upernet_tinyvit-5m_mini_voc.py"), "--work-dir",
                        str(work / "seg"), "--results-dir", str(records), "--pretrained", str(student),
                        "--cfg-options", "train_cfg.max_iters=2", "train_cfg.val_interval=2"])

    def distill() -> None:
        from distill_pretrain import train
        train.main([str(REPO / "configs/distill/tinyvit_5m_fmnist_tiny_cpu.py"), "--work-dir", str(work / "distill"),
                    "--cfg-options", "mode=scratch", "num_classes=10", "epochs=1", "data.train.limit=32",
                    "data.val.limit=16",
                    "data.batch_size=16", "eval_teacher_agreement=False", "labels_index_classes=True"])
        for path in (work / "distill" / "records").glob("*.json"):
            (records / path.name).write_bytes(path.read_bytes())

    def throughput() -> None:
        from benchmarks import backbone_speed
        backbone_speed.main(["--quick", "--rounds", "1", "--iters", "1", "--batch", "2", "--records", str(records)])

    def store() -> None:
        from benchmarks import store_bench
        store_bench.main(["--quick", "--records", str(records), "--out-dir", str(work / "plots")])

    records.mkdir(parents=True)
    for writer in (detection, segmentation, distill, throughput, store):
        writer()
    return records


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp



def test_detection_record_names_the_checkpoint_and_stays_a_stand_in(dense):
    records = read_records(dense)
    from contracts.fileio import file_sha256
    (rec,) = [r for r in records if r["task"] == "detection" and r["split"] == "test"] or \
        [r for r in records if r["task"] == "detection"][:1]
    student = dense.parent / "tinyvit_5m.pth"
    assert rec["backbone"]["checkpoint_sha256"] == file_sha256(student)
    assert rec["backbone"]["source"] == "distill" and rec["backbone"]["pretrain"] == "in21k-distill"
    sections = {(s.layout, s.kind): s.table for s in table.build_tables(records, ["tab6"])}
    assert ("tab6", "joined") not in sections  # mini COCO is not COCO val2017: never beside the paper
    row = sections[("tab6", "stand-in")].iloc[0]
    assert row["dataset"] == rec["dataset"] and row["pretrain"] == "in21k-distill"
    assert row["bbox_ap | ours"] == pytest.approx(100 * rec["metrics"]["bbox_ap"])


def test_segmentation_record_is_a_stand_in_in_percent(dense):
    records = read_records(dense)
    rec = next(r for r in records if r["task"] == "segmentation")
    assert rec["backbone"]["pretrain"] == "in21k-distill" and 0 <= rec["metrics"]["miou"] <= 1
    sections = {(s.layout, s.kind): s.table for s in table.build_tables(records, ["ade20k"])}
    stand_in = sections[("ade20k", "stand-in")]
    assert stand_in["miou | ours"].iloc[0] == pytest.approx(100 * rec["metrics"]["miou"])


def test_trainer_record_lands_in_other(dense):
    records = read_records(dense)
    others = [s for s in table.build_tables(records, ["other"]) if s.title.endswith(": distill")]
    assert len(others) == 1 and set(others[0].table["source"]) == {"scratch"}


def test_throughput_joins_tab4_facts(dense):
    records = read_records(dense)
    tab4 = {(s.layout, s.kind): s.table for s in table.build_tables(records, ["tab4"])}[("tab4", "joined")]
    row = tab4[tab4["model"] == "TinyViT-5M"].iloc[0]
    assert row["#Params (M) | paper"] == 5.4 and row["MACs (G) | paper"] == 1.3
    assert abs(row["#Params (M) | Δ"]) < 0.2 and row["Throughput (img/s; paper: V100) | paper"] == 3060
    assert "Throughput (img/s; paper: V100) | Δ" not in tab4.columns  # other hardware: no Δ


def test_store_records_fill_fig5(dense):
    records = read_records(dense)
    fig5 = {(s.layout, s.kind): s.table for s in table.build_tables(records, ["fig5"])}[("fig5", "joined")]
    k10 = fig5[(fig5["dataset"] == "imagenet-1k") & (fig5["K"] == 10) & (fig5["format"] == "fp16")].iloc[0]
    assert k10["bytes/sample | ours"] == 44 and k10["bytes/sample | paper"] == 44.7
    assert k10["bytes/sample | Δ"] == pytest.approx(44 - 44.7)
    k100 = fig5[(fig5["dataset"] == "imagenet-21k") & (fig5["K"] == 100) & (fig5["format"] == "fp16")].iloc[0]
    assert k100["storage (GiB) | paper"] == 481 and abs(k100["storage (GiB) | Δ"]) < 1
