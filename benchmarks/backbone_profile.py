"""Where the CPU time of one forward goes, ours vs timm at its best, and the speed-up that bounds.

    python -m benchmarks.backbone_profile [--archs 5m 21m] [--img-size 224] [--batch 16] [--rounds 5] [--threads 1]

Each contender (ours after `backbones.inference.optimize`, ours plain, tuned timm with each attention kernel; same
weights, same batch) is profiled with
`torch.profiler` for one forward per round, in interleaved rounds. Every top-level aten op (an aten or mkldnn op that no
other such op called) falls into a category by its name (convolutions also by their weight's shape; our oneDNN
linear / conv calls count as linear / conv with the GELU or residual add fused in); its inclusive wall time counts
there, and the wall time between top-level ops (Python, dispatch) is a category of its own. Each category
keeps its fastest round (load from other processes only ever slows one), and the total is their sum.

The bound: both models run the same math in the same oneDNN/MKL kernels (linear layers, convolutions, attention
matmuls + softmax); if ours spent nothing outside them, ours / timm best would be T_timm_best / X_ours, X_ours our
time in those kernels (`bound_speedup_kernels`). `bound_speedup_no_overhead` keeps norms, activations and
element-wise ops, and drops only layout copies, the other ops and the time between ops.
"""
from __future__ import annotations

import argparse
import time
from typing import Any, Sequence

import pandas as pd
import torch
from torch.profiler import ProfilerActivity, profile

from backbones import TinyViT
from backbones.inference import optimize
from benchmarks.backbone_speed import Runner, channels_last_input, timm_tiny_vit, tune_timm
from benchmarks.common import add_common_flags, interleave, runtime_setting, start_run
from contracts.records import backbone_block, make_record, write_record

KERNELS = ("linear", "conv 1x1", "conv depth-wise", "conv dense", "attention matmul+softmax")
OVERHEAD = ("layout copies", "other ops", "between ops")
CATEGORIES = (*KERNELS, "LayerNorm", "GELU", "element-wise", *OVERHEAD)
_BY_NAME = {
    "linear": ("linear", "addmm", "mm"),
    "attention matmul+softmax": ("matmul", "bmm", "baddbmm", "scaled_dot_product_attention", "softmax", "_softmax",
                                 "softmax_"),
    "LayerNorm": ("layer_norm", "native_layer_norm"),
    "GELU": ("gelu", "gelu_"),
    "element-wise": ("add", "add_", "mul", "mul_", "div", "div_", "sub", "sub_"),
    "layout copies": ("reshape", "contiguous", "permute", "transpose", "view", "pad", "constant_pad_nd", "cat",
                      "clone", "copy_", "unbind", "split", "split_with_sizes", "flatten", "unflatten", "unsqueeze",
                      "slice",
                      "select", "as_strided", "expand", "t", "narrow", "to", "_to_copy"),
}
_CATEGORY_OF = {f"aten::{op}": cat for cat, ops in _BY_NAME.items() for op in ops} | {
    "mkldnn::_linear_pointwise": "linear"}  # ours: oneDNN linear with its GELU / residual add fused in
_CONVOLUTIONS = ("aten::conv2d", "mkldnn::_convolution_pointwise")
_PREFIXES = ("aten::", "mkldnn::")
# arguments of the conv + residual form of `backbones.inference.OneDNNConv`'s call (its unary form has 10)
_CONV_BINARY_ARGS = 13


def op_category(name: str, input_shapes: Sequence[Sequence[int]]) -> str:
    """The category of a top-level op; a convolution's from its weight (O, I/groups, kh, kw), which follows the
    input (and, in oneDNN's conv + residual add, its 13-argument form, the residual)."""
    if name in _CONVOLUTIONS:
        weight = input_shapes[2] if len(input_shapes) == _CONV_BINARY_ARGS else input_shapes[1]
        if weight[2:] == [1, 1]:
            return "conv 1x1"
        return "conv depth-wise" if weight[1] == 1 else "conv dense"
    return _CATEGORY_OF.get(name, "other ops")


def _top_level(events: Any) -> list:
    """The aten / mkldnn ops no other such op called (their inclusive times add up without double counting)."""
    def nested(e: Any) -> bool:
        p = e.cpu_parent
        while p is not None:
            if p.name.startswith(_PREFIXES):
                return True
            p = p.cpu_parent
        return False
    return [e for e in events if e.name.startswith(_PREFIXES) and not nested(e)]


def category_seconds(run: Runner, x: torch.Tensor) -> dict[str, float]:
    """Seconds per category of one profiled forward `run(x)`; 'between ops' is the forward's wall time not
    inside any top-level aten op."""
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        t0 = time.perf_counter()
        run(x)
        wall = time.perf_counter() - t0
    seconds = dict.fromkeys(CATEGORIES, 0.0)
    for e in _top_level(prof.events()):
        seconds[op_category(e.name, e.input_shapes)] += e.cpu_time_total / 1e6
    seconds["between ops"] = max(wall - sum(seconds.values()), 0.0)
    return seconds


