"""What every benchmark script shares: its common flags, the timing harness, the device sync, the MAC and parameter
count, and the description of the run.

    parser = argparse.ArgumentParser(prog="python -m benchmarks.NAME")
    add_common_flags(parser, quick="128 px, 1 round", device=True, rounds=3, warmup=1)
    args = parser.parse_args(argv)
    device = start_run(args)                     # --threads, --allocator, --device checked; prints the machine
    timings = timed_rounds({"ours": step, "reference": ref_step}, args.rounds, warmup=args.warmup, device=device,
                           label="NAME")
    timings.best(), timings.median()             # seconds per call, per runner
    save_record(make_record(...), args)          # into --records, prints its path; nothing with --no-record

The timing protocol, one for all scripts: every runner is called `warmup` times (compiles, autotunes, fills the
caches), then in each of `rounds` rounds every runner in turn is timed for `calls` calls with the device
synchronised before and after, so that load from other processes falls on all of them alike. A runner's figure is
its fastest round (`Timings.best`, as `timeit`: load only ever slows a round) or its median round. The clock is
the wall clock or the process's CPU time (`--clock cpu`, CPU only: with `--threads 1` it is compute time, which
other jobs on a shared machine do not inflate as they do wall time). Each round prints one progress line (every
runner's figure, time elapsed, ETA) to stderr.
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar

import torch
from torch import nn

from contracts.provenance import machine_description
from contracts.records import write_record
from contracts.runtime import allocator_description, keep_freed_memory

Figure = TypeVar("Figure")
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}
ALLOCATORS = ("heap", "default")


# --- the flags -------------------------------------------------------------------------------------------------

def add_common_flags(parser: argparse.ArgumentParser, *, quick: str, device: bool = False,
                     rounds: int | str | None = None, warmup: int | str | None = None,
                     clock: bool = False) -> argparse.ArgumentParser:
    """Add the flags every benchmark script shares, with one name and one meaning each:

    always `--quick` (a smoke run; `quick` says what it shrinks), `--records DIR`, `--no-record`, `--threads N`,
    `--allocator heap|default`; where the script has them `--device` (`device=True`), `--rounds N` and
    `--warmup N` (`rounds` / `warmup`: the default, or a text describing a default the script resolves itself,
    the flag's value then being None), `--clock wall|cpu` (`clock=True`)."""
    parser.add_argument("--quick", action="store_true", help=f"smoke run: {quick}")
    parser.add_argument("--records", default=None, metavar="DIR", help="result records folder (default "
                        "results/records)")
    parser.add_argument("--no-record", action="store_true", help="print only, write no result records")
    parser.add_argument("--threads", type=int, default=None, metavar="N", help="torch CPU threads (default: torch's)")
    parser.add_argument("--allocator", choices=ALLOCATORS, default="heap", help="heap: freed memory kept in the heap "
                        "(`contracts.runtime.keep_freed_memory`; without it a large tensor is page-faulted in on "
                        "every allocation); default: glibc as it comes")
    if device:
        parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                            help="cpu, cuda, cuda:N (default: cuda when available)")
    for flag, default, what in (("--rounds", rounds, "interleaved timed rounds"),
                                ("--warmup", warmup, "untimed calls of each runner before the rounds")):
        if default is not None:
            parser.add_argument(flag, type=int, default=default if isinstance(default, int) else None, metavar="N",
                                help=f"{what} (default {default})")
    if clock:
        parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall", help="cpu: time the rounds by this "
                            "process's CPU time (CPU only; with --threads 1 it is compute time, which other jobs on "
                            "a shared machine do not inflate as they do wall time)")
    return parser


def forwarded_flags(args: argparse.Namespace) -> list[str]:
    """The always-present common flags of `args` as a command line, to hand on to another benchmark script."""
    argv = ["--quick"] if args.quick else []
    if args.records is not None:
        argv += ["--records", str(args.records)]
    if args.no_record:
        argv.append("--no-record")
    if args.threads:
        argv += ["--threads", str(args.threads)]
    if args.allocator != "heap":
        argv += ["--allocator", args.allocator]
    return argv


