"""Comparison tables from records: every layout's columns, the paper's numbers, deltas, md/csv/latex output."""
from __future__ import annotations

import io

import pandas as pd
import pytest

from benchmarks import table
from benchmarks.paper_numbers import load_paper_numbers, paper_dataset_name, paper_model_name, record_pretrain
from contracts.records import read_records

OURS = ["metric", "ours", "paper", "delta", "paper_ref", "machine", "date", "commit"]


@pytest.fixture(scope="module")
def tables(records_dir):
    return table.build_tables(read_records(records_dir), ["all"])


def _row(frame: pd.DataFrame, **match) -> pd.Series:
    for key, value in match.items():
        frame = frame[frame[key] == value]
    assert len(frame) == 1, f"expected one row for {match}, got {len(frame)}"
    return frame.iloc[0]


def test_paper_numbers_carry_references():
    paper = load_paper_numbers()
    assert paper["ref"].str.len().gt(0).all() and paper["value"].notna().all()
    for ref in ("TinyViT Tab. 1", "TinyViT Tab. 2", "TinyViT Tab. 4", "TinyViT Tab. 5", "TinyViT Tab. 6",
                "TinyViT Fig. 5", "TinyViT supp. §D", "D-MAE poster transfer table"):
        assert ref in set(paper["ref"])
    tab6 = paper[(paper["ref"] == "TinyViT Tab. 6") & (paper["metric"] == "bbox_AP")]
    assert sorted(tab6["value"]) == [48.1, 49.6, 50.2]
    assert paper[(paper["model"] == "ViT-Tiny") & (paper["dataset"] == "aircraft") & (paper["pretrain"] == "d-mae")
                 ]["value"].tolist() == [79.2]


def test_bad_paper_file_names_the_row(tmp_path):
    bad = tmp_path / "p.csv"
    bad.write_text("ref,model,pretrain,protocol,dataset,metric,value,resolution,shots,note\n"
                   "TinyViT Tab. 4,TinyViT-5M,,model,imagenet-1k,params_M,five,224,,\n")
    with pytest.raises(ValueError, match=r"p\.csv: row 2 .*'five'"):
        load_paper_numbers(bad)


def test_name_mapping():
    assert paper_model_name("tinyvit-5m") == "TinyViT-5M"
    assert paper_model_name("tiny_vit_21m_384.dist_in22k_ft_in1k") == "TinyViT-21M"
    assert record_pretrain({"name": "tiny_vit_21m_224.dist_in22k_ft_in1k"}, {}) == "in21k-distill"
    assert record_pretrain({"name": "tinyvit-5m"}, {"pretrain": "in1k"}) == "in1k"
    assert record_pretrain({"name": "tinyvit-5m"}, {}) is None
    paper_datasets = set(load_paper_numbers()["dataset"])
    for ours, key in (("oxford_pets", "pets"), ("stanford_cars", "cars"), ("flowers102", "flowers"),
                      ("fgvc_aircraft", "aircraft"), ("CIFAR-100", "cifar100"), ("crop_disease", "cropdisease")):
        assert paper_dataset_name(ours) == key and key in paper_datasets


def test_every_layout_present_with_its_columns(tables):
    assert set(tables) == set(table.LAYOUTS)
    keys = {"tab4": ["model", "backbone", "resolution", "device", "batch", "amp"],
            "tab5": ["task", "dataset", "shots", "backbone", "source", "pretrain", "ci95"],
            "tab6": ["dataset", "split", "detector", "backbone", "source", "pretrain"],
            "seg": ["dataset", "split", "backbone", "source", "crop"], "store": ["dataset", "K", "format", "backbone"],
            "distill": ["task", "dataset", "mode", "backbone", "resolution"],
            "speed": ["task", "harness", "dataset", "backbone", "resolution"]}
    for name, cols in keys.items():
        assert list(tables[name].columns) == cols + OURS, name
        assert tables[name]["machine"].str.contains("core").all() and tables[name]["commit"].notna().all()