def profile_split(runners: dict[str, Runner], x: torch.Tensor, rounds: int, label: str = "") -> pd.DataFrame:
    """(category × runner) seconds: a warm-up call each, then interleaved profiled rounds
    (`benchmarks.common.interleave`); per category the fastest round counts."""
    with torch.inference_mode():
        for run in runners.values():
            run(x)
        splits = interleave({n: (lambda _r, run=run: category_seconds(run, x)) for n, run in runners.items()},
                            rounds, label=f"{label} profile")
    best = {n: {c: min(s[c] for s in r) for c in CATEGORIES} for n, r in splits.items()}
    return pd.DataFrame(best).loc[list(CATEGORIES)]


def bounds(ours: pd.Series, timm_best: pd.Series) -> dict[str, float]:
    """Totals, kernel times and the speed-up bounds (module doc) from two category columns (seconds)."""
    t_ours, t_timm = ours.sum(), timm_best.sum()
    x_ours, x_timm = ours[list(KERNELS)].sum(), timm_best[list(KERNELS)].sum()
    return {"ours_s": t_ours, "timm_best_s": t_timm, "profile_speedup": t_timm / t_ours,
            "ours_kernels_s": x_ours, "timm_best_kernels_s": x_timm,
            "bound_speedup_kernels": t_timm / x_ours,
            "bound_speedup_no_overhead": t_timm / (t_ours - ours[list(OVERHEAD)].sum())}


def profile_arch(arch: str, img_size: int, batch: int, rounds: int) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Category table (seconds; ours = `optimize`d for this CPU, ours plain, timm tuned per kernel) and the
    record's metrics for one arch."""
    plain = TinyViT(arch, img_size=img_size, num_classes=1000).eval()
    runners: dict[str, Runner] = {"ours": optimize(plain, device="cpu"), "ours plain": plain}
    for kernel in ("sdpa", "matmul"):
        model = timm_tiny_vit(arch, plain.window_sizes, plain.num_classes).eval()
        model.load_state_dict(plain.state_dict())
        runners[f"timm tuned {kernel}"] = channels_last_input(tune_timm(model, kernel))
    table = profile_split(runners, torch.randn(batch, 3, img_size, img_size), rounds, f"TinyViT-{arch.upper()}")
    timm_best = min((c for c in table.columns if c.startswith("timm")), key=lambda c: table[c].sum())
    metrics: dict[str, Any] = bounds(table["ours"], table[timm_best])
    metrics["ours_split"] = (table["ours"] / table["ours"].sum()).to_dict()
    metrics["timm_best_split"] = (table[timm_best] / table[timm_best].sum()).to_dict()
    return table.rename(columns={timm_best: f"{timm_best} (best)"}), metrics


def profile_archs(archs: Sequence[str], img_size: int, batch: int, rounds: int, *, write: bool = True,
                  records_dir: str | None = None) -> pd.DataFrame:
    """Print each arch's category table and bounds, write an `inference_profile` record each; rows of bounds."""
    rows = []
    for arch in archs:
        table, metrics = profile_arch(arch, img_size, batch, rounds)
        shares = table[["ours", next(c for c in table.columns if c.endswith("(best)"))]]
        shown = pd.concat([table * 1e3, (shares / shares.sum() * 100).add_suffix(" %")], axis=1)
        shown.loc["total"] = shown.sum()
        print(f"\nTinyViT-{arch.upper()} profile, ms per forward (batch {batch}, {img_size}², "
              f"{torch.get_num_threads()} threads; per category the fastest of {rounds} rounds):")
        print(shown.to_markdown(floatfmt=".1f"))
        numbers = {k: v for k, v in metrics.items() if not k.endswith("_split")}
        print("  ours: " + ", ".join(f"{k} {v:.3g}" for k, v in numbers.items()))
        timm_best = table[next(c for c in table.columns if c.endswith("(best)"))]
        print("  ours plain: " + ", ".join(f"{k} {v:.3g}" for k, v in bounds(table["ours plain"], timm_best).items()))
        rows.append({"model": f"TinyViT-{arch.upper()}", **numbers})
        if write:
            setting = {"img_size": img_size, "batch": batch, **runtime_setting("cpu"), "rounds": rounds}
            write_record(make_record("inference_profile", dataset="synthetic", split="none", setting=setting,
                                     backbone=backbone_block(f"tinyvit-{arch}", "random"), metrics=metrics),
                         records_dir)
    return pd.DataFrame(rows)


def main(argv: Sequence[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.backbone_profile", description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+", default=["5m", "21m"], choices=["5m", "11m", "21m"])
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=16)
    add_common_flags(parser, quick="5M only, batch 4, 2 rounds", rounds=5)
    args = parser.parse_args(argv)
    start_run(args)
    archs, batch, rounds = (["5m"], min(args.batch, 4), 2) if args.quick else (args.archs, args.batch, args.rounds)
    return profile_archs(archs, args.img_size, batch, rounds, write=not args.no_record, records_dir=args.records)

if __name__ == "__main__":
    main()
