"""python -m transfer.linear_probe [CONFIG] [--backbone SPEC --checkpoint PATH --pretrain NAME --dataset NAME ...]

Runs the fast probe (logistic regression + lr-grid heads on cached features) and/or the MoCo v3 protocol, writes
one result record per method (task 'linear_probe', metric top1) and prints a Tab. 5-style table.
"""
from __future__ import annotations

import argparse

from contracts.runtime import keep_freed_memory

from ..cli_common import FEATURE_DEFAULTS

DEFAULTS = dict(backbone=None, checkpoint=None, pretrain=None, allow_keys=None, dataset=None, data_root=None,
                mode="fast", resolution=224,
                batch_size=64, num_workers=0, seed=0, max_train=None, max_test=None, val_fraction=0.2,
                methods=["logreg", "linear_heads"], c_grid=None, lr_grid=None, head_epochs=100, epochs=90,
                train_batch_size=256, base_lr=0.1, verify_md5=True, cache_dir=None, results_dir=None,
                **FEATURE_DEFAULTS)


def main(argv: list[str] | None = None) -> list[dict]:
    from ..cli_common import (add_common_arguments, add_feature_arguments, cli_backbone, data_subset, merge_config,
                              write_and_print_records)
    parser = argparse.ArgumentParser(prog="python -m transfer.linear_probe", description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    add_feature_arguments(parser)
    parser.add_argument("--mode", choices=["fast", "moco_v3", "both"], help="fast (default), moco_v3 or both")
    parser.add_argument("--max-train", dest="max_train", type=int, help="at most this many training images (see --subset)")
    parser.add_argument("--max-test", dest="max_test", type=int, help="at most this many test images (see --subset)")
    parser.add_argument("--epochs", type=int, help="MoCo v3 mode epochs (90)")
    parser.add_argument("--head-epochs", dest="head_epochs", type=int, help="fast-mode linear-head epochs (100)")
    args = parser.parse_args(argv)
    keep_freed_memory()  # large CPU tensors reuse the heap (`contracts.runtime`)
    cfg = merge_config(args, DEFAULTS)
    for key in ("backbone", "dataset", "data_root"):
        if not cfg.get(key):
            parser.error(f"--{key.replace('_', '-')} (or '{key}' in the config) is required")

    from .datasets import build_dataset, canonical_name, num_classes
    from .probe import DEFAULT_C_GRID, DEFAULT_LR_GRID, probe_records, run_fast_probe, run_moco_probe

    name = canonical_name(cfg["dataset"])
    subset = dict(classes=cfg["classes"], order=cfg["subset"])
    train = data_subset(build_dataset(name, cfg["data_root"], "train", verify_md5=cfg["verify_md5"]),
                        cfg["max_train"], cfg["seed"], **subset)
    test = data_subset(build_dataset(name, cfg["data_root"], "test", verify_md5=cfg["verify_md5"]),
                       cfg["max_test"], cfg["seed"] + 1, **subset)
    backbone = cli_backbone(cfg)
    common = dict(resolution=cfg["resolution"], num_workers=cfg["num_workers"])
    runs = []
    if cfg["mode"] in ("fast", "both"):
        runs.append(run_fast_probe(backbone, train, test, batch_size=cfg["batch_size"],
                                   cache_dir=cfg["cache_dir"], methods=cfg["methods"],
                                   val_fraction=cfg["val_fraction"], seed=cfg["seed"],
                                   c_grid=cfg["c_grid"] or DEFAULT_C_GRID, lr_grid=cfg["lr_grid"] or DEFAULT_LR_GRID,
                                   head_epochs=cfg["head_epochs"], **common))
    if cfg["mode"] in ("moco_v3", "both"):
        runs.append(run_moco_probe(backbone, train, test, num_classes(train), epochs=cfg["epochs"],
                                   batch_size=cfg["train_batch_size"], base_lr=cfg["base_lr"], seed=cfg["seed"],
                                   **common))
    records = []
    for run in runs:
        records += probe_records(run, cfg["record_dataset"] or name, resolution=cfg["resolution"], seed=cfg["seed"],
                                 val_fraction=cfg["val_fraction"], config=cfg)
    return write_and_print_records(records, cfg["results_dir"])


if __name__ == "__main__":
    from ..cli_common import run_cli
    run_cli(main)
