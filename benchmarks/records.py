"""Contract 3 — the result record: one JSON file per measured result, read by `benchmarks.table`.

    {"task": ..., "dataset": ..., "split": ..., "backbone": {"name", "checkpoint_sha256", "source"},
     "metrics": {...}, "setting": {...}, "config_sha256": ..., "git_commit": ..., "machine": ..., "date": ...}
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import subprocess
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Mapping

from .assets import REPO_ROOT

DEFAULT_RESULTS_DIR = REPO_ROOT / "results" / "records"
TASKS = ("linear_probe", "few_shot", "detection", "segmentation", "throughput", "store", "distill_speed",
         "distill", "backbone", "replay", "probe_speed", "iteration_time")
REQUIRED = ("task", "dataset", "split", "backbone", "metrics", "setting", "config_sha256", "git_commit",
            "machine", "date")


def atomic_write(path: str | Path, write: Callable[[BinaryIO], Any]) -> Path:
    """Run `write(file)` on a temp file in the same folder, fsync, rename, fsync the folder: a crash leaves the
    old file or the new one, never a partial one. The one atomic-write mechanism of the project."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """`atomic_write` of a UTF-8 text."""
    return atomic_write(path, lambda f: f.write(text.encode()))


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
    """E.g. '2-core Intel Xeon CPU, no GPU, torch 2.13.0' or '... , 1× NVIDIA H100 ...'."""
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
    """Stable hash of a config (dict / MMEngine Config / str / path to a file)."""
    if isinstance(config, (str, Path)) and Path(config).is_file():
        data = Path(config).read_bytes()
    elif isinstance(config, (bytes, str)):
        data = config.encode() if isinstance(config, str) else config
    else:
        to_dict = getattr(config, "to_dict", None)
        data = json.dumps(to_dict() if to_dict else config, sort_keys=True, default=str).encode()
    return hashlib.sha256(data).hexdigest()


def make_record(task: str, *, dataset: str, metrics: Mapping[str, Any], backbone: Mapping[str, Any],
                split: str = "test", setting: Mapping[str, Any] | None = None, config: Any = None) -> dict:
    """A complete record dict (see module doc). `backbone` needs at least `name`."""
    if task not in TASKS:
        raise ValueError(f"unknown record task {task!r}; known: {TASKS}")
    if "name" not in backbone:
        raise ValueError(f"record backbone needs a 'name', got {dict(backbone)}")
    return {
        "task": task, "dataset": dataset, "split": split,
        "backbone": {"checkpoint_sha256": None, "source": None, **backbone},
        "metrics": dict(metrics), "setting": dict(setting or {}),
        "config_sha256": config_sha256(config if config is not None else dict(setting or {})),
        "git_commit": git_commit(), "machine": machine_description(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def write_record(record: Mapping[str, Any], results_dir: str | Path | None = None) -> Path:
    """Write a record atomically as `<task>__<dataset>__<backbone>__<hash>.json`; returns the path.

    The hash covers task, dataset, split, backbone and setting, so re-measuring the same thing replaces it.
    """
    missing = [k for k in REQUIRED if k not in record]
    if missing:
        raise ValueError(f"record lacks {missing}")
    results_dir = Path(results_dir) if results_dir is not None else DEFAULT_RESULTS_DIR
    ident = json.dumps([record["task"], record["dataset"], record["split"], record["backbone"],
                        record["setting"]], sort_keys=True, default=str)
    name = "__".join(str(x).replace("/", "-").replace(" ", "") for x in (
        record["task"], record["dataset"], record["backbone"]["name"])) + f"__{hashlib.sha1(ident.encode()).hexdigest()[:10]}.json"
    return atomic_write_text(results_dir / name, json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")


def read_records(results_dir: str | Path | None = None, tasks: Iterable[str] | None = None) -> list[dict]:
    """All records under a directory (recursively), optionally only some tasks; bad files raise with the name."""
    results_dir = Path(results_dir) if results_dir is not None else DEFAULT_RESULTS_DIR
    wanted = set(tasks) if tasks is not None else None
    records = []
    for path in sorted(results_dir.rglob("*.json")):
        try:
            rec = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from err
        missing = [k for k in REQUIRED if k not in rec]
        if missing:
            raise ValueError(f"{path}: not a result record (lacks {missing})")
        if wanted is None or rec["task"] in wanted:
            rec["_path"] = str(path)
            records.append(rec)
    return records
