"""Shared pieces of the linear-probe, few-shot and fine-tune command lines: config + flag merging, subsets, records."""
from __future__ import annotations

import argparse
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from torch.utils.data import Dataset, Subset

SUBSET_ORDERS = ("seeded", "first")
FEATURE_DEFAULTS = dict(classes=None, subset="seeded", record_dataset=None, window_sizes=None, allow_pickle=False)


def merge_config(args: argparse.Namespace, defaults: Mapping[str, Any]) -> dict[str, Any]:
    """defaults ← CONFIG file (MMEngine Python config) ← --cfg-options ← explicit flags (those not None).

    A dotted --cfg-options key whose first part names a dict-valued key sets inside it (`optim.lr=1e-3`)."""
    cfg: dict[str, Any] = dict(defaults)
    if args.config:
        from mmengine.config import Config
        loaded = Config.fromfile(args.config).to_dict()
        unknown = sorted(set(loaded) - set(defaults))
        if unknown:
            raise ValueError(f"{args.config}: unknown keys {unknown}; known: {sorted(defaults)}")
        cfg.update(loaded)
    if args.cfg_options:
        from mmengine.config import DictAction  # noqa: F401  (parsed by the action already)
        for key, value in args.cfg_options.items():
            _set_option(cfg, key, value)
    for key in defaults:
        value = getattr(args, key, None)
        if value is not None:
            cfg[key] = value
    if isinstance(cfg.get("backbone"), Mapping):  # dict(spec=..., checkpoint=..., [ViT shape keys])
        spec = dict(cfg["backbone"])
        checkpoint = spec.pop("checkpoint", None)
        if checkpoint and not cfg.get("checkpoint"):
            cfg["checkpoint"] = checkpoint
        cfg["backbone"] = spec.pop("spec") if set(spec) == {"spec"} else spec
    return cfg


def _set_option(cfg: dict[str, Any], key: str, value: Any) -> None:
    """cfg[key] = value, or inside nested dicts for `a.b.c` when cfg['a'] is a dict (copied, not mutated)."""
    head, _, rest = key.partition(".")
    if rest and isinstance(cfg.get(head), Mapping):
        cfg[head] = inner = dict(cfg[head])
        _set_option(inner, rest, value)
    else:
        cfg[key] = value


def cli_backbone(cfg: Mapping[str, Any]) -> Any:
    """The `transfer.features.Backbone` a probe / few-shot command line asked for (spec, checkpoint, pretrain,
    allow-list, pickles; random weights from the run's seed). A checkpoint may be named as `contracts.weights` resolves
    (an official release name, a timm hub id, a URL): the cached file is loaded and the name's pretraining is the
    default `pretrain`. `window_sizes` (a random TinyViT's windows per stage) builds that random student."""
    from contracts.weights import kind_of, resolve_weights

    from .features import load_backbone
    checkpoint, pretrain = cfg["checkpoint"], cfg["pretrain"]
    if checkpoint and not str(checkpoint).startswith("asset:") and kind_of(str(checkpoint)) != "path":
        weights = resolve_weights(checkpoint)
        checkpoint, pretrain = str(weights.path), pretrain or weights.pretrain
    if cfg.get("window_sizes"):
        return _random_tinyvit(cfg["backbone"], cfg["window_sizes"], cfg["resolution"], cfg["seed"], checkpoint)
    return load_backbone(cfg["backbone"], checkpoint, img_size=cfg["resolution"], pretrain=pretrain,
                         allow_keys=tuple(cfg["allow_keys"] or ()), seed=cfg["seed"],
                         allow_pickle=bool(cfg.get("allow_pickle")))


def _random_tinyvit(spec: Any, window_sizes: Sequence[int], resolution: int, seed: int, checkpoint: Any) -> Any:
    """A randomly initialised TinyViT with explicit windows: what a student of that shape starts from."""
    import torch

    from backbones import TinyViT
    from contracts.records import backbone_block

    from .features import TINYVIT_ARCHS, load_backbone
    arch = str(spec).lower().removeprefix("tinyvit-")
    if checkpoint:
        raise ValueError(f"window_sizes {list(window_sizes)}: a checkpoint records its own windows; give window "
                         f"sizes only for a random initialisation")
    if arch not in TINYVIT_ARCHS:
        raise ValueError(f"window_sizes apply to tinyvit-5m|11m|21m, not backbone {spec!r}")
    torch.manual_seed(seed)
    backbone = load_backbone(TinyViT(arch, img_size=resolution, window_sizes=tuple(window_sizes), num_classes=0))
    backbone.name = f"tinyvit-{arch}"
    backbone.record = backbone_block(backbone.name, "random", init_seed=seed, window_sizes=list(window_sizes))
    return backbone


def seeded_subset(dataset: Dataset, limit: int | None, seed: int) -> Dataset:
    """A seeded random subset of at most `limit` items (the whole set when limit is None or ≥ its size)."""
    if limit is None or limit >= len(dataset):
        return dataset
    indices = np.sort(np.random.default_rng(seed).permutation(len(dataset))[:limit])
    return Subset(dataset, indices.tolist())