def start_run(args: argparse.Namespace) -> torch.device:
    """Apply `--threads` and `--allocator`, check `--device` and `--clock`, print the run's description; the device
    (the CPU for a script without `--device`)."""
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.allocator == "heap":
        keep_freed_memory()
    device = torch.device(getattr(args, "device", "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {device}: no CUDA device is visible")
    if getattr(args, "clock", "wall") == "cpu" and device.type != "cpu":
        raise SystemExit("--clock cpu times CPU work only (pass --device cpu)")
    print(describe_run(device), flush=True)
    return device


def runtime_setting(device: torch.device | str = "cpu") -> dict[str, Any]:
    """What a timing depends on besides the machine (which every record carries): device, CPU threads, allocator,
    torch version, and on CUDA whether cuDNN autotunes."""
    setting = {"device": str(device), "threads": torch.get_num_threads(), "allocator": allocator_description(),
               "torch": torch.__version__}
    if torch.device(device).type == "cuda":
        setting["cudnn_benchmark"] = torch.backends.cudnn.benchmark
    return setting


def describe_run(device: torch.device | str = "cpu") -> str:
    """One line: the machine, device, CPU threads and allocator, e.g. '2-core AMD EPYC, no GPU, torch 2.x; device
    cpu, threads 1, allocator heap (freed memory kept)'."""
    setting = runtime_setting(device)
    return f"{machine_description()}; " + ", ".join(f"{k} {setting[k]}" for k in ("device", "threads", "allocator"))


def save_record(record: Mapping[str, Any], args: argparse.Namespace, show: bool = True) -> Path | None:
    """Write `record` into `--records` (validated, atomic) and, if `show`, print a line 'record: PATH'; nothing
    written with `--no-record`. The path, or None."""
    path = None if args.no_record else write_record(record, args.records)
    if show:
        print(f"record: {path or 'not written (--no-record)'}", flush=True)
    return path


# --- timing ----------------------------------------------------------------------------------------------------

def sync(device: torch.device | str | None) -> None:
    """Wait for the work queued on a CUDA device; nothing elsewhere (CPU ops finish before they return)."""
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def stopwatch(fn: Callable[[], Any], *, calls: int = 1, device: torch.device | str | None = None,
              clock: str = "wall") -> float:
    """Seconds per call of `calls` calls of `fn()`, the device synchronised before the first and after the last."""
    now = CLOCKS[clock]
    sync(device)
    start = now()
    for _ in range(calls):
        fn()
    sync(device)
    return (now() - start) / calls


def interleave(measures: Mapping[str, Callable[[int], Figure]], rounds: int, *, label: str | None = None,
               unit: str = "s") -> dict[str, list[Figure]]:
    """Round after round, every measure in turn, called with the round's index (from 0); each one's figures, one
    per round. With a `label`, one progress line per round on stderr: the round's figures (in `unit`; shown when
    they are numbers), time elapsed and ETA."""
    figures: dict[str, list[Figure]] = {name: [] for name in measures}
    start = time.perf_counter()
    for r in range(rounds):
        for name, measure in measures.items():
            figures[name].append(measure(r))
        if label is not None:
            elapsed = time.perf_counter() - start
            last = {name: f[-1] for name, f in figures.items()}
            shown = ", ".join(f"{name} {_number(v)} {unit}" for name, v in last.items()
                              if isinstance(v, (int, float)))
            print(f"[{label}] round {r + 1}/{rounds}: {shown + ' ' if shown else ''}({elapsed:.0f} s, ETA "
                  f"{elapsed / (r + 1) * (rounds - r - 1):.0f} s)", file=sys.stderr, flush=True)
    return figures


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


@dataclass(frozen=True)
class Timings:
    """Seconds per call of each runner, one figure per round."""

    seconds: dict[str, list[float]]

    def best(self) -> dict[str, float]:
        """Each runner's fastest round."""
        return {name: min(s) for name, s in self.seconds.items()}

    def median(self) -> dict[str, float]:
        """Each runner's median round."""
        return {name: statistics.median(s) for name, s in self.seconds.items()}


def timed_rounds(runners: Mapping[str, Callable[[], Any]], rounds: int, *, warmup: int = 1, calls: int = 1,
                 device: torch.device | str | None = None, clock: str = "wall",
                 label: str | None = None) -> Timings:
    """The timing protocol (module doc): `warmup` untimed calls of each runner, then `rounds` interleaved rounds of
    `calls` timed calls each, the device synchronised around every runner's turn."""
    for run in runners.values():
        for _ in range(warmup):
            run()
    turns = {name: (lambda _round, run=run: stopwatch(run, calls=calls, device=device, clock=clock))
             for name, run in runners.items()}
    return Timings(interleave(turns, rounds, label=label))


class StreamRate:
    """Steady-state items/s of a stream of batches (a data loader, an epoch loop): call `update(n)` after each batch
    of n items (a `save_logits.save_epoch` progress sink), `stop()` after the last. The clock starts at the end
    of batch `warmup` (device synchronised), so start-up (workers, first kernels) is left out; it stops at `stop()`
    (device synchronised)."""

    def __init__(self, warmup: int = 1, device: torch.device | str | None = None) -> None:
        if warmup < 1:
            raise ValueError(f"warmup={warmup}: the clock starts at the end of a batch, so at least 1")
        self.warmup, self.device = warmup, device
        self.batches, self.items, self.start, self.seconds = 0, 0, 0.0, math.nan

    def update(self, n: int) -> None:
        self.batches += 1
        if self.batches == self.warmup:
            sync(self.device)
            self.start = time.perf_counter()
        elif self.batches > self.warmup:
            self.items += n

    def stop(self) -> None:
        sync(self.device)
        self.seconds = time.perf_counter() - self.start

    def rate(self) -> float:
        """Items/s after the warm-up batches; an error if the stream had none (or `stop` was not called)."""
        if self.items == 0 or math.isnan(self.seconds):
            raise RuntimeError(f"no timed batches: {self.batches} batches seen, {self.warmup} of them warm-up"
                               + ("" if not math.isnan(self.seconds) else ", stop() not called"))
        return self.items / self.seconds


# --- model size ------------------------------------------------------------------------------------------------

def _sdpa_macs(inputs: list, outputs: list) -> int:
    from mmengine.analysis.jit_handles import get_shape
    q, k, v = (get_shape(i) for i in inputs[:3])
    return math.prod(q[:-1]) * k[-2] * (q[-1] + v[-1])  # q·kᵀ and attn·v


def count_macs(model: nn.Module, img_size: int, in_channels: int = 3) -> int:
    """Multiply-accumulates of one forward pass on one img_size² image (conv, linear, norms, attention matmuls):
    `mmengine.analysis`'s fvcore-style counter, with a handle for SDPA, which it does not count itself."""
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
    """Number of parameters (trainable or not)."""
    return sum(p.numel() for p in model.parameters())

