"""Backbone benchmark: params, MACs and throughput of our TinyViT vs timm's `tiny_vit_*`, stock and at its best.

    python -m benchmarks.backbone_speed [--archs 5m 11m 21m] [--img-size 224] [--batch 16] [--threads 2]
                                        [--compile] [--ablation] [--onnxruntime] [--device cuda --amp bf16] [--quick]
                                        [--clock cpu --threads 1]

Contenders, all holding the same weights, fed the same batch, measured in interleaved rounds, each scored by its
fastest round (as `timeit` does: load from other processes only ever slows a round, and on a shared machine it
swings by 2-3x within minutes, which a median of a few rounds does not absorb):
- `ours`: our TinyViT after the inference step, `backbones.inference.optimize(model, device=..., amp=...)`, with the
  kernels it picks for this device kind (logged, and kept in the record's setting);
- `ours plain`: the model itself (one forward, as it trains: channels-last convs, BN unfused, matmul attention);
- `timm`: stock `tiny_vit_*` (NCHW input, BN unfused, timm's default attention);
- `timm tuned`: timm with its own `ConvNorm.fuse()` applied to all ConvNorms, channels-last weights and input,
  once with each attention kernel (SDPA / matmuls; `fused_attn`), the faster counting;
- with `--compile`: `torch.compile` of our plain model and of tuned timm (same attention kernel as ours; on CPU with
  inductor's weight freezing, which gives both oneDNN's fused calls and folded BatchNorm);
- with `--onnxruntime` (CPU): our model exported by `backbones.export_onnx`, run by onnxruntime's CPU provider;
- with `--ablation`: `optimize` with every option off (the model's own ops), then each switched on in turn
  (`ablation_steps`: on CPU +fused BN → +oneDNN calls; on GPU +fused BN → +SDPA on windows → +1×1 GEMMs →
  +half-precision LayerNorm under autocast), each one's gain = its row over the row before: what
  `backbones.inference.MEASURED` is set from.
`timm best` is the fastest timm configuration measured; `speedup_vs_timm_best` = our fastest over it.
Every contender runs in one process with freed memory kept in the heap (`--allocator heap`, the default;
`contracts.runtime`): with glibc's default each large activation is page-faulted in on every allocation, which on
CPU cost eager models (ours and timm's) up to a third of their time and compiled ones (whose buffers inductor
reuses) less; `--allocator default` measures that.
On a GPU (`--device cuda`) it follows paper Tab. 4's protocol (one GPU, AMP fp16 by default, batch 256), with
cuDNN autotuning on for every contender as timm's own `benchmark.py` runs (`--no-cudnn-benchmark`: off).
`--clock cpu` times rounds by the process's CPU time: with `--threads 1` that is compute time, robust where other
jobs share the cores (wall time there swings by more than the differences measured).
Where the CPU time goes, per op category: `python -m benchmarks.backbone_profile`.
MACs come from `mmengine.analysis` (fvcore-style counter) with a handle for SDPA, which it does not count itself.
"""
from __future__ import annotations

import argparse
import dataclasses
import time
from functools import partial
from typing import Any, Callable, Sequence

import pandas as pd
import torch
from torch import nn

from backbones import TinyViT
from backbones.inference import AMP_DTYPES as INFERENCE_AMP, optimize
from benchmarks.common import add_common_flags, count_macs, count_params, runtime_setting, start_run, timed_rounds
from contracts.records import backbone_block, make_record, write_record
from contracts.runtime import allocator_description, cudnn_autotune

# Paper Tab. 4 (V100 GPU, throughput measured with LeViT's code): params (M), MACs (G), images/s.
PAPER_TAB4 = {
    ("5m", 224): (5.4, 1.3, 3060), ("11m", 224): (11.0, 2.0, 2468), ("21m", 224): (21.0, 4.3, 1571),
    ("21m", 384): (21.0, 13.8, 394), ("21m", 512): (21.0, 27.0, 167),
}
AMP_DTYPES = {"none": None, "fp16": torch.float16, "bf16": torch.bfloat16}
Runner = Callable[[torch.Tensor], Any]


