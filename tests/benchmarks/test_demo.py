"""The reduced demo (`--quick`) end to end, then the table/plot machinery on the records it wrote."""
from __future__ import annotations

import json

import pytest

from benchmarks import demo, plots, table
from contracts.records import read_records


@pytest.mark.slow
def test_quick_demo_writes_records_tables_and_plots(tmp_path):
    code = demo.main(["--quick", "--out", str(tmp_path)])
    summary = json.loads((tmp_path / "demo_summary.json").read_text())
    status = {row["stage"]: row for row in summary["stages"]}
    assert [row["stage"] for row in summary["stages"]] == list(demo.STAGES)
    assert all(row["seconds"] >= 0 for row in summary["stages"])
    failed = {name: row["detail"] for name, row in status.items() if row["status"] != "ok"}
    assert not failed, failed
    records = read_records(tmp_path / "records")
    for task in ("linear_probe", "few_shot"):  # both students, random init and the teacher, on the novel classes
        sources = {r["backbone"]["source"] for r in records if r["task"] == task}
        assert sources == {"distill", "scratch", "random", "torchvision"}, (task, sources)
        assert {r["dataset"] for r in records if r["task"] == task} == {demo.TRANSFER_DATASET}
    assert len(summary["distilled_vs_scratch"]) == 2  # probe and 5-shot lines, whichever student leads
    sections = {(s.layout, s.kind): s.table for s in table.build_tables(records, ["all"])}
    text = (tmp_path / "tables.md").read_text()
    assert "## Linear probe and few-shot transfer (TinyViT Tab. 5): stand-in data sets" in text
    stand_in = sections[("tab5", "stand-in")]  # Fashion-MNIST is never joined to a paper number
    assert set(stand_in["dataset"]) == {demo.TRANSFER_DATASET} and ("tab5", "joined") not in sections
    assert {"probe top1 | ours", "5-shot top1 | ours", "commit", "machine"} <= set(stand_in.columns)
    assert set(stand_in["pretrain"]) == {"fashion_mnist-seen-distill", "fashion_mnist-seen", "none", "in1k"}
    assert (tmp_path / "plots" / "accuracy_vs_cost.png").is_file()
    assert (tmp_path / "plots" / "training_curves.pdf").is_file()
    assert not plots.read_log(tmp_path / "work" / "student_stored" / "log.jsonl").empty
    assert code == 0
    assert {r["task"] for r in records} >= {"detection", "segmentation", "distill"}


def test_a_failed_stage_skips_the_stages_that_read_its_products(tmp_path):
    """A store the demo cannot open fails save_logits; distill, transfer and dense would read products of an
    earlier run (here: a student of another run), so they are skipped and write nothing."""
    stale = tmp_path / "work" / "student_stored" / "checkpoint.pth"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"an earlier run's student")
    (tmp_path / "work" / "store").write_text("not a store folder")
    code = demo.main(["--quick", "--out", str(tmp_path), "--only", "save_logits", "distill", "transfer", "dense"])
    summary = json.loads((tmp_path / "demo_summary.json").read_text())
    status = {row["stage"]: (row["status"], row["detail"]) for row in summary["stages"]}
    assert code == 1 and status["save_logits"][0] == "failed", status
    assert status["distill"] == ("skipped", "needs save_logits, not done in this run")
    assert status["transfer"] == ("skipped", "needs distill, not done in this run")
    assert status["dense"] == ("skipped", "needs distill, not done in this run")
    assert not read_records(tmp_path / "records") and summary["distilled_vs_scratch"] == []
