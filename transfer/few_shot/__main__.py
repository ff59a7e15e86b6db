"""python -m transfer.few_shot [CONFIG] [--backbone SPEC --checkpoint PATH --pretrain NAME --dataset NAME ...]

CD-FSL protocol: n-way, k-shot (5/20/50), 15 queries, 600 seeded episodes saved under results/episodes/ (every
backbone sees the same ones); fine-tuned linear head and logistic regression on frozen features; one record per
shot count and method (task 'few_shot', metrics top1 and ci95); prints a Tab. 5-style table.
"""
from __future__ import annotations

import argparse

from contracts.runtime import keep_freed_memory

from ..cli_common import FEATURE_DEFAULTS

DEFAULTS = dict(backbone=None, checkpoint=None, pretrain=None, allow_keys=None, dataset=None, data_root=None,
                n_way=5, shots=[5, 20, 50],
                n_query=15, n_episodes=600, resolution=224, batch_size=64, num_workers=0, seed=0,
                methods=["finetune", "logreg"], finetune_epochs=100, episodes_dir=None, cache_dir=None,
                results_dir=None, max_images=None, **FEATURE_DEFAULTS)


def main(argv: list[str] | None = None) -> list[dict]:
    from ..cli_common import (add_common_arguments, add_feature_arguments, cli_backbone, data_subset, merge_config,
                              write_and_print_records)
    parser = argparse.ArgumentParser(prog="python -m transfer.few_shot", description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    add_feature_arguments(parser)
    parser.add_argument("--max-images", dest="max_images", type=int, help="at most this many images (see --subset)")
    parser.add_argument("--n-way", dest="n_way", type=int, help="classes per episode (5)")
    parser.add_argument("--shots", type=int, nargs="+", help="shots per class (5 20 50)")
    parser.add_argument("--n-query", dest="n_query", type=int, help="queries per class (15)")
    parser.add_argument("--n-episodes", dest="n_episodes", type=int, help="episodes (600)")
    parser.add_argument("--episodes-dir", dest="episodes_dir", help="where episode files live (results/episodes)")
    args = parser.parse_args(argv)
    keep_freed_memory()  # large CPU tensors reuse the heap (`contracts.runtime`)
    cfg = merge_config(args, DEFAULTS)
    for key in ("backbone", "dataset", "data_root"):
        if not cfg.get(key):
            parser.error(f"--{key.replace('_', '-')} (or '{key}' in the config) is required")

    from pathlib import Path
    from .datasets import build_few_shot_dataset, canonical_name
    from .runner import default_episodes_path, few_shot_records, run_few_shot

    name = canonical_name(cfg["dataset"])
    dataset = data_subset(build_few_shot_dataset(name, cfg["data_root"]), cfg["max_images"], cfg["seed"],
                          classes=cfg["classes"], order=cfg["subset"])
    name = cfg["record_dataset"] or name
    backbone = cli_backbone(cfg)
    records = []
    for shot in cfg["shots"]:
        path = default_episodes_path(name, cfg["n_way"], shot, cfg["n_query"], cfg["n_episodes"], cfg["seed"])
        if cfg["episodes_dir"]:
            path = Path(cfg["episodes_dir"]) / path.name
        run = run_few_shot(backbone, dataset, cfg["n_way"], shot, cfg["n_query"], cfg["n_episodes"],
                           cfg["seed"], dataset_name=name, episodes_path=path,
                           resolution=cfg["resolution"], batch_size=cfg["batch_size"],
                           num_workers=cfg["num_workers"], cache_dir=cfg["cache_dir"], methods=cfg["methods"],
                           finetune_epochs=cfg["finetune_epochs"])
        records += few_shot_records(run, name, config=cfg)
    return write_and_print_records(records, cfg["results_dir"])


if __name__ == "__main__":
    from ..cli_common import run_cli
    run_cli(main)
