"""Atomic writes and hashing: the one mechanism the project uses for every file it writes or fingerprints.

Temp files: `atomic_write` writes `.<name>.<random>.tmp` beside the target (a rename is atomic only within one
file system), so a restart finds what a killed process left: every long job sweeps the folders it owns with
`remove_orphaned_temps` when it starts, after its resume checks accepted the work dir (a refused resume changes
nothing). Folders that concurrent jobs share (a results dir) are not swept: a live writer's temp may be there.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable


def atomic_write(path: str | Path, write: Callable[[BinaryIO], Any]) -> Path:
    """Run `write(file)` on a temp file in the same folder, fsync, rename, fsync the folder: a crash leaves the
    old file or the new one, never a partial one. Temp files are named `.<name>.<random>.tmp`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def fsync_dir(folder: str | Path) -> None:
    """Make the renames into `folder` durable (a crash after this keeps them)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """`atomic_write` of a UTF-8 text."""
    return atomic_write(path, lambda f: f.write(text.encode()))


def remove_orphaned_temps(folder: str | Path, name: str = "*") -> list[Path]:
    """Delete the temp files `atomic_write` left in `folder` for files matching `name` (after a kill -9); returns
    them. Only for a folder no other live process writes into (see the module doc)."""
    removed = []
    for tmp in Path(folder).glob(f".{name}.*.tmp"):
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


def file_sha256(path: str | Path) -> str:
    """sha256 of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def json_sha256(obj: Any) -> str:
    """sha256 of a JSON-able object in canonical form (sorted keys; non-JSON values through `str`)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()