def data_subset(dataset: Dataset, limit: int | None, seed: int, *, classes: Sequence[int] | None = None,
                order: str = "seeded") -> Dataset:
    """The images of `classes` (every class when None; labels kept as they are), at most `limit` of them: a seeded
    random subset (`order='seeded'`, the draw of `seeded_subset`) or the first ones in file order (`'first'`)."""
    if order not in SUBSET_ORDERS:
        raise ValueError(f"subset order {order!r}: use one of {SUBSET_ORDERS}")
    if not classes:
        if order == "seeded" or limit is None or limit >= len(dataset):
            return seeded_subset(dataset, limit, seed)
        return Subset(dataset, list(range(limit)))
    from .features import dataset_targets
    labels = dataset_targets(dataset)
    keep = np.flatnonzero(np.isin(labels, list(classes)))
    if not len(keep):
        raise ValueError(f"classes {list(classes)}: no image has these labels (labels present: "
                         f"{sorted(set(labels.tolist()))[:20]})")
    if limit is not None and limit < len(keep):
        keep = keep[:limit] if order == "first" else keep[np.sort(np.random.default_rng(seed).permutation(
            len(keep))[:limit])]
    return Subset(dataset, keep.tolist())


def add_common_arguments(parser: argparse.ArgumentParser, *, feature_cache: bool = True) -> None:
    """The flags every transfer CLI shares; `feature_cache=False` for a harness that extracts no cached features."""
    from mmengine.config import DictAction
    parser.add_argument("config", nargs="?", help="MMEngine Python config (configs/...); flags override it")
    parser.add_argument("--backbone", help="tinyvit-5m|11m|21m, vit-tiny|small|base[/patchN][@SIZE], timm:<name>, "
                                           "torchvision:<name>")
    parser.add_argument("--checkpoint", help="weights file: ours (any objective), official TinyViT / MAE, timm, "
                                             "torchvision (or asset:mobilenet_v2 / asset:efficientnet_lite0); "
                                             "omitted: random initialisation")
    parser.add_argument("--pretrain", help="what a third-party checkpoint was pretrained on/with (in1k, in21k, "
                                           "in21k-distill, mae, ...); ours say it in their meta (default unknown)")
    parser.add_argument("--allow-keys", dest="allow_keys", nargs="+", metavar="PATTERN",
                        help="fnmatch patterns of checkpoint keys a partial load may leave missing/unexpected "
                             "(default: none besides the dropped classifier); recorded in backbone.load_report")
    parser.add_argument("--dataset", help="data set name")
    parser.add_argument("--data-root", dest="data_root", help="local root holding the data set's files")
    parser.add_argument("--resolution", type=int, help="input resolution (224 in the papers)")
    parser.add_argument("--batch-size", dest="batch_size", type=int, help="batch size")
    parser.add_argument("--num-workers", dest="num_workers", type=int, help="DataLoader workers")
    parser.add_argument("--seed", type=int)
    if feature_cache:
        parser.add_argument("--cache-dir", dest="cache_dir", help="feature cache (default .cache/features)")
    parser.add_argument("--results-dir", dest="results_dir", help="records directory (default results/records)")
    parser.add_argument("--cfg-options", dest="cfg_options", nargs="+", action=DictAction,
                        help="override config keys, e.g. max_train=1000")


def add_feature_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of the frozen-feature CLIs (linear probe, few-shot) beyond the common ones (`FEATURE_DEFAULTS`)."""
    parser.add_argument("--classes", type=int, nargs="+", help="keep only the images of these labels (kept as "
                                                               "they are, not renumbered)")
    parser.add_argument("--subset", choices=SUBSET_ORDERS, help="how --max-* pick images: a seeded random subset "
                                                                "(default) or the first ones in file order")
    parser.add_argument("--record-dataset", dest="record_dataset",
                        help="the data set name the records carry (default its canonical name; e.g. "
                             "fashion_mnist_novel for a class subset)")
    parser.add_argument("--window-sizes", dest="window_sizes", type=int, nargs=4, metavar="W",
                        help="a random TinyViT's windows per stage (a checkpoint records its own)")
    parser.add_argument("--allow-pickle", dest="allow_pickle", action="store_true", default=None,
                        help="read a trusted checkpoint that pickles more than tensors (official TinyViT files "
                             "that store their training config)")


def write_and_print_records(records: list[dict[str, Any]], results_dir: str | None) -> list[dict[str, Any]]:
    """Write each record, then print the Tab. 5-style table and where every record went."""
    from contracts.records import write_record

    from .tab5 import tab5_table
    for rec in records:
        rec["_written_to"] = str(write_record(rec, results_dir))
    print(tab5_table(records).to_string())
    for rec in records:
        print(f"record: {rec['_written_to']}")
    return records


def run_cli(main: Callable[[], Any]) -> None:
    """Run an entry point; missing data (`DatasetNotFound` is a FileNotFoundError) or a bad value ends the
    program with one line naming it instead of a traceback."""
    try:
        main()
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(f"error: {err}") from None

