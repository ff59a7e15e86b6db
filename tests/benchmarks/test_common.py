"""benchmarks.common: the timing harness on real (sleeping and computing) runners, the flag set every benchmark
script shares, the record writer, and the MAC / parameter count."""
from __future__ import annotations

import argparse
import importlib
import time

import pytest
import torch
from torch import nn

from benchmarks import common, run
from contracts.provenance import machine_description
from contracts.records import make_record, read_records


def _sleeper(seconds: float, log: list[str], name: str):
    def run_once() -> None:
        log.append(name)
        time.sleep(seconds)
    return run_once


def test_timed_rounds_warm_up_then_interleave_and_time_each_call(capsys) -> None:
    log: list[str] = []
    runners = {"short": _sleeper(0.01, log, "short"), "long": _sleeper(0.04, log, "long")}
    timings = common.timed_rounds(runners, 3, warmup=2, calls=2, device="cpu", label="demo")
    assert log == ["short"] * 2 + ["long"] * 2 + (["short"] * 2 + ["long"] * 2) * 3
    assert {name: len(s) for name, s in timings.seconds.items()} == {"short": 3, "long": 3}
    best, median = timings.best(), timings.median()
    assert all(best[name] <= median[name] for name in runners)
    assert 0.01 <= best["short"] < best["long"] and best["long"] >= 0.04  # seconds per call, not per round
    err = capsys.readouterr().err.splitlines()
    assert [line.split(":")[0] for line in err] == [f"[demo] round {r}/3" for r in (1, 2, 3)]
    assert "short 0.01" in err[0] and "ETA" in err[0]


def test_cpu_clock_counts_computation_and_not_waiting() -> None:
    def compute() -> None:
        sum(i * i for i in range(300_000))
    sleeper = {"sleep": lambda: time.sleep(0.05)}
    wall = common.timed_rounds(sleeper, 2, warmup=0).best()["sleep"]
    cpu = common.timed_rounds(sleeper | {"compute": compute}, 2, warmup=0, clock="cpu").best()
    assert wall >= 0.05 and cpu["sleep"] < 0.01 < cpu["compute"]


def test_stopwatch_and_interleave(capsys) -> None:
    calls = []
    assert common.stopwatch(lambda: (calls.append(1), time.sleep(0.01)), calls=3) >= 0.01 and len(calls) == 3
    figures = common.interleave({"a": lambda r: 10.0 * r, "b": lambda r: -r}, 3)
    assert figures == {"a": [0.0, 10.0, 20.0], "b": [0, -1, -2]}
    split = common.interleave({"profile": lambda r: {"conv": 0.5 + r}}, 2, label="split")  # any figure type
    assert split == {"profile": [{"conv": 0.5}, {"conv": 1.5}]}
    assert capsys.readouterr().err.startswith("[split] round 1/2: (0 s, ETA 0 s)\n[split] round 2/2: (")
    common.sync("cpu")  # nothing to wait for, no error
    common.sync(None)


def test_stream_rate_leaves_out_the_warm_up_batches() -> None:
    stream = common.StreamRate(warmup=1, device="cpu")
    time.sleep(0.5)  # start-up, before the first batch ends: not timed
    stream.update(4)
    for _ in range(3):
        time.sleep(0.01)
        stream.update(4)
    stream.stop()
    # 12 items after the warm-up batch in ≥ 0.03 s; with the warm-up batch it would be ≤ 16 / 0.53 ≈ 30 items/s
    assert 60 < stream.rate() <= 12 / 0.03
    idle = common.StreamRate(warmup=2)
    idle.update(4)
    idle.stop()
    with pytest.raises(RuntimeError, match="no timed batches: 1 batches seen, 2 of them warm-up"):
        idle.rate()
    with pytest.raises(ValueError, match="warmup=0"):
        common.StreamRate(warmup=0)


ALWAYS = ["--quick", "--records", "some/dir", "--no-record", "--threads", "1", "--allocator", "default"]