def paired_throughput(runners: dict[str, Runner], x: torch.Tensor, rounds: int, iters: int,
                      amp_dtype: torch.dtype | None = None, label: str = "", clock: str = "wall") -> dict[str, float]:
    """Images/s per runner (`benchmarks.common.timed_rounds`): a warm-up call each (compiles what is compiled),
    then interleaved rounds of `iters` calls timed by `clock`; the fastest round counts."""
    autocast = torch.autocast(x.device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None)
    with torch.inference_mode(), autocast:
        timings = timed_rounds({n: partial(run, x) for n, run in runners.items()}, rounds, warmup=1, calls=iters,
                               device=x.device, clock=clock, label=label)
    return {n: x.shape[0] / s for n, s in timings.best().items()}


def timm_tiny_vit(arch: str, window_sizes: Sequence[int], num_classes: int = 1000) -> nn.Module:
    """timm's model for the variant and windows (random init; the benchmark copies our weights into it)."""
    import timm
    return timm.create_model(f"tiny_vit_{arch}_224", num_classes=num_classes, window_sizes=tuple(window_sizes))


def tune_timm(model: nn.Module, attention: str) -> nn.Module:
    """timm at its best in eager mode: every ConvNorm replaced by its own `fuse()`, channels-last weights, and
    the attention kernel chosen through timm's `fused_attn` flag ('sdpa' or 'matmul')."""
    from timm.models.tiny_vit import Attention, ConvNorm
    for name, module in list(model.named_modules()):
        if isinstance(module, ConvNorm):
            model.set_submodule(name, module.fuse())
        elif isinstance(module, Attention):
            module.fused_attn = attention == "sdpa"
    return model.to(memory_format=torch.channels_last)


def channels_last_input(model: nn.Module) -> Runner:
    """`model` fed channels-last memory (tuned timm's input)."""
    return lambda x: model(x.contiguous(memory_format=torch.channels_last))


def _compiled(model: nn.Module, mode: str, device: str, notes: list[str]) -> Runner | None:
    """`torch.compile`; on CPU in the default mode with inductor's weight freezing, which is what lets it pre-pack
    the weights into oneDNN's fused linear / conv calls (timm's best CPU configuration; inductor takes a mode or
    options, not both)."""
    try:
        if device == "cpu" and mode == "default":
            return torch.compile(model, options={"freezing": True})
        return torch.compile(model, mode=None if mode == "default" else mode)
    except Exception as err:  # noqa: BLE001 - "where it works": report and go on
        notes.append(f"torch.compile failed: {type(err).__name__}: {err}")
        return None


def _ort_runner(model: TinyViT, img_size: int, notes: list[str]) -> Runner | None:
    """onnxruntime (CPU provider) on our exported classifier, dynamic batch; None with a note if unavailable."""
    try:
        from backbones.export_onnx import export_bytes, ort_session
        session = ort_session(export_bytes(model, img_size, dynamic_batch=True))
    except ImportError as err:
        notes.append(f"onnxruntime row skipped ({err}); install the onnx extra")
        return None
    return lambda x: session.run(None, {"image": x.numpy()})


def _amp_name(amp_dtype: torch.dtype | None) -> str | None:
    return next((name for name, dtype in INFERENCE_AMP.items() if dtype == amp_dtype), None)


# `--ablation`: `optimize` with every option off, then switched on one at a time (`ablation_steps`)
ABLATION_OFF: dict[str, Any] = dict(fuse_bn=False, attention="map", onednn=False, pointwise_gemm=False,
                                    half_norm=False)


def ablation_steps(gpu: bool) -> list[tuple[str, dict[str, Any], str | None]]:
    """(row, options switched on, the record's gain key) from every `optimize` option off (the model's own ops) to
    all of this device's on (the last row): fused BN, then on CPU the oneDNN calls, on GPU SDPA on windows, 1×1
    GEMMs and the half-precision norm."""
    steps: list[tuple[str, dict[str, Any], str | None]] = [
        ("ours: none", {}, None), ("ours: +fused BN", dict(fuse_bn=True), "gain_fuse_bn")]
    if gpu:
        return steps + [("ours: +SDPA windows", dict(attention="windows"), "gain_attention"),
                        ("ours: +1x1 GEMMs", dict(pointwise_gemm=True), "gain_pointwise_gemm"),
                        ("ours: +half LayerNorm", dict(half_norm=True), "gain_half_norm")]
    return steps + [("ours: +oneDNN", dict(onednn=True), "gain_onednn")]


