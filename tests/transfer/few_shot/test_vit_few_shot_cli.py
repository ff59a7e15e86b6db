"""The few-shot command line on a `dmae` ViT checkpoint written by the real trainer, on real Fashion-MNIST images
(the config form: a backbone dict with the ViT pooling key)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

from contracts.fileio import file_sha256
from contracts.records import read_records, validate_record


def _probe_test_module():
    path = Path(__file__).resolve().parents[1] / "linear_probe" / "test_vit_probe_cli.py"
    spec = importlib.util.spec_from_file_location("_vit_probe_cli", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_few_shot_cli_on_trainer_written_dmae_checkpoint(tmp_path, capsys):
    from transfer.few_shot.__main__ import main as few_shot_main
    helpers = _probe_test_module()
    ckpt = helpers.train_vit_checkpoint("dmae", tmp_path / "dmae")
    config = tmp_path / "few_shot_vit.py"
    config.write_text(f"backbone = dict(spec='vit-tiny', checkpoint={str(ckpt)!r}, pool='avg')\n"
                      f"dataset = 'fashion_mnist'\ndata_root = {helpers.fashion_mnist_root()!r}\nresolution = 32\n")
    argv = [str(config), "--shots", "1", "--n-query", "2", "--n-episodes", "3", "--episodes-dir", str(tmp_path / "ep"),
            "--cache-dir", str(tmp_path / "cache"), "--results-dir", str(tmp_path / "rec"),
            "--cfg-options", "methods=[logreg]"]
    first = few_shot_main(argv)
    assert [r["metrics"] for r in few_shot_main(argv)] == [r["metrics"] for r in first]  # same episodes, same result
    saved = read_records(tmp_path / "rec", tasks=["few_shot"])
    assert len(saved) == 1  # the rerun rewrote the same record
    for record in saved:
        validate_record(record)
        block = record["backbone"]
        assert (block["name"], block["source"], block["pretrain"], block["pool"]) == (
            "vit-tiny", "distill", "fashionmnist-dmae", "avg")
        assert block["checkpoint_sha256"] == file_sha256(ckpt)
    assert "1-shot" in capsys.readouterr().out
