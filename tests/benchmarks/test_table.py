"""Paper-shaped tables from records the real writers wrote (tests/benchmarks/conftest.py): the joined cells, the
stand-in section, units, formats, and the refusals."""
from __future__ import annotations

import io
import math
import re

import pandas as pd
import pytest

from benchmarks import table
from benchmarks.paper_numbers import load_paper_numbers, paper_dataset_name, paper_model_name
from contracts.records import read_records


@pytest.fixture(scope="module")
def records(records_dir):
    return read_records(records_dir)


@pytest.fixture(scope="module")
def all_sections(records):
    return table.build_tables(records, ["all"], diagnostics=True)


@pytest.fixture(scope="module")
def sections(all_sections):
    return {(s.layout, s.kind): s for s in all_sections if s.kind != "other"}


def _row(frame: pd.DataFrame, **match) -> pd.Series:
    for key, value in match.items():
        frame = frame[frame[key] == value]
    assert len(frame) == 1, f"expected one row for {match}, got {len(frame)}"
    return frame.iloc[0]


def test_paper_numbers_carry_references_and_the_records_vocabulary():
    paper = load_paper_numbers()
    assert paper["ref"].str.len().gt(0).all() and paper["value"].notna().all()
    for ref in ("TinyViT Tab. 4", "TinyViT Tab. 5", "TinyViT Tab. 6", "TinyViT Fig. 5", "TinyViT supp. §D",
                "D-MAE poster transfer table", "TinyMIM supp. Tab. 3"):
        assert ref in set(paper["ref"])
    tab6 = paper[(paper["ref"] == "TinyViT Tab. 6") & (paper["metric"] == "bbox_ap")]
    assert sorted(tab6["value"]) == [48.1, 49.6, 50.2]
    assert paper[(paper["model"] == "ViT-Tiny") & (paper["dataset"] == "aircraft") & (paper["pretrain"] == "dmae")
                 ]["value"].tolist() == [79.2]
    from contracts.records import TASKS
    for task, metrics in (("detection", {"bbox_ap", "bbox_ap_s", "segm_ap"}), ("throughput", {"params_m", "macs_g"})):
        assert metrics <= set(paper["metric"]) and metrics <= set(TASKS[task].metrics)


def test_bad_paper_file_names_the_row(tmp_path):
    bad = tmp_path / "p.csv"
    bad.write_text("ref,model,pretrain,protocol,dataset,metric,value,resolution,shots,note\n"
                   "TinyViT Tab. 4,TinyViT-5M,,model,imagenet-1k,params_m,five,224,,\n")
    with pytest.raises(ValueError, match=r"p\.csv: row 2 .*'five'"):
        load_paper_numbers(bad)


def test_name_mapping():
    assert paper_model_name("tinyvit-21m") == "TinyViT-21M" and paper_model_name("vit-tiny") == "ViT-Tiny"
    assert paper_model_name("timm:tiny_vit_21m_384.dist_in22k_ft_in1k") == "TinyViT-21M"
    paper_datasets = set(load_paper_numbers()["dataset"])
    for ours, key in (("oxford_pets", "pets"), ("stanford_cars", "cars"), ("flowers102", "flowers"),
                      ("fgvc_aircraft", "aircraft"), ("cifar100", "cifar100"), ("isic2018", "isic")):
        assert paper_dataset_name(ours) == key and key in paper_datasets
    assert paper_dataset_name("fashion_mnist") not in paper_datasets


def test_writers_records_carry_source_pretrain_and_sha(records, student):
    from contracts.fileio import file_sha256
    probes = [r for r in records if r["task"] in ("linear_probe", "few_shot") and r["backbone"]["source"] != "random"]
    assert {(r["task"], r["dataset"]) for r in probes} == {("linear_probe", "cifar100"),
                                                           ("linear_probe", "fashion_mnist"), ("few_shot", "eurosat")}
    for rec in probes:
        assert rec["backbone"]["source"] == "distill" and rec["backbone"]["pretrain"] == "in21k-distill"
        assert rec["backbone"]["checkpoint_sha256"] == file_sha256(student)
        assert rec["backbone"]["load_report"]["missing"] == []


