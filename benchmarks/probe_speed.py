"""Linear-probe speed: feature extraction images/s (batched, no_grad, channels-last) and probe fitting time on
cached features of a CIFAR-sized problem (50k × 576 synthetic class-structured features, 10 classes).

    python -m benchmarks.probe_speed [--quick] [--backbones SPEC ...] [--records DIR] [--no-record] [--threads N]

Writes records (task 'probe_speed': extraction images/s of a randomly initialised backbone; task 'probe_fit': fit
seconds, no backbone) and prints figures.
"""
from __future__ import annotations

import argparse
from typing import Sequence

import numpy as np
import torch

from benchmarks.common import add_common_flags, save_record, start_run, timed_rounds


def extraction_rate(spec: str, resolution: int, batch_size: int, batches: int) -> float:
    """Images/s of `Backbone.features` on random input: `batches` batches timed after one warm-up batch."""
    from transfer.features import load_backbone
    backbone = load_backbone(spec, img_size=resolution)
    backbone.model.to(memory_format=torch.channels_last)
    x = torch.randn(batch_size, 3, resolution, resolution).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        timings = timed_rounds({spec: lambda: backbone.features(x)}, 1, warmup=1, calls=batches)
    return batch_size / timings.best()[spec]


def synthetic_features(n: int, dim: int, classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian class clusters (features with a learnable linear structure, like a probe's inputs)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    centres = rng.normal(0, 0.07, (classes, dim)).astype(np.float32)  # overlapping clusters: a non-trivial fit
    return (centres[y] + rng.normal(0, 1, (n, dim)).astype(np.float32)), y


def build_parser() -> argparse.ArgumentParser:
    """The command line of `python -m benchmarks.probe_speed`."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.probe_speed", description=__doc__.splitlines()[0])
    add_common_flags(parser, quick="64 px, batch 8, 5k training features (seconds, for CI)")
    parser.add_argument("--backbones", nargs="+", default=["tinyvit-5m", "tinyvit-21m", "torchvision:mobilenet_v2"])
    return parser


def main(argv: Sequence[str] | None = None) -> list[dict]:
    from contracts.records import backbone_block, make_record
    from transfer.linear_probe import fit_probes_on_features
    args = build_parser().parse_args(argv)
    start_run(args)
    res, bs, nb = (64, 8, 2) if args.quick else (224, 32, 4)
    n_train, n_test, dim = (5000, 1000, 576) if args.quick else (50000, 10000, 576)
    records = []
    for spec in args.backbones:
        rate = extraction_rate(spec, res, bs, nb)
        print(f"extract {spec:28s} {res}px batch {bs}: {rate:8.1f} images/s")
        records.append(make_record("probe_speed", dataset="random", metrics={"images_per_s": rate},
                                   backbone=backbone_block(spec, "random", init_seed=0),
                                   setting={"what": "extraction", "resolution": res, "batch_size": bs,
                                            "channels_last": True, "threads": torch.get_num_threads()}))
    x, y = synthetic_features(n_train + n_test, dim, 10)
    fits = fit_probes_on_features(x[:n_train], y[:n_train], x[n_train:], y[n_train:],
                                  c_grid=(0.01, 0.1, 1.0), head_epochs=10 if args.quick else 100)
    for method, r in fits.items():
        print(f"fit {method:12s} on {n_train}×{dim}: {r['fit_s']:7.1f} s  (top1 {r['top1']:.3f})")
        records.append(make_record("probe_fit", dataset="synthetic", metrics={"fit_s": r["fit_s"], "top1": r["top1"]},
                                   backbone=None,
                                   setting={"what": "fit", "method": method, "n_train": n_train, "dim": dim,
                                            "classes": 10}))
    if "logreg" in fits and "linear_heads" in fits:
        print(f"ratio logreg/linear_heads fit time: {fits['logreg']['fit_s'] / fits['linear_heads']['fit_s']:.2f}")
    for rec in records:
        save_record(rec, args)
    return records


if __name__ == "__main__":
    main()
