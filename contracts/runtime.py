"""Process-level settings the entry points apply: keep freed memory in the heap (glibc, CPU), cuDNN autotuning (GPU).

glibc's malloc serves a block above its mmap threshold (128 KiB, adapting up to 32 MiB) with a fresh `mmap` and
unmaps it on `free`, so every large tensor a forward pass allocates is page-faulted in, 4 KiB at a time, and zeroed
by the kernel. Measured on this suite's 2-core AMD EPYC VM, one GELU over a 16×256×56×56 fp32 map (TinyViT stage 0
at batch 16): 28.5 ms with the default (12,545 page faults per call) vs 4.9 ms with the blocks kept in the heap
(none); TinyViT-5M inference at batch 16, 2 threads: 260 → 184 ms per forward (~70,000 → 0 page faults from the
second forward on; peak RSS 1,011 MB over 20 forwards vs 1,030 MB over 60). `keep_freed_memory` raises the mmap
threshold and the trim threshold with `mallopt`, so freed blocks are reused (the effect of the
`MALLOC_MMAP_THRESHOLD_` / `MALLOC_TRIM_THRESHOLD_` environment variables, or of an arena allocator such as
jemalloc, without a restart). The cost: the process keeps its peak heap instead of returning it to the system.
Elsewhere than glibc on Linux it does nothing and says so.

    from contracts.runtime import keep_freed_memory, allocator_description
    keep_freed_memory()              # once, at start-up; `allocator_description()` goes into result records

`cudnn_autotune(device)`: on a CUDA device, let cuDNN time its convolution algorithms on the first call of each
shape and keep the fastest (`torch.backends.cudnn.benchmark`, off in PyTorch by default). timm's `benchmark.py` and
`train.py` and MMEngine's `env_cfg.cudnn_benchmark` turn it on for fixed input shapes, as in distillation and the
speed benchmarks; the algorithm it picks can differ between processes, so results are reproducible only to
rounding (which is why `save_logits`, whose resumed runs must match uninterrupted ones byte for byte, leaves it
as PyTorch has it).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import platform
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

MMAP_THRESHOLD = 1 << 30  # blocks up to 1 GiB come from the heap (a 224² stage-0 map at batch 256 is 0.8 GiB)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers (malloc.h)
_state = {"kept": False}


def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def keep_freed_memory(threshold: int = MMAP_THRESHOLD) -> bool:
    """Serve blocks up to ``threshold`` bytes from the heap and never trim it (see the module docstring). Returns
    whether it took effect (False off glibc, or where glibc refuses the values)."""
    libc = _glibc()
    if libc is None or not 0 < threshold < 2 ** 31:
        return False
    kept = bool(libc.mallopt(_M_MMAP_THRESHOLD, ctypes.c_int(threshold))
                and libc.mallopt(_M_TRIM_THRESHOLD, ctypes.c_int(2 ** 31 - 1)))
    _state["kept"] = _state["kept"] or kept
    return kept


def allocator_description() -> str:
    """'heap (freed memory kept)' once `keep_freed_memory` took effect in this process, else 'default'."""
    return "heap (freed memory kept)" if _state["kept"] else "default"


def cudnn_autotune(device: torch.device | str, enabled: bool = True) -> bool | None:
    """Set cuDNN autotuning (see the module docstring) when ``device`` is a CUDA device and return the setting, for
    logs and records; elsewhere change nothing and return None."""
    import torch
    if torch.device(device).type != "cuda":
        return None
    torch.backends.cudnn.benchmark = bool(enabled)
    return torch.backends.cudnn.benchmark
