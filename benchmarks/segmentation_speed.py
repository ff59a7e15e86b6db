"""UperNet iteration time: TinyViT vs Swin-T backbones in the same mmseg harness, same run, as a ratio.

    python -m benchmarks.segmentation_speed [--archs 5m 11m 21m] [--size 512] [--batch 2] [--rounds 3] [--quick]
                                            [--clock wall|cpu] [--records DIR] [--no-record] [--threads N]

Both segmentors come from the repo's configs (`configs/segmentation/upernet_*_512x512_160k_ade20k.py`: same
UperNet head, BN, AdamW) and train on the same batch of real photos (the mini VOC set, resized to size²) with
the same threads; rounds alternate between the models and the median round counts, so load from other processes
hits both alike (`benchmarks.common.timed_rounds`). Measured: one training iteration (forward, loss, backward,
AdamW step) and whole-image inference, on the CPU. Writes one record per TinyViT variant (task 'iteration_time').
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Callable, Sequence

import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

from benchmarks.common import add_common_flags, count_params, save_record, start_run, timed_rounds
from contracts.provenance import REPO_ROOT
from contracts.records import backbone_block, make_record

CONFIGS = REPO_ROOT / "configs" / "segmentation"
SWIN_CONFIG = CONFIGS / "upernet_swin-t_512x512_160k_ade20k.py"


def tinyvit_config(arch: str) -> Path:
    return CONFIGS / f"upernet_tinyvit-{arch}_512x512_160k_ade20k.py"


def real_batch(size: int, batch: int, data_root: str) -> list:
    """`batch` real photos + label maps of the mini VOC set through mmseg's pipeline, resized to size²."""
    from mmseg.registry import DATASETS
    pipeline = [dict(type="LoadImageFromFile"), dict(type="LoadAnnotations"),
                dict(type="Resize", scale=(size, size), keep_ratio=False), dict(type="PackSegInputs")]
    dataset = DATASETS.build(dict(type="PascalVOCDataset", data_root=data_root, pipeline=pipeline,
                                  ann_file="ImageSets/Segmentation/train.txt",
                                  data_prefix=dict(img_path="JPEGImages", seg_map_path="SegmentationClass")))
    return [dataset[1 + i % 3] for i in range(batch)]  # the three 500x375 photos (one original shape)


def build_segmentor(config: Path, size: int) -> tuple[torch.nn.Module, object]:
    from mmseg.registry import MODELS
    cfg = Config.fromfile(config)
    cfg.model.data_preprocessor.size = (size, size)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model, build_optim_wrapper(model, cfg.optim_wrapper)


def build_parser() -> argparse.ArgumentParser:
    """The command line of `python -m benchmarks.segmentation_speed`."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.segmentation_speed",
                                     description=__doc__.splitlines()[0])
    add_common_flags(parser, quick="128², 1 round, no warm-up", rounds=3, warmup=1, clock=True)
    parser.add_argument("--archs", nargs="+", default=["5m"], choices=["5m", "11m", "21m"])
    parser.add_argument("--size", type=int, default=512, help="square input side (default 512)")
    parser.add_argument("--batch", type=int, default=2, help="images per iteration (≥ 2: UperNet's pooling BN)")
    return parser


def main(argv: Sequence[str] | None = None) -> list[dict]:
    """Measure, print the table, write the records; returns them."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.rounds, args.warmup = 128, 1, 0
    if args.batch < 2:
        parser.error("--batch must be ≥ 2 (UperNet's pooling BatchNorm cannot train on one image)")
    start_run(args)

    import backbones  # noqa: F401 - registers TinyViT
    from transfer.segmentation import build_mini_seg

    init_default_scope("mmseg")
    with tempfile.TemporaryDirectory() as tmp:
        batch = pseudo_collate(real_batch(args.size, args.batch, build_mini_seg(Path(tmp) / "mini")["data_root"]))
    models = {"swin-t": build_segmentor(SWIN_CONFIG, args.size)}
    models.update({f"tinyvit-{a}": build_segmentor(tinyvit_config(a), args.size) for a in args.archs})

    def train_step(model: torch.nn.Module, wrapper: object) -> Callable[[], None]:
        return lambda: (model.train(), model.train_step(batch, wrapper))

    def infer_step(model: torch.nn.Module) -> Callable[[], None]:
        def run() -> None:
            model.eval()
            with torch.no_grad():
                model.test_step(batch)
        return run

    print(f"[segmentation_speed] UperNet, {args.size}², batch {args.batch}, {torch.get_num_threads()} threads, "
          f"{args.rounds} rounds, {args.clock} clock", flush=True)
    train_s = timed_rounds({n: train_step(m, w) for n, (m, w) in models.items()}, args.rounds, warmup=args.warmup,
                           clock=args.clock, label="segmentation_speed train").median()
    infer_s = timed_rounds({n: infer_step(m) for n, (m, _) in models.items()}, args.rounds, warmup=args.warmup,
                           clock=args.clock, label="segmentation_speed inference").median()
    params = {n: count_params(m.backbone) / 1e6 for n, (m, _) in models.items()}

    print(f"{'backbone':<12} {'params(M)':>9} {'train s/iter':>12} {'infer s/iter':>12} {'train ratio':>11}")
    records = []
    for name in models:
        ratio = train_s["swin-t"] / train_s[name]
        print(f"{name:<12} {params[name]:>9.1f} {train_s[name]:>12.3f} {infer_s[name]:>12.3f} {ratio:>11.2f}")
        if name == "swin-t":
            continue
        metrics = {"train_s_per_iter": train_s[name], "infer_s_per_iter": infer_s[name],
                   "swin_t_train_s_per_iter": train_s["swin-t"], "swin_t_infer_s_per_iter": infer_s["swin-t"],
                   "train_speedup_vs_swin_t": ratio, "infer_speedup_vs_swin_t": infer_s["swin-t"] / infer_s[name],
                   "backbone_params_m": params[name], "swin_t_backbone_params_m": params["swin-t"]}
        setting = {"model": "UperNet", "size": args.size, "batch": args.batch, "rounds": args.rounds,
                   "warmup": args.warmup, "threads": torch.get_num_threads(), "quick": args.quick, "clock": args.clock,
                   "data": "mini VOC set (real photos), resized", "reference": "swin-t"}
        record = make_record("iteration_time", dataset="ade20k-upernet-512", split="synthetic-timing",
                             metrics=metrics, backbone=backbone_block(name, "random"), setting=setting)
        save_record(record, args)
        records.append(record)
    print("(train ratio = Swin-T seconds / this backbone's seconds; > 1 means faster than Swin-T)")
    return records


if __name__ == "__main__":
    main()