def contenders(ours: TinyViT, img_size: int, device: str, *, compile_mode: str | None, ablation: bool,
               onnxruntime: bool, notes: list[str], amp_dtype: torch.dtype | None = None) -> dict[str, Runner]:
    """Every runner for `ours`'s arch, each holding `ours`'s weights (`ours` is moved to `device`): `ours` is
    `optimize(ours)` for the device and autocast dtype, its pick noted in `notes`."""
    gpu = device.startswith("cuda")
    arch = ours.arch
    ours.eval().to(device)
    state = ours.state_dict()
    amp = _amp_name(amp_dtype)
    fast = optimize(ours, device=device, amp=amp, logger="silent")
    notes.append(f"ours = optimize({fast.inference_options})")
    timm_stock = timm_tiny_vit(arch, ours.window_sizes, ours.num_classes).eval()
    timm_stock.load_state_dict(state)
    runners: dict[str, Runner] = {"ours": fast, "ours plain": ours, "timm": timm_stock.to(device)}
    tuned: dict[str, nn.Module] = {}
    for kernel in ("sdpa", "matmul"):
        model = timm_tiny_vit(arch, ours.window_sizes, ours.num_classes).eval()
        model.load_state_dict(state)
        tuned[kernel] = tune_timm(model, kernel).to(device)
        runners[f"timm tuned {kernel}"] = channels_last_input(tuned[kernel])
    if ablation:
        options: dict[str, Any] = dict(ABLATION_OFF)
        for name, step, _ in ablation_steps(gpu):
            options.update(step)
            runners[name] = optimize(ours, device=device, amp=amp, logger="silent", **options)
    if compile_mode:
        compiled = _compiled(ours, compile_mode, device, notes)
        timm_compiled = _compiled(tuned["sdpa" if gpu else "matmul"], compile_mode, device, notes)
        if compiled is not None and timm_compiled is not None:
            runners["ours compiled"] = compiled
            runners["timm tuned compiled"] = channels_last_input(timm_compiled)
    if onnxruntime:
        if gpu:
            notes.append("onnxruntime row is CPU-only; skipped on cuda")
        else:
            ort = _ort_runner(ours, img_size, notes)
            if ort is not None:
                runners["onnxruntime"] = ort
    return runners


def summarize(speed: dict[str, float]) -> dict[str, float]:
    """The record's metrics from the measured images/s."""
    timm_rows = {k: v for k, v in speed.items() if k.startswith("timm")}
    tuned = max(v for k, v in speed.items() if k.startswith("timm tuned") and "compiled" not in k)
    ours_best = max(v for k, v in speed.items() if k in ("ours", "ours compiled"))
    m = {"ours_img_s": speed["ours"], "ours_plain_img_s": speed["ours plain"], "timm_img_s": speed["timm"],
         "speedup_vs_timm": speed["ours"] / speed["timm"], "gain_optimize": speed["ours"] / speed["ours plain"],
         "timm_tuned_sdpa_img_s": speed["timm tuned sdpa"], "timm_tuned_matmul_img_s": speed["timm tuned matmul"],
         "timm_tuned_img_s": tuned, "speedup_vs_timm_tuned": speed["ours"] / tuned,
         "timm_best_img_s": max(timm_rows.values()), "speedup_vs_timm_best": ours_best / max(timm_rows.values())}
    if "ours compiled" in speed:
        m.update(ours_compiled_img_s=speed["ours compiled"], timm_compiled_img_s=speed["timm tuned compiled"],
                 speedup_compiled=speed["ours compiled"] / speed["timm tuned compiled"])
    if "onnxruntime" in speed:
        m.update(ort_img_s=speed["onnxruntime"], ort_over_ours=speed["onnxruntime"] / speed["ours"])
    if "ours: none" in speed:
        steps = ablation_steps(gpu="ours: +1x1 GEMMs" in speed)
        m["ablation_base_img_s"] = speed["ours: none"]
        for (before, _, _), (name, _, gain) in zip(steps, steps[1:]):
            m[gain] = speed[name] / speed[before]
        if "ours compiled" in speed:
            m["gain_compile"] = speed["ours compiled"] / speed["ours plain"]
    return m


