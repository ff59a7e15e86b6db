"""Where a result came from: the git commit, the machine, the config's hash."""
from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from .fileio import json_sha256

REPO_ROOT = Path(__file__).resolve().parents[1]


def git_commit() -> str:
    """HEAD of the repo this code runs from ('unknown' outside git), '+dirty' when the tree has changes."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine_description() -> str:
    """E.g. '2-core Intel Xeon CPU, no GPU, torch 2.13.0' or '... , 1× NVIDIA H200 ...'."""
    import torch
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = "no GPU"
    if torch.cuda.is_available():
        gpu = f"{torch.cuda.device_count()}× {torch.cuda.get_device_name(0)}"
    return f"{os.cpu_count()}-core {cpu}, {gpu}, torch {torch.__version__.split('+')[0]}"


def config_sha256(config: Any) -> str:
    """Stable hash of a config: a file path (its bytes), str/bytes, an MMEngine Config or a JSON-able object."""
    if isinstance(config, (str, Path)) and Path(config).is_file():
        return hashlib.sha256(Path(config).read_bytes()).hexdigest()
    if isinstance(config, (bytes, str)):
        return hashlib.sha256(config.encode() if isinstance(config, str) else config).hexdigest()
    to_dict = getattr(config, "to_dict", None)
    return json_sha256(to_dict() if to_dict else config)
