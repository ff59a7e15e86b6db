"""The entry points end to end on tiny files: records written, Tab. 5-style table printed, config files load."""
import json
from pathlib import Path

import pytest

from contracts.records import read_records
from transfer.few_shot.__main__ import main as few_shot_main
from transfer.linear_probe.__main__ import main as probe_main

REPO = Path(__file__).resolve().parents[3]


def _load_writers():
    import importlib.util
    spec = importlib.util.spec_from_file_location("_lp_writers", Path(__file__).with_name("test_linear_probe_datasets.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


write_cifar10 = _load_writers().write_cifar10


def test_linear_probe_cli_fast_and_moco(tmp_path, capsys):
    write_cifar10(tmp_path / "cifar")
    records = probe_main(["--backbone", "tinyvit-5m", "--dataset", "cifar10", "--data-root", str(tmp_path / "cifar"),
                          "--resolution", "32", "--mode", "both", "--epochs", "1", "--head-epochs", "2",
                          "--cache-dir", str(tmp_path / "cache"), "--results-dir", str(tmp_path / "rec"),
                          "--cfg-options", "verify_md5=False", "val_fraction=0.3", "c_grid=[0.1,1.0]"])
    out = capsys.readouterr().out
    assert {r["setting"]["method"] for r in records} == {"logreg", "linear_heads", "moco_v3"}
    saved = read_records(tmp_path / "rec", tasks=["linear_probe"])
    assert len(saved) == 3 and all(r["backbone"]["source"] == "random" for r in saved)
    assert all(0 <= r["metrics"]["top1"] <= 1 and r["dataset"] == "cifar10" for r in saved)
    assert "Linear probe" in out and "CIFAR-10" in out


def test_few_shot_cli_on_eurosat_layout(tmp_path, capsys):
    from PIL import Image
    import numpy as np
    for c in range(5):
        for i in range(6):
            p = tmp_path / "eurosat" / f"class{c}" / f"{i}.jpg"
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((16, 16, 3), 40 * c + i, np.uint8)).save(p)
    argv = ["--backbone", "tinyvit-5m", "--dataset", "eurosat", "--data-root", str(tmp_path / "eurosat"),
            "--resolution", "32", "--shots", "1", "2", "--n-query", "3", "--n-episodes", "4",
            "--episodes-dir", str(tmp_path / "ep"), "--cache-dir", str(tmp_path / "cache"),
            "--results-dir", str(tmp_path / "rec"), "--cfg-options", "finetune_epochs=3"]
    first = few_shot_main(argv)
    second = few_shot_main(argv)
    assert [r["metrics"] for r in first] == [r["metrics"] for r in second]
    assert len(list((tmp_path / "ep").glob("*.json"))) == 2
    assert {(r["setting"]["n_shot"], r["setting"]["method"]) for r in first} == {
        (1, "finetune"), (1, "logreg"), (2, "finetune"), (2, "logreg")}
    out = capsys.readouterr().out
    assert "1-shot" in out and "2-shot" in out and "EuroSAT" in out


@pytest.mark.parametrize("config", sorted((REPO / "configs" / "linear_probe").glob("*.py"))
                         + sorted((REPO / "configs" / "few_shot").glob("*.py")), ids=lambda p: p.name)
def test_configs_have_only_known_keys(config):
    from transfer.cli_common import merge_config
    import argparse
    from transfer.few_shot.__main__ import DEFAULTS as FS
    from transfer.linear_probe.__main__ import DEFAULTS as LP
    defaults = LP if config.parent.name == "linear_probe" else FS
    cfg = merge_config(argparse.Namespace(config=str(config), cfg_options=None), defaults)
    assert cfg["backbone"] and cfg["dataset"]
