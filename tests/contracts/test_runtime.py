"""`contracts.runtime.keep_freed_memory`: on glibc an op's large output, allocated again after a free, no longer
page-faults (measured in a fresh process, with the default before and the setting after)."""
from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

from contracts.provenance import REPO_ROOT

PROBE = """
import json, resource, sys, torch
from contracts.runtime import allocator_description, keep_freed_memory

kept = keep_freed_memory() if sys.argv[1] == "kept" else None
x = torch.randn(1 << 24)  # 64 MiB
for _ in range(5):  # warm-up: the heap reaches its steady state
    torch.nn.functional.gelu(x)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4):
    torch.nn.functional.gelu(x)  # a fresh 64 MiB output each call, freed at once
faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 4
json.dump({"kept": kept, "faults": faults, "described": allocator_description()}, sys.stdout)
"""


def _probe(setting: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, setting], cwd=REPO_ROOT, capture_output=True, text=True,
                         check=True, env={"PATH": "", "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"})
    return json.loads(out.stdout)


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_keep_freed_memory_stops_page_faults_on_reallocation():
    default, kept = _probe("default"), _probe("kept")
    assert default["faults"] > 10_000 and default["described"] == "default"  # 64 MiB mapped afresh every call
    assert kept["kept"] is True and kept["described"] == "heap (freed memory kept)"
    assert kept["faults"] < 100  # the freed block is reused


def test_out_of_range_threshold_is_refused():
    from contracts.runtime import keep_freed_memory
    assert keep_freed_memory(0) is False and keep_freed_memory(1 << 40) is False


def test_cudnn_autotune_only_on_cuda_devices():
    """CUDA devices set `torch.backends.cudnn.benchmark` (the flag needs no GPU to be set); others leave it alone."""
    import torch

    from contracts.runtime import cudnn_autotune
    before = torch.backends.cudnn.benchmark
    try:
        torch.backends.cudnn.benchmark = False
        assert cudnn_autotune("cpu") is None and cudnn_autotune(torch.device("meta")) is None
        assert torch.backends.cudnn.benchmark is False
        assert cudnn_autotune("cuda:0") is True and torch.backends.cudnn.benchmark is True
        assert cudnn_autotune(torch.device("cuda"), enabled=False) is False and torch.backends.cudnn.benchmark is False
    finally:
        torch.backends.cudnn.benchmark = before
