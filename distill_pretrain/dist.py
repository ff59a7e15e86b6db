"""Device choice, host→device copies and the process-group set-up (torchrun, or the tasks of a SLURM job step),
shared by the student trainer, the replay pipelines and save_logits."""
from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from typing import Mapping

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    """This process's place in the run: rank, world size, local rank and the device it computes on."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def select_device(request: str | torch.device | None = "auto", local_rank: int = 0) -> torch.device:
    """`'auto'` (or None): `cuda:<local_rank>` when CUDA is available, else the CPU; `'cpu'`; `'cuda'` /
    `'cuda:N'` (refused with the request named when CUDA is not available)."""
    text = "auto" if request is None else str(request)
    if text == "auto":
        return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(text)
    except RuntimeError as exc:
        raise ValueError(f"device={text!r}: {exc}; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={text!r} but CUDA is not available on this machine; use 'auto' or 'cpu'")
        if device.index is None:
            device = torch.device("cuda", local_rank)
    elif device.type != "cpu":
        raise ValueError(f"device={text!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'")
    return device


def to_device(x: torch.Tensor, device: torch.device, copy: bool = False) -> torch.Tensor:
    """``x`` (a host tensor) on ``device``. To CUDA through page-locked memory and a non-blocking copy: a copy from
    pageable memory may wait for the device's queue, stalling the host behind the queued kernels. ``copy``: a new
    tensor even where ``x`` is already on ``device``."""
    if device.type == "cuda" and not x.is_pinned():
        x = x.pin_memory()
    return x.to(device, non_blocking=True, copy=copy)


def slurm_environment(env: Mapping[str, str] = os.environ) -> dict[str, str]:
    """torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) from SLURM's, for a process
    that is one of several tasks of an `srun` step (`sbatch --nodes N --ntasks-per-node G` + `srun`, as submitit
    launches) and that torchrun did not start; {} elsewhere. The master is the step's first node, the port
    20000 + job id mod 20000 (a MASTER_ADDR / MASTER_PORT already set wins)."""
    if "WORLD_SIZE" in env or int(env.get("SLURM_STEP_NUM_TASKS", "1")) < 2:
        return {}
    nodes = env.get("SLURM_STEP_NODELIST") or env["SLURM_JOB_NODELIST"]
    if "[" in nodes or "," in nodes:  # a compressed list (node[01-04]): SLURM expands it
        nodes = subprocess.run(["scontrol", "show", "hostnames", nodes], capture_output=True, text=True,
                               check=True).stdout.split()[0]
    return {"RANK": env["SLURM_PROCID"], "WORLD_SIZE": env["SLURM_STEP_NUM_TASKS"],
            "LOCAL_RANK": env.get("SLURM_LOCALID", "0"), "MASTER_ADDR": env.get("MASTER_ADDR", nodes),
            "MASTER_PORT": env.get("MASTER_PORT", str(20000 + int(env.get("SLURM_JOB_ID", "0")) % 20000))}


def init_distributed(device: str | torch.device | None = "auto") -> DistInfo:
    """Join the process group when WORLD_SIZE > 1 — set by torchrun, or taken from SLURM's variables
    (`slurm_environment`) — with NCCL on CUDA, gloo on the CPU; pick the device."""
    os.environ.update(slurm_environment())
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    chosen = select_device(device, local_rank)
    if chosen.type == "cuda":
        torch.cuda.set_device(chosen)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if chosen.type == "cuda" else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    return DistInfo(rank, world, local_rank, chosen)