def test_tab5_joins_real_data_set_cells_to_the_paper(records, sections):
    tab5 = sections[("tab5", "joined")].table
    ours_rec = next(r for r in records if r["task"] == "linear_probe" and r["dataset"] == "cifar100"
                    and r["backbone"]["source"] == "distill")
    row = _row(tab5, model="TinyViT-21M", pretrain="in21k-distill")
    top1 = 100 * ours_rec["metrics"]["top1"]  # records hold fractions, the table prints percent
    assert row["CIFAR-100 (probe) | ours"] == pytest.approx(top1)
    assert row["CIFAR-100 (probe) | ±95"] == pytest.approx(100 * ours_rec["metrics"]["ci95"])
    assert row["CIFAR-100 (probe) | paper"] == 86.6
    assert row["CIFAR-100 (probe) | Δ"] == pytest.approx(top1 - 86.6)
    shot = next(r for r in records if r["task"] == "few_shot")
    assert row["EuroSAT 5-shot | ours"] == pytest.approx(100 * shot["metrics"]["top1"])
    assert row["EuroSAT 5-shot | paper"] == 88.1
    random = _row(tab5, model="TinyViT-5M")  # random weights: pretrain 'none', nothing to compare with
    assert random["pretrain"] == "none" and random["source"] == "random"
    assert pd.isna(random["CIFAR-100 (probe) | paper"]) and pd.isna(random["CIFAR-100 (probe) | Δ"])
    assert "Flowers (probe) | ours" not in tab5.columns  # only columns holding our numbers
    assert not any("fashion" in str(c).lower() for c in tab5.columns)


def test_stand_in_data_set_stays_in_its_own_section(sections):
    stand_in = sections[("tab5", "stand-in")].table
    row = _row(stand_in, dataset="fashion_mnist")
    assert row["model"] == "TinyViT-21M" and 0 <= row["probe top1 | ours"] <= 100
    assert not [c for c in stand_in.columns if "paper" in str(c) or "Δ" in str(c)]


def test_diagnostics_and_other_tasks_are_apart(sections, all_sections):
    tab5 = sections[("tab5", "joined")].table
    assert not [c for c in tab5.columns if any(d in str(c) for d in ("best_c", "fit_s", "val_top1"))]
    diag = sections[("diagnostics", "diagnostics")].table
    assert {"best_c | ours", "fit_s | ours", "val_top1 | ours"} <= set(diag.columns)
    others = {s.title.rsplit(": ", 1)[1]: s.table for s in all_sections if s.kind == "other"}
    assert set(others) == {"probe_speed", "probe_fit"}
    assert set(others["probe_fit"]["method"]) == {"logreg", "linear_heads"}


def test_formats(records, tmp_path):
    chosen = table.build_tables(records, ["tab5"])
    md = table.render(chosen, "md")
    assert "## Linear probe and few-shot transfer (TinyViT Tab. 5)" in md and re.search(r"\|\s+86\.6\s+\|", md)
    assert "CIFAR-100 (probe) ours" in md and " ± " in md and "stand-in data sets" in md
    csv = pd.read_csv(io.StringIO(table.render(chosen, "csv")))
    assert set(csv["section"]) == {"joined", "stand-in", "paper"} and "CIFAR-100 (probe) | paper" in csv.columns
    latex = table.render(chosen, "latex")
    assert latex.count("\\begin{table}") == 3 and "\\toprule" in latex and "\\multicolumn{3}{c}{CIFAR-100 (probe)}" \
        in latex and "$\\pm$" in latex


def test_cli_writes_what_it_prints_and_empty_layouts_say_so(records_dir, tmp_path, capsys):
    out = tmp_path / "t.md"
    text = table.main(["--records", str(records_dir), "--layout", "tab5", "tab6", "--out", str(out)])
    assert out.read_text() == text and "_no records for layout 'tab6' (tasks detection)_" in text
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "_no records to tabulate_" in table.main(["--records", str(empty)])
    with pytest.raises(SystemExit):
        table.main(["--records", str(tmp_path / "absent")])
    with pytest.raises(SystemExit):
        table.main(["--records", str(records_dir), "--layout", "tab9"])
    with pytest.raises(ValueError, match="unknown layout"):
        table.build_tables([], ["tab9"])


def test_percent_only_for_fractions(records):
    frame = table.records_frame(records)
    speed = frame[frame["task"] == "probe_speed"]
    rec = next(r for r in records if r["task"] == "probe_speed")
    assert speed["ours"].iloc[0] == pytest.approx(rec["metrics"]["images_per_s"])  # a rate is printed as recorded
    assert all(0 <= v <= 100 for v in frame[frame["metric"] == "top1"]["ours"])
    assert not math.isnan(frame["ours"].sum())


def test_every_paper_key_of_the_names_table_is_a_paper_data_set():
    from transfer.dataset_names import DATASETS
    assert {d.paper for d in DATASETS if d.paper is not None} <= set(load_paper_numbers()["dataset"])
