"""`LogitStore`: a store directory's writer (create, resumable chunk writes, epoch finalisation, merge) and reader
(open with checks, memory-mapped reads, checksum verification). Layout and integrity rules: the package doc."""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import shutil
import zlib
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from contracts.fileio import atomic_write, file_sha256, remove_orphaned_temps

from .codec import SparseTargets, decode_records, encode_records, record_layout
from .errors import StoreError
from .manifest import (DEFAULT_PIPELINE, EXPECTABLE, FORMAT, MANIFEST, SEED_POLICY, canonical, check_expected,
                       check_manifest, config_hash, load_manifest, seal)


def _write_chunks(path: Path, chunks: Iterable[bytes | memoryview]) -> None:
    atomic_write(path, lambda f: f.writelines(chunks))


@contextlib.contextmanager
def _locked(root: Path):
    with open(root / ".lock", "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class LogitStore:
    """A sparse teacher-logit store: `create` (writer, resumable) or `open` (reader)."""

    def __init__(self, path: str | Path, manifest: dict[str, Any]):
        self.path = Path(path)
        self._manifest = manifest
        self._layout = record_layout(manifest["num_classes"], manifest["topk"], manifest["value_format"])
        self._maps: dict[int, np.memmap] = {}

    # ------------------------------------------------------------------------------------------ creation
    @classmethod
    def create(cls, path: str | Path, *, teacher: Mapping[str, Any], num_classes: int, topk: int,
               dataset: Mapping[str, Any], transform: Mapping[str, Any], base_seed: int,
               value_format: str = "fp16", chunk_size: int = 1024, batch_size: int | None = None,
               extra: Mapping[str, Any] | None = None, remove_temps: bool = True,
               pipeline: str = DEFAULT_PIPELINE) -> "LogitStore":
        """Create a store, or reopen an existing one for more epochs / resuming after checking every field.

        teacher: identity dict with at least ``name`` and ``weights_sha256``; dataset: identity dict with at
        least ``length`` and ``sha256``; transform: the augmentation config as a dict (its hash is stored).
        batch_size: the teacher's batch size (outputs depend on it; a resume with another is refused).
        extra: free-form provenance (configs to rebuild teacher/dataset), not compared.
        remove_temps: delete temp files a killed writer left (only the one process that opens a store first may
        do this; other ranks of the same run pass False).
        pipeline: the replay pipeline that made the augmentations (`distill_pretrain.replay.PIPELINES`).
        """
        path = Path(path)
        for key in ("name", "weights_sha256"):
            if key not in teacher:
                raise StoreError(f"teacher identity needs {key!r}, got {dict(teacher)}")
        for key in ("length", "sha256"):
            if key not in dataset:
                raise StoreError(f"dataset identity needs {key!r}, got {dict(dataset)}")
        lay = record_layout(num_classes, topk, value_format)
        transform = canonical(dict(transform))
        manifest = {
            "format": FORMAT, "teacher": canonical(dict(teacher)), "num_classes": int(num_classes),
            "topk": int(topk), "value_format": value_format, "index_dtype": lay["index_dtype"],
            "value_dtype": lay["value_dtype"], "record_bytes": lay["record_bytes"],
            "transform": transform, "transform_hash": config_hash(transform),
            "dataset": canonical(dict(dataset)), "base_seed": int(base_seed),
            "seed_policy": SEED_POLICY, "chunk_size": int(chunk_size),
            "batch_size": None if batch_size is None else int(batch_size), "pipeline": str(pipeline),
            "extra": canonical(dict(extra or {})), "epochs": {},
        }
        path.mkdir(parents=True, exist_ok=True)
        with _locked(path):
            if remove_temps:
                cls._remove_temps(path)
            if (path / MANIFEST).exists():
                expect = {k: manifest[k] for k in EXPECTABLE}
                store = cls.open(path, expect=expect, check_files=False)  # a writer reads no epoch
                store._remove_finished_parts()
                return store
            store = cls(path, manifest)
            store._write_manifest()
        return store

    @staticmethod
    def _remove_temps(path: Path) -> list[Path]:
        """Temp files of atomic writes a killed writer left: manifest, epoch files (epoch-sized), chunk parts."""
        removed = remove_orphaned_temps(path)
        for parts in path.glob("epoch_*.parts"):
            removed += remove_orphaned_temps(parts)
        return removed

    def _write_manifest(self) -> None:
        self._manifest = seal(self._manifest)
        _write_chunks(self.path / MANIFEST, [json.dumps(self._manifest, indent=1, sort_keys=True).encode()])

    # --------------------------------------------------------------------------------------------- open
    @classmethod
    def open(cls, path: str | Path, expect: Mapping[str, Any] | None = None, *,
             check_files: bool = True) -> "LogitStore":
        """Open a store for reading: the manifest is checked against itself (`check_manifest`), every listed
        epoch file must exist with its size (unless ``check_files=False``: `verify` lists those problems
        itself), and any field of ``expect`` that differs is refused, naming the field.

        expect keys: format, num_classes, topk, value_format, teacher (identity dict, or a name / sha256 string),
        transform (dict or object with ``to_dict``), transform_hash, dataset (identity dict or its sha256),
        base_seed, chunk_size, batch_size, pipeline.
        """
        path = Path(path)
        mpath = path / MANIFEST
        if not mpath.is_file():
            raise StoreError(f"{path}: not a logit store (no {MANIFEST})")
        manifest = load_manifest(mpath)
        check_manifest(manifest, mpath)
        for key, want in (expect or {}).items():
            check_expected(path, manifest, key, want)
        store = cls(path, manifest)
        if check_files:
            for e in store.epochs:
                problem = store._file_problem(e)
                if problem:
                    raise StoreError(problem)
        return store

    def check(self, **expect: Any) -> None:
        """Refuse (StoreError naming the field) if any of ``expect`` differs from the manifest (see `open`)."""
        for key, want in expect.items():
            check_expected(self.path, self._manifest, key, want)

    def require_epochs(self, epochs: Iterable[int]) -> None:
        """Refuse, before a run starts, if any epoch it will read is not finalized in the store."""
        need = sorted({int(e) for e in epochs})
        missing = [e for e in need if str(e) not in self._manifest["epochs"]]
        if missing:
            raise StoreError(f"{self.path / MANIFEST}: field 'epochs' lacks epoch(s) {missing} that this run reads "
                             f"(finalized: {self.epochs}); save them first (distill_pretrain.save_logits --epochs)")
        for e in need:
            problem = self._file_problem(e)
            if problem:
                raise StoreError(problem)

    # ------------------------------------------------------------------------------------------ properties
    @property
    def manifest(self) -> dict[str, Any]:
        """The parsed manifest (a copy)."""
        return json.loads(json.dumps(self._manifest))

    @property
    def num_classes(self) -> int:
        return self._manifest["num_classes"]

    @property
    def topk(self) -> int:
        return self._manifest["topk"]

    @property
    def epochs(self) -> list[int]:
        """Finalized epochs, sorted."""
        return sorted(int(e) for e in self._manifest["epochs"])

    @property
    def length(self) -> int:
        """Number of dataset samples (records per epoch)."""
        return self._manifest["dataset"]["length"]

    @property
    def record_bytes(self) -> int:
        return self._layout["record_bytes"]

    @property
    def num_chunks(self) -> int:
        return math.ceil(self.length / self._manifest["chunk_size"])

    def chunk_range(self, chunk: int) -> range:
        """Dataset indices of a chunk."""
        size = self._manifest["chunk_size"]
        return range(chunk * size, min((chunk + 1) * size, self.length))

    def epoch_file(self, epoch: int) -> Path:
        return self.path / f"epoch_{epoch:04d}.bin"

    def _parts_dir(self, epoch: int) -> Path:
        return self.path / f"epoch_{epoch:04d}.parts"

    # -------------------------------------------------------------------------------------------- writer
    def reload(self) -> None:
        """Re-read and re-check the manifest (another rank or machine may have finalized epochs)."""
        mpath = self.path / MANIFEST
        manifest = load_manifest(mpath)
        check_manifest(manifest, mpath)
        self._manifest = manifest

    def finalized_chunks(self, epoch: int) -> dict[int, Path]:
        """Chunks of an unfinished epoch whose files are complete (size matches; checksums are checked when the
        epoch is assembled)."""
        found: dict[int, Path] = {}
        parts = self._parts_dir(epoch)
        if not parts.is_dir():
            return found
        for f in parts.glob("c*-*.bin"):
            chunk = int(f.name[1:7])
            if f.stat().st_size == len(self.chunk_range(chunk)) * self.record_bytes:
                found[chunk] = f
        return found

    def pending_chunks(self, epoch: int, rank: int = 0, world_size: int = 1) -> list[int]:
        """Chunks of ``epoch`` that rank ``rank`` still has to write (none if the epoch is finalized)."""
        if str(epoch) in self._manifest["epochs"]:
            return []
        done = self.finalized_chunks(epoch)
        return [c for c in range(rank, self.num_chunks, world_size) if c not in done]

    def write_chunk(self, epoch: int, chunk: int, seeds: np.ndarray, indices: np.ndarray,
                    values: np.ndarray) -> Path:
        """Encode and atomically write one chunk (all its records, in dataset-index order)."""
        n = len(self.chunk_range(chunk))
        if len(seeds) != n:
            raise StoreError(f"chunk {chunk} of epoch {epoch} needs {n} records, got {len(seeds)}")
        raw = encode_records(seeds, indices, values, self.num_classes, self._manifest["value_format"])
        data = raw.tobytes()
        out = self._parts_dir(epoch) / f"c{chunk:06d}-{hashlib.sha256(data).hexdigest()}.bin"
        _write_chunks(out, [data])
        return out

    def finalize_epoch(self, epoch: int) -> bool:
        """Concatenate an epoch's chunks into its record file and add it to the manifest (rank 0 only).

        Returns False (and changes nothing) if some chunk is still missing. Chunks are checked against their
        checksums first.
        """
        with _locked(self.path):
            self.reload()
            if str(epoch) in self._manifest["epochs"]:
                return True
            done = self.finalized_chunks(epoch)
            if len(done) < self.num_chunks:
                return False
            chunk_sums, chunk_crcs, blobs = [], [], []
            for c in range(self.num_chunks):
                data = done[c].read_bytes()
                digest = hashlib.sha256(data).hexdigest()
                if done[c].name != f"c{c:06d}-{digest}.bin":
                    raise StoreError(f"{done[c]}: chunk checksum mismatch (corrupt part file); delete it and rerun")
                chunk_sums.append(digest)
                chunk_crcs.append(zlib.crc32(data))
                blobs.append(data)
            whole = hashlib.sha256()
            for b in blobs:
                whole.update(b)
            _write_chunks(self.epoch_file(epoch), blobs)
            self._manifest["epochs"][str(epoch)] = {
                "file": self.epoch_file(epoch).name, "bytes": sum(len(b) for b in blobs),
                "sha256": whole.hexdigest(), "chunk_sha256": chunk_sums, "chunk_crc32": chunk_crcs}
            self._write_manifest()
        shutil.rmtree(self._parts_dir(epoch), ignore_errors=True)
        return True

    def merge(self, other: str | Path | "LogitStore") -> list[int]:
        """Take over the finalized epochs of another store of the same identity (e.g. saved on another machine).

        Every manifest field that matters must agree; epoch files are checksummed, copied atomically and listed.
        Returns the epochs added. Epochs present in both must be byte-identical.
        """
        other = other if isinstance(other, LogitStore) else LogitStore.open(other)
        self.check(**{k: other._manifest[k] for k in EXPECTABLE})
        added = []
        with _locked(self.path):
            self.reload()
            for e in other.epochs:
                info = other._manifest["epochs"][str(e)]
                if str(e) in self._manifest["epochs"]:
                    if self._manifest["epochs"][str(e)]["sha256"] != info["sha256"]:
                        raise StoreError(f"epoch {e} differs between {self.path} and {other.path}")
                    continue
                src = other.path / info["file"]
                data = src.read_bytes()
                if hashlib.sha256(data).hexdigest() != info["sha256"]:
                    raise StoreError(f"{src}: checksum mismatch (field 'epochs.{e}.sha256'), not merged")
                _write_chunks(self.epoch_file(e), [data])
                self._manifest["epochs"][str(e)] = dict(info, file=self.epoch_file(e).name)
                added.append(e)
            self._write_manifest()
        self._maps.clear()
        return added

    def _remove_finished_parts(self) -> None:
        for e in self.epochs:
            shutil.rmtree(self._parts_dir(e), ignore_errors=True)

    # -------------------------------------------------------------------------------------------- reader
    def _file_problem(self, epoch: int) -> str | None:
        """Why a finalized epoch's record file is unusable (missing, truncated, extended), or None."""
        info = self._manifest["epochs"][str(epoch)]
        f = self.path / info["file"]
        if not f.is_file():
            return f"{f}: record file of epoch {epoch} missing (manifest field 'epochs.{epoch}')"
        size = f.stat().st_size
        if size != info["bytes"]:
            how = "truncated" if size < info["bytes"] else "extended"
            return f"{f}: {how}: {size} bytes, manifest field 'epochs.{epoch}.bytes' says {info['bytes']}"
        return None

    def _corrupt_chunks(self, epoch: int, key: str = "chunk_crc32") -> list[int]:
        """Chunks of a finalized epoch's file whose checksum (`chunk_crc32` or `chunk_sha256`) fails."""
        info = self._manifest["epochs"][str(epoch)]
        chunk_bytes = self._manifest["chunk_size"] * self.record_bytes
        bad = []
        with open(self.path / info["file"], "rb") as fh:
            for c, want in enumerate(info[key]):
                data = fh.read(chunk_bytes)
                have = zlib.crc32(data) if key == "chunk_crc32" else hashlib.sha256(data).hexdigest()
                if have != want:
                    bad.append(c)
        return bad

    def _map(self, epoch: int) -> np.memmap:
        """The epoch's records, memory-mapped; on first use the file's size and chunk crc32s are checked."""
        mm = self._maps.get(epoch)
        if mm is None:
            if str(epoch) not in self._manifest["epochs"]:
                raise StoreError(f"{self.path}: epoch {epoch} is not in the store (finalized: {self.epochs})")
            problem = self._file_problem(epoch)
            if problem:
                raise StoreError(problem)
            bad = self._corrupt_chunks(epoch)
            if bad:
                f, r = self.epoch_file(epoch), self.chunk_range(bad[0])
                raise StoreError(f"{f}: corrupt: chunk {bad[0]} (indices {r.start}..{r.stop - 1})"
                                 + (f" and {len(bad) - 1} more" if len(bad) > 1 else "")
                                 + f" fail manifest field 'epochs.{epoch}.chunk_crc32'")
            mm = np.memmap(self.epoch_file(epoch), dtype=np.uint8, mode="r", shape=(self.length, self.record_bytes))
            self._maps[epoch] = mm
        return mm

    def read_raw(self, epoch: int, indices: np.ndarray | Sequence[int]) -> np.ndarray:
        """Raw record bytes uint8 [B, record_bytes]."""
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= self.length):
            raise StoreError(f"dataset index out of range [0, {self.length}): {idx.min()}..{idx.max()}")
        return self._map(epoch)[idx]

    def read(self, epoch: int, indices: np.ndarray | Sequence[int]) -> SparseTargets:
        """Seeds and sparse top-K targets of dataset ``indices`` at ``epoch``."""
        m = self._manifest
        return decode_records(self.read_raw(epoch, indices), m["num_classes"], m["topk"], m["value_format"])

    def verify_checksums(self) -> dict[int, list[str]]:
        """Check every finalized epoch's file size, sha256 and chunk crc32s (what readers check, so a store that
        passes is one every reader accepts); {epoch: [problems]} (empty lists if fine)."""
        problems: dict[int, list[str]] = {}
        for e in self.epochs:
            info = self._manifest["epochs"][str(e)]
            problem = self._file_problem(e)
            if problem:
                problems[e] = [problem]
            elif file_sha256(self.path / info["file"]) != info["sha256"]:
                problems[e] = [f"{info['file']}: chunk {c} (indices {self.chunk_range(c).start}.."
                               f"{self.chunk_range(c).stop - 1}) fails manifest field 'epochs.{e}.chunk_sha256'"
                               for c in self._corrupt_chunks(e, "chunk_sha256")]
                problems[e] = problems[e] or [f"{info['file']}: fails manifest field 'epochs.{e}.sha256'"]
            else:
                problems[e] = [f"{info['file']}: chunk {c} fails manifest field 'epochs.{e}.chunk_crc32'"
                               for c in self._corrupt_chunks(e)]
        return problems

    def unlisted_files(self) -> list[str]:
        """Epoch files on disk that the manifest does not list (a finalisation killed before its manifest write;
        the next save_logits run rewrites them)."""
        listed = {info["file"] for info in self._manifest["epochs"].values()}
        return sorted(f.name for f in self.path.glob("epoch_*.bin") if f.name not in listed)

    def __repr__(self) -> str:
        m = self._manifest
        return (f"LogitStore({str(self.path)!r}, teacher={m['teacher']['name']}, C={m['num_classes']}, "
                f"K={m['topk']}, {m['value_format']}, N={self.length}, epochs={self.epochs})")