def test_tab4_params_macs_delta_and_throughput_not_compared_off_v100(tables):
    tab4 = tables["tab4"]
    params = _row(tab4, metric="params_M")
    assert params["paper"] == 5.4 and params["delta"] == pytest.approx(5.39 - 5.4)
    assert _row(tab4, metric="macs_G")["delta"] == pytest.approx(1.27 - 1.3)
    speed = _row(tab4, metric="images_per_s")
    assert speed["ours"] == 41.0 and speed["paper"] == 3060 and pd.isna(speed["delta"])
    assert _row(tab4, metric="timm_images_per_s")["ours"] == 40.0


def test_tab5_fractions_become_percent_and_match_the_paper_row(tables):
    tab5 = tables["tab5"]
    cifar = _row(tab5, dataset="cifar100")
    assert cifar["ours"] == pytest.approx(86.1) and cifar["paper"] == 86.6
    assert cifar["delta"] == pytest.approx(-0.5) and cifar["ci95"] == pytest.approx(0.4)
    eurosat = _row(tab5, dataset="eurosat")
    assert eurosat["shots"] == 5 and eurosat["paper"] == 88.1 and eurosat["delta"] == pytest.approx(-1.1)
    fashion = tab5[tab5["dataset"] == "fashion_mnist"]
    assert len(fashion) == 3 and fashion["paper"].isna().all() and fashion["delta"].isna().all()
    assert set(fashion["source"]) == {"distill", "scratch"}


def test_tab6_maps_mmdet_names(tables):
    tab6 = tables["tab6"]
    ap = _row(tab6, dataset="coco", metric="bbox_AP")
    assert ap["ours"] == pytest.approx(49.7) and ap["paper"] == 50.2 and ap["delta"] == pytest.approx(-0.5)
    assert _row(tab6, dataset="coco", metric="bbox_AP50")["paper"] == 69.4
    assert _row(tab6, dataset="coco", metric="bbox_APs")["paper"] == 32.9
    assert pd.isna(_row(tab6, dataset="coco", metric="segm_AP")["paper"])
    assert pd.isna(_row(tab6, dataset="labelme_mini", metric="bbox_AP")["paper"])


def test_seg_store_distill_speed(tables):
    assert set(tables["seg"]["metric"]) == {"mIoU", "mAcc", "aAcc"}
    assert _row(tables["seg"], metric="mIoU")["ours"] == 3.2
    k10 = _row(tables["store"], K=10, metric="bytes_per_sample")
    assert k10["paper"] == 44.7 and k10["delta"] == pytest.approx(44.0 - 44.7)
    assert _row(tables["store"], K=100, metric="bytes_per_sample")["paper"] == 404.2
    total = _row(tables["store"], K=100, metric="storage_GiB")
    assert total["paper"] == 481 and total["delta"] == pytest.approx(480.4 - 481)
    ratio = _row(tables["distill"], metric="online_over_stored")
    assert ratio["paper"] == 2.36 and pd.isna(ratio["delta"])
    assert set(tables["speed"]["metric"]) == {"train_step_s", "infer_s"}


def test_formats_and_cli(records_dir, tmp_path, capsys):
    records = read_records(records_dir)
    tables = table.build_tables(records, ["tab5", "tab6"])
    md = table.render(tables, "md")
    assert "## Linear probe and few-shot (TinyViT Tab. 5)" in md and "Paper (TinyViT Tab. 6)" in md
    assert "| 86.6" in md and "-0.5" in md and "—" in md
    csv = pd.read_csv(io.StringIO(table.render(tables, "csv")))
    assert set(csv["layout"]) == {"tab5", "tab6"} and {"ours", "paper", "delta", "commit"} <= set(csv.columns)
    latex = table.render(tables, "latex")
    assert latex.count("\\begin{table}") == 2 and "tab:tab6" in latex
    out = tmp_path / "t.md"
    text = table.main(["--records", str(records_dir), "--layout", "store", "--out", str(out)])
    assert out.read_text() == text and "bytes_per_sample" in text
    with pytest.raises(SystemExit):
        table.main(["--records", str(tmp_path / "absent")])


def test_unknown_layout_is_refused(records_dir):
    with pytest.raises(ValueError, match="unknown layout"):
        table.build_tables(read_records(records_dir), ["tab9"])
