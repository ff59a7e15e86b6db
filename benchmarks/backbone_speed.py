"""Backbone benchmark: params, MACs and inference throughput of our TinyViT vs timm's `tiny_vit_*`, same run.

    python -m benchmarks.backbone_speed [--archs 5m 11m 21m] [--img-size 224] [--batch 16] [--quick]

Both models hold the same weights and see the same batch, threads and resolution; rounds alternate between them
and the median round counts, so load from other processes hits both alike. On a GPU (`--device cuda`) it follows
paper Tab. 4's protocol (LeViT's speed test: one GPU, AMP, a large batch; `--batch 256` by default there).
MACs come from `mmengine.analysis` (fvcore-style counter) with a handle for SDPA, which it does not count itself.
"""
from __future__ import annotations

import argparse
import math
import statistics
import time
from typing import Sequence

import pandas as pd
import torch
from torch import nn

from backbones import TinyViT

from contracts.records import make_record, write_record

# Paper Tab. 4 (V100 GPU, throughput measured with LeViT's code): params (M), MACs (G), images/s.
PAPER_TAB4 = {
    ("5m", 224): (5.4, 1.3, 3060), ("11m", 224): (11.0, 2.0, 2468), ("21m", 224): (21.0, 4.3, 1571),
    ("21m", 384): (21.0, 13.8, 394), ("21m", 512): (21.0, 27.0, 167),
}


def _sdpa_macs(inputs: list, outputs: list) -> int:
    from mmengine.analysis.jit_handles import get_shape
    q, k, v = (get_shape(i) for i in inputs[:3])
    return math.prod(q[:-1]) * k[-2] * (q[-1] + v[-1])  # q·kᵀ and attn·v


def count_macs(model: nn.Module, img_size: int, in_channels: int = 3) -> int:
    """Multiply-accumulates of one forward pass at img_size² (conv, linear, norms, attention matmuls)."""
    from mmengine.analysis import FlopAnalyzer
    was_training = model.training
    model.eval()
    analyzer = FlopAnalyzer(model, (torch.randn(1, in_channels, img_size, img_size),))
    analyzer.set_op_handle("aten::scaled_dot_product_attention", _sdpa_macs)
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    total = analyzer.total()
    model.train(was_training)
    return total


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def paired_throughput(models: dict[str, nn.Module], x: torch.Tensor, rounds: int, iters: int,
                      amp: bool = False) -> dict[str, float]:
    """Images/s per model: interleaved rounds of `iters` forwards each, median round."""
    times: dict[str, list[float]] = {name: [] for name in models}
    autocast = torch.autocast(x.device.type, dtype=torch.float16 if x.device.type == "cuda" else torch.bfloat16,
                              enabled=amp)
    with torch.inference_mode(), autocast:
        for model in models.values():  # warm-up
            model(x)
        for _ in range(rounds):
            for name, model in models.items():
                if x.device.type == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
                for _ in range(iters):
                    model(x)
                if x.device.type == "cuda":
                    torch.cuda.synchronize()
                times[name].append(time.perf_counter() - start)
    return {name: iters * x.shape[0] / statistics.median(t) for name, t in times.items()}


def timm_tiny_vit(arch: str, img_size: int) -> nn.Module:
    """timm's model for the same variant and resolution (random init; weights are copied from ours)."""
    import timm
    return timm.create_model(f"tiny_vit_{arch}_{img_size}", num_classes=1000)


def benchmark(archs: Sequence[str], img_size: int, batch: int, rounds: int, iters: int, device: str,
              amp: bool, write: bool = True) -> pd.DataFrame:
    """One row per arch: ours vs timm, with the paper's Tab. 4 figures beside."""
    rows = []
    for arch in archs:
        ours = TinyViT(arch, img_size=img_size, num_classes=1000).eval()
        ref = timm_tiny_vit(arch, img_size).eval()
        ref.load_state_dict(ours.state_dict())
        params, macs = count_params(ours), count_macs(ours, img_size)
        ours.to(device)
        ref.to(device)
        x = torch.randn(batch, 3, img_size, img_size, device=device)
        speed = paired_throughput({"ours": ours, "timm": ref}, x, rounds, iters, amp)
        paper = PAPER_TAB4.get((arch, img_size), (None, None, None))
        row = {"model": f"TinyViT-{arch.upper()}", "img_size": img_size, "params_m": params / 1e6,
               "macs_g": macs / 1e9, "ours_img_s": speed["ours"], "timm_img_s": speed["timm"],
               "speedup_vs_timm": speed["ours"] / speed["timm"], "paper_params_m": paper[0],
               "paper_macs_g": paper[1], "paper_v100_img_s": paper[2]}
        rows.append(row)
        if write:
            setting = {"img_size": img_size, "batch": batch, "threads": torch.get_num_threads(),
                       "device": device, "amp": amp, "rounds": rounds, "iters": iters}
            write_record(make_record(
                "throughput", dataset="synthetic", split="none", setting=setting,
                backbone={"name": f"tinyvit-{arch}", "source": "random"},
                metrics={k: row[k] for k in ("params_m", "macs_g", "ours_img_s", "timm_img_s", "speedup_vs_timm")}))
        print(pd.DataFrame([row]).to_string(index=False, float_format=lambda v: f"{v:.3g}"), flush=True)
    return pd.DataFrame(rows)


def main(argv: Sequence[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+", default=["5m", "11m", "21m"], choices=["5m", "11m", "21m"])
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=None, help="default: 16 on CPU, 256 on GPU")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iters", type=int, default=2, help="forwards per timed round")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--amp", action="store_true", help="autocast (fp16 on GPU); default on for cuda")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--quick", action="store_true", help="5M only, batch 8, 3 rounds")
    parser.add_argument("--no-record", action="store_true", help="print only, write no result records")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    gpu = args.device.startswith("cuda")
    batch = args.batch or (256 if gpu else 16)
    archs, rounds = args.archs, args.rounds
    if args.quick:
        archs, batch, rounds = ["5m"], min(batch, 8), 3
    table = benchmark(archs, args.img_size, batch, rounds, args.iters, args.device, args.amp or gpu,
                      write=not args.no_record)
    print(f"\nTinyViT vs timm tiny_vit_* — batch {batch}, {args.img_size}², {torch.get_num_threads()} threads, "
          f"{args.device}{' AMP' if args.amp or gpu else ''}")
    print(table.to_markdown(index=False, floatfmt=".3g"))
    return table


if __name__ == "__main__":
    main()