@pytest.mark.parametrize("name", [*run.SCRIPTS, "vit_objective_speed", "run"])
def test_every_benchmark_script_takes_the_common_flags(name: str) -> None:
    """One name and one meaning per shared flag in every script (`run` hands them on as given)."""
    parser = importlib.import_module(f"benchmarks.{name}").build_parser()
    args = parser.parse_args(ALWAYS)
    assert (args.quick, args.records, args.no_record, args.threads, args.allocator) == (
        True, "some/dir", True, 1, "default")
    assert common.forwarded_flags(args) == ALWAYS
    assert "--results-dir" not in parser.format_help()  # the old name is gone everywhere


def test_optional_flags_and_defaults() -> None:
    parser = common.add_common_flags(argparse.ArgumentParser(), quick="tiny", device=True, rounds=5,
                                     warmup="3, quick 1", clock=True)
    args = parser.parse_args([])
    assert (args.quick, args.records, args.no_record, args.threads, args.allocator) == (False, None, False, None,
                                                                                         "heap")
    assert (args.rounds, args.warmup, args.clock) == (5, None, "wall")
    assert args.device == ("cuda" if torch.cuda.is_available() else "cpu")
    assert common.forwarded_flags(args) == []
    bare = common.add_common_flags(argparse.ArgumentParser(), quick="tiny").parse_args([])
    assert not {"device", "rounds", "warmup", "clock"} & set(vars(bare))
    with pytest.raises(SystemExit):
        parser.parse_args(["--clock", "gpu"])


def test_start_run_applies_threads_and_refuses_a_cpu_clock_elsewhere(capsys) -> None:
    parser = common.add_common_flags(argparse.ArgumentParser(), quick="tiny", device=True, clock=True)
    threads = torch.get_num_threads()
    try:
        assert common.start_run(parser.parse_args(["--device", "cpu", "--threads", "1"])) == torch.device("cpu")
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    line = capsys.readouterr().out.strip()
    assert line.startswith(machine_description()) and "threads 1" in line and "device cpu" in line
    with pytest.raises(SystemExit, match="--clock cpu times CPU work only"):
        common.start_run(parser.parse_args(["--device", "meta", "--clock", "cpu"]))
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit, match="--device cuda: no CUDA device is visible"):
            common.start_run(parser.parse_args(["--device", "cuda"]))


def test_save_record_writes_a_valid_record_unless_told_not_to(tmp_path, capsys) -> None:
    parser = common.add_common_flags(argparse.ArgumentParser(), quick="tiny")
    record = make_record("probe_fit", dataset="synthetic", metrics={"fit_s": 1.5, "top1": 0.5}, backbone=None,
                         setting={"what": "fit", **common.runtime_setting()})
    assert common.save_record(record, parser.parse_args(["--records", str(tmp_path), "--no-record"])) is None
    assert not list(tmp_path.iterdir())
    path = common.save_record(record, parser.parse_args(["--records", str(tmp_path)]))
    (back,) = read_records(tmp_path)
    assert path.parent == tmp_path and back["metrics"] == record["metrics"] and back["setting"]["threads"] >= 1
    assert capsys.readouterr().out.splitlines() == ["record: not written (--no-record)", f"record: {path}"]


class _Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, 8, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.proj(x).flatten(2).transpose(1, 2).reshape(1, 2, 256, 4)  # 2 heads of 4 channels
        return nn.functional.scaled_dot_product_attention(tokens, tokens, tokens)


def test_macs_of_a_convolution_and_of_sdpa_by_hand() -> None:
    """Conv 3→8, 3×3 on 16² plus SDPA over 2 heads × 256 tokens × 4 channels (q·kᵀ and attn·v)."""
    conv = 16 * 16 * 8 * 3 * 3 * 3
    attention = 2 * 256 * 256 * (4 + 4)
    assert common.count_macs(_Attention(), 16) == conv + attention