def benchmark(archs: Sequence[str], img_size: int, batch: int, rounds: int, iters: int, device: str,
              amp: str = "none", *, compile_mode: str | None = None, ablation: bool = False,
              onnxruntime: bool = False, clock: str = "wall", write: bool = True,
              records_dir: str | None = None) -> pd.DataFrame:
    """One row per arch (ours vs timm stock / tuned / best, ablation gains), plus a per-contender table printed."""
    rows = []
    for arch in archs:
        notes: list[str] = []
        ours = TinyViT(arch, img_size=img_size, num_classes=1000)
        params, macs = count_params(ours), count_macs(ours, img_size)
        runners = contenders(ours, img_size, device, compile_mode=compile_mode, ablation=ablation,
                             onnxruntime=onnxruntime, notes=notes, amp_dtype=AMP_DTYPES[amp])
        x = torch.randn(batch, 3, img_size, img_size, device=device)
        t0 = time.perf_counter()
        speed = paired_throughput(runners, x, rounds, iters, AMP_DTYPES[amp], label=f"TinyViT-{arch.upper()}",
                                  clock=clock)
        paper = PAPER_TAB4.get((arch, img_size), (None, None, None))
        row = {"model": f"TinyViT-{arch.upper()}", "img_size": img_size, "params_m": params / 1e6,
               "macs_g": macs / 1e9, **summarize(speed), "paper_params_m": paper[0], "paper_macs_g": paper[1],
               "paper_v100_img_s": paper[2]}
        rows.append(row)
        print(f"\nTinyViT-{arch.upper()} ({time.perf_counter() - t0:.0f} s incl. warm-up/compile); images/s:")
        print(pd.Series(speed).to_string(float_format=lambda v: f"{v:.4g}"))
        for note in notes:
            print(f"  note: {note}")
        if write:
            setting = {"img_size": img_size, "batch": batch, **runtime_setting(device), "amp": amp,
                       "rounds": rounds, "iters": iters, "compile": compile_mode, "ablation": ablation,
                       "clock": clock, "notes": notes,
                       "inference_options": dataclasses.asdict(runners["ours"].inference_options)}
            metrics = {k: row[k] for k in ("params_m", "macs_g")} | summarize(speed)
            write_record(make_record("throughput", dataset="synthetic", split="none", setting=setting,
                                     backbone=backbone_block(f"tinyvit-{arch}", "random"), metrics=metrics),
                         records_dir)
    return pd.DataFrame(rows)


def build_parser() -> argparse.ArgumentParser:
    """The command line (also parsed by the test of `benchmarks/gpu_session.sh`'s steps)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.backbone_speed", description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+", default=["5m", "11m", "21m"], choices=["5m", "11m", "21m"])
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=None, help="default: 16 on CPU, 256 on GPU")
    parser.add_argument("--iters", type=int, default=2, help="forwards per timed round")
    parser.add_argument("--amp", choices=sorted(AMP_DTYPES), default=None, help="autocast dtype (default: fp16 on "
                        "cuda, none on CPU)")
    parser.add_argument("--compile", nargs="?", const="default", default=None, metavar="MODE",
                        help="also torch.compile ours and tuned timm (MODE: default, reduce-overhead, max-autotune...)")
    parser.add_argument("--ablation", action="store_true", help="switch the inference step's options on one at a time")
    parser.add_argument("--onnxruntime", action="store_true", help="also onnxruntime (CPU) on our exported model")
    parser.add_argument("--cudnn-benchmark", action=argparse.BooleanOptionalAction, default=True,
                        help="CUDA: cuDNN autotuning for every contender, as timm's benchmark.py runs (default on)")
    add_common_flags(parser, quick="5M only, batch 8, 3 rounds", device=True, rounds=5, clock=True)
    return parser


def main(argv: Sequence[str] | None = None) -> pd.DataFrame:
    parser = build_parser()
    args = parser.parse_args(argv)
    start_run(args)
    gpu = args.device.startswith("cuda")
    autotune = cudnn_autotune(args.device, args.cudnn_benchmark)  # None on the CPU
    amp = args.amp or ("fp16" if gpu else "none")
    batch = args.batch or (256 if gpu else 16)
    archs, rounds = args.archs, args.rounds
    if args.quick:
        archs, batch, rounds = ["5m"], min(batch, 8), 3
    table = benchmark(archs, args.img_size, batch, rounds, args.iters, args.device, amp, compile_mode=args.compile,
                      ablation=args.ablation, onnxruntime=args.onnxruntime, clock=args.clock,
                      write=not args.no_record, records_dir=args.records)
    print(f"\nTinyViT vs timm tiny_vit_* — batch {batch}, {args.img_size}², {torch.get_num_threads()} threads, "
          f"{args.device}{'' if amp == 'none' else ' AMP ' + amp}, {args.clock} clock, allocator "
          f"{allocator_description()}{'' if autotune is None else f', cudnn_benchmark {autotune}'}")
    print(table.T.to_markdown(floatfmt=".3g"))
    return table


if __name__ == "__main__":
    main()
