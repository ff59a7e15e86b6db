"""Contract 1 — the sparse teacher-logit store (paper §3.1, Eq. 2).

A store is a directory that describes itself::

    STORE/manifest.json            format, teacher, C, K, dtypes, transform (+hash), dataset identity,
                                   seed policy, chunk size, finalized epochs with their checksums
    STORE/epoch_0003.bin           N fixed-size records, record i = dataset index i (np.memmap, O(1) reads)
    STORE/epoch_0003.parts/        while epoch 3 is being written: one file per finalized chunk,
        c000012-<sha256>.bin       written by whichever rank owns it (temp file, fsync, rename)

A record is ``seed (uint32) + K class indices + K probabilities`` (top-K of the teacher's softmax, sorted
descending). Two value formats:

* ``fp16``: indices uint16 when C <= 65,536 else int32, values float16 — the paper's 4 + 4K bytes.
* ``compact``: each (index, value) pair bit-packed into b = ceil(log2 C) + 7 bits (7-bit log-scale value on
  [1e-5, 1], ±4.6 %), then the rest mass 1 − Σ top-K in 12 bits (logit scale, ±0.5 % of min(rest, 1 − rest));
  decoded values are rescaled to sum to the stored top-K mass, so Eq. 2's uniform rest stays right —
  4 + ceil((K·b + 12)/8) bytes.

Chunks are ``chunk_size`` consecutive dataset indices; chunk ``c`` is owned by rank ``c % world_size``. A writer
that is killed loses at most the chunks it had not finalized; rerunning skips finalized chunks, so the final
store is byte-identical to an uninterrupted run. When every chunk of an epoch exists, rank 0 concatenates them
into ``epoch_XXXX.bin`` (atomically) and records the file's and each chunk's sha256 in the manifest.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch

from contracts.fileio import atomic_write, file_sha256

FORMAT = "tinyvit-bench/logit-store/v1"
VALUE_FORMATS = ("fp16", "compact")
SEED_POLICY = "splitmix64(base_seed, epoch, index) >> 32"
VALUE_BITS, VALUE_P_MIN = 7, 1e-5  # compact values: 7-bit log scale on [1e-5, 1]
REST_BITS, REST_P_MIN = 12, 1e-9  # compact rest mass (1 - sum of top-K): 12-bit logit scale, code 0 = 0
MANIFEST = "manifest.json"


class StoreError(ValueError):
    """A store is missing, incomplete, corrupt, or does not match what the reader expects."""


@dataclass
class SparseTargets:
    """Sparse teacher targets for a batch: ``seeds`` uint32 [B], ``indices`` int64 [B,K], ``values`` float32 [B,K]."""

    seeds: np.ndarray
    indices: np.ndarray
    values: np.ndarray


def recover_dense(indices: torch.Tensor, values: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Paper Eq. 2: stored classes keep their values, every other class gets (1 − Σ top-K) / (C − K)."""
    indices = torch.as_tensor(indices, dtype=torch.int64)
    values = torch.as_tensor(values, dtype=torch.float32)
    k = indices.shape[-1]
    if num_classes > k:
        rest = (1.0 - values.sum(-1, keepdim=True)).clamp_min(0.0) / (num_classes - k)
    else:
        rest = values.new_zeros(values.shape[:-1] + (1,))
    dense = rest.expand(*values.shape[:-1], num_classes).clone()
    return dense.scatter_(-1, indices.to(dense.device), values.to(dense.device))


# ---------------------------------------------------------------------------------------------- record codec
def index_bits(num_classes: int) -> int:
    """Bits per class index in the compact format."""
    return max(1, math.ceil(math.log2(num_classes)))


def record_layout(num_classes: int, topk: int, value_format: str) -> dict[str, Any]:
    """Byte layout of one record: its size, dtypes and the byte offsets of its parts."""
    if value_format not in VALUE_FORMATS:
        raise StoreError(f"value_format must be one of {VALUE_FORMATS}, got {value_format!r}")
    if not 0 < topk <= num_classes:
        raise StoreError(f"topk must be in 1..num_classes={num_classes}, got {topk}")
    if value_format == "fp16":
        index_dtype = "uint16" if num_classes <= 65536 else "int32"
        body = topk * np.dtype(index_dtype).itemsize
        return {"record_bytes": 4 + body + 2 * topk, "index_dtype": index_dtype, "value_dtype": "float16",
                "body_end": 4 + body}
    field_bits = index_bits(num_classes) + VALUE_BITS
    body = math.ceil((topk * field_bits + REST_BITS) / 8)
    return {"record_bytes": 4 + body, "index_dtype": f"packed{index_bits(num_classes)}",
            "value_dtype": f"log{VALUE_BITS}+rest{REST_BITS}", "body_end": 4 + body, "field_bits": field_bits}


def official_record_bytes(topk: int) -> int:
    """Bytes per sample of the official implementation (seed + int16 indices + fp16 values)."""
    return 4 + 4 * topk


def _log_codes(x: np.ndarray, bits: int, p_min: float) -> np.ndarray:
    top = (1 << bits) - 1
    logp = np.log(np.clip(x.astype(np.float64), p_min, 1.0))
    return np.clip(np.rint(top + logp / (math.log(1.0 / p_min) / top)), 0, top).astype(np.int64)


def _log_table(bits: int, p_min: float) -> np.ndarray:
    top = (1 << bits) - 1
    return np.exp(-(top - np.arange(top + 1)) * math.log(1.0 / p_min) / top)


_VALUE_TABLE = _log_table(VALUE_BITS, VALUE_P_MIN).astype(np.float32)
_REST_LIMIT = math.log(1.0 / REST_P_MIN)
_REST_STEPS = (1 << REST_BITS) - 2  # codes 1..2^bits-1 cover logit(rest) in [-limit, limit]; code 0 is rest = 0
_REST_TABLE = np.concatenate([[0.0], 1.0 / (1.0 + np.exp(-(-_REST_LIMIT + np.arange(_REST_STEPS + 1)
                                                              * 2 * _REST_LIMIT / _REST_STEPS)))])


def _rest_codes(rest: np.ndarray) -> np.ndarray:
    r = np.clip(rest, REST_P_MIN, 1.0 - REST_P_MIN)
    logit = np.log(r) - np.log1p(-r)
    codes = 1 + np.rint((logit + _REST_LIMIT) * _REST_STEPS / (2 * _REST_LIMIT)).astype(np.int64)
    return np.where(rest < REST_P_MIN, 0, codes)


def _write_bits(out: np.ndarray, offsets: np.ndarray, bits: int, fields: np.ndarray) -> None:
    """OR little-endian bit fields [B, len(offsets)] of width ``bits`` into byte rows ``out`` (zeroed, padded)."""
    span = (bits + 7 + 7) // 8
    byte0 = offsets >> 3
    shifted = fields.astype(np.int64) << (offsets & 7)
    for j in range(span):  # fields are >= 8 bits wide, so for a fixed j no two fields hit the same byte
        out[:, byte0 + j] |= ((shifted >> (8 * j)) & 0xFF).astype(np.uint8)


def _read_bits(raw: np.ndarray, offsets: np.ndarray, bits: int) -> np.ndarray:
    """Little-endian bit fields of width ``bits`` starting at bit ``offsets`` of each row: [B, len(offsets)]
    (uint32 when a field spans at most 4 bytes, else int64)."""
    span = (bits + 7 + 7) // 8  # bytes a field can touch
    word = np.uint32 if span <= 4 else np.int64
    padded = np.zeros((raw.shape[0], raw.shape[1] + span), np.uint8)
    padded[:, :raw.shape[1]] = raw
    byte0 = offsets >> 3
    words = padded[:, byte0].astype(word)
    for j in range(1, span):
        words |= padded[:, byte0 + j].astype(word) << word(8 * j)
    return (words >> (offsets & 7).astype(word)) & word((1 << bits) - 1)


def encode_records(seeds: np.ndarray, indices: np.ndarray, values: np.ndarray, num_classes: int,
                   value_format: str) -> np.ndarray:
    """Pack a batch into records: uint8 [B, record_bytes]."""
    seeds = np.asarray(seeds, dtype=np.uint32)
    indices, values = np.asarray(indices), np.asarray(values, dtype=np.float32)
    b, k = indices.shape
    lay = record_layout(num_classes, k, value_format)
    if indices.min(initial=0) < 0 or indices.max(initial=0) >= num_classes:
        raise StoreError(f"class indices must lie in [0, {num_classes}), got [{indices.min()}, {indices.max()}]")
    out = np.empty((b, lay["record_bytes"]), np.uint8)
    out[:, :4] = seeds.astype("<u4").reshape(b, 1).view(np.uint8)
    end = lay["body_end"]
    if value_format == "fp16":
        out[:, 4:end] = np.ascontiguousarray(indices.astype("<" + np.dtype(lay["index_dtype"]).str[1:])).view(np.uint8)
        out[:, end:] = np.ascontiguousarray(values.astype("<f2")).view(np.uint8)
    else:
        fields = indices.astype(np.int64) | (_log_codes(values, VALUE_BITS, VALUE_P_MIN) << index_bits(num_classes))
        rest = _rest_codes(np.clip(1.0 - values.astype(np.float64).sum(1), 0.0, 1.0))
        f = lay["field_bits"]
        body = np.zeros((b, end - 4 + 8), np.uint8)
        _write_bits(body, np.arange(k) * f, f, fields)
        _write_bits(body, np.array([k * f]), REST_BITS, rest[:, None])
        out[:, 4:] = body[:, :end - 4]
    return out


def decode_records(raw: np.ndarray, num_classes: int, topk: int, value_format: str) -> SparseTargets:
    """Unpack uint8 [B, record_bytes] records."""
    lay = record_layout(num_classes, topk, value_format)
    end = lay["body_end"]
    seeds = raw[:, :4].copy().view("<u4").reshape(-1).astype(np.uint32)
    if value_format == "fp16":
        idx = raw[:, 4:end].copy().view("<" + np.dtype(lay["index_dtype"]).str[1:]).astype(np.int64)
        val = torch.from_numpy(raw[:, end:].copy().view("<f2")).float().numpy()  # torch converts fp16 ~8x faster
    else:
        ib = index_bits(num_classes)
        body, f = raw[:, 4:end], lay["field_bits"]
        fields = _read_bits(body, np.arange(topk) * f, f)
        idx = (fields & fields.dtype.type((1 << ib) - 1)).astype(np.int64)
        val = np.take(_VALUE_TABLE, fields >> fields.dtype.type(ib))
        rest = _REST_TABLE[_read_bits(body, np.array([topk * f]), REST_BITS)[:, 0]]
        kept = 1.0 - rest  # the stored top-K mass: values are rescaled to sum to it exactly
        val *= (kept / val.sum(1, dtype=np.float64)).astype(np.float32)[:, None]
    return SparseTargets(seeds=seeds, indices=idx, values=val)


# ------------------------------------------------------------------------------------------------- helpers
def _write_chunks(path: Path, chunks: Iterable[bytes | memoryview]) -> None:
    atomic_write(path, lambda f: f.writelines(chunks))


def _canonical(obj: Any) -> Any:
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def config_hash(obj: Any) -> str:
    """sha256 of a JSON-able config (sorted keys)."""
    return hashlib.sha256(json.dumps(_canonical(obj), sort_keys=True).encode()).hexdigest()


@contextlib.contextmanager
def _locked(root: Path):
    with open(root / ".lock", "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# The fields a reader may demand, and how they are compared.
EXPECTABLE = ("format", "num_classes", "topk", "value_format", "teacher", "transform", "transform_hash", "dataset",
              "base_seed", "chunk_size", "pipeline")
DEFAULT_PIPELINE = "pil"  # the replay pipeline of stores whose manifest predates the field


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
               value_format: str = "fp16", chunk_size: int = 1024,
               extra: Mapping[str, Any] | None = None, pipeline: str = DEFAULT_PIPELINE) -> "LogitStore":
        """Create a store, or reopen an existing one for more epochs / resuming after checking every field.

        teacher: identity dict with at least ``name`` and ``weights_sha256``; dataset: identity dict with at
        least ``length`` and ``sha256``; transform: the augmentation config as a dict (its hash is stored).
        extra: free-form provenance (configs to rebuild teacher/dataset), not compared.
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
        transform = _canonical(dict(transform))
        manifest = {
            "format": FORMAT, "teacher": _canonical(dict(teacher)), "num_classes": int(num_classes),
            "topk": int(topk), "value_format": value_format, "index_dtype": lay["index_dtype"],
            "value_dtype": lay["value_dtype"], "record_bytes": lay["record_bytes"],
            "transform": transform, "transform_hash": config_hash(transform),
            "dataset": _canonical(dict(dataset)), "base_seed": int(base_seed),
            "seed_policy": SEED_POLICY, "chunk_size": int(chunk_size), "pipeline": str(pipeline),
            "extra": _canonical(dict(extra or {})), "epochs": {},
        }
        path.mkdir(parents=True, exist_ok=True)
        with _locked(path):
            if (path / MANIFEST).exists():
                expect = {k: manifest[k] for k in EXPECTABLE}
                store = cls.open(path, expect=expect)
                store._remove_finished_parts()
                return store
            _write_chunks(path / MANIFEST, [json.dumps(manifest, indent=1, sort_keys=True).encode()])
        return cls(path, manifest)

    # --------------------------------------------------------------------------------------------- open
    @classmethod
    def open(cls, path: str | Path, expect: Mapping[str, Any] | None = None) -> "LogitStore":
        """Open a store for reading; refuse it, naming the field, if it differs from ``expect``.

        expect keys: format, num_classes, topk, value_format, teacher (identity dict, or a name / sha256 string),
        transform (dict or object with ``to_dict``), transform_hash, dataset (identity dict or its sha256),
        base_seed, chunk_size, pipeline.
        """
        path = Path(path)
        mpath = path / MANIFEST
        if not mpath.is_file():
            raise StoreError(f"{path}: not a logit store (no {MANIFEST})")
        try:
            manifest = json.loads(mpath.read_text())
        except json.JSONDecodeError as err:
            raise StoreError(f"{mpath}: corrupt manifest ({err})") from err
        manifest.setdefault("pipeline", DEFAULT_PIPELINE)
        if manifest.get("format") != FORMAT:
            raise StoreError(f"{mpath}: field 'format' is {manifest.get('format')!r}, expected {FORMAT!r}")
        for key, want in (expect or {}).items():
            cls._check_field(path, manifest, key, want)
        return cls(path, manifest)

    @staticmethod
    def _check_field(path: Path, manifest: Mapping[str, Any], key: str, want: Any) -> None:
        if key not in EXPECTABLE:
            raise StoreError(f"cannot expect unknown store field {key!r}; known: {EXPECTABLE}")
        have = manifest.get(key)
        if key == "transform":
            want = want.to_dict() if hasattr(want, "to_dict") else want
            ok = config_hash(want) == manifest["transform_hash"]
        elif key == "teacher" and isinstance(want, str):
            ok = want in (have.get("name"), have.get("weights_sha256"))
        elif key == "teacher":
            want = _canonical(dict(want))
            ok = all(have.get(k) == want.get(k) for k in ("name", "weights_sha256"))
        elif key == "dataset" and isinstance(want, str):
            ok = want == have.get("sha256")
        elif key == "dataset":
            want = _canonical(dict(want))
            ok = all(have.get(k) == want.get(k) for k in ("length", "sha256"))
        elif key == "pipeline" and have != want:
            raise StoreError(f"{path}: the store was made by the {have!r} replay pipeline, this reader replays with "
                             f"{want!r}; the pixels would differ from what the teacher saw — use pipeline={have!r} "
                             f"or accept approximate replay explicitly")
        else:
            ok = _canonical(want) == have
        if not ok:
            raise StoreError(f"{path}: store field {key!r} is {have!r}, but {want!r} was expected")

    def check(self, **expect: Any) -> None:
        """Refuse (StoreError naming the field) if any of ``expect`` differs from the manifest (see `open`)."""
        for key, want in expect.items():
            self._check_field(self.path, self._manifest, key, want)

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
        """Re-read the manifest (another rank or machine may have finalized epochs)."""
        self._manifest = json.loads((self.path / MANIFEST).read_text())
        self._manifest.setdefault("pipeline", DEFAULT_PIPELINE)

    def finalized_chunks(self, epoch: int) -> dict[int, Path]:
        """Chunks of an unfinished epoch whose files are complete (size and checksum match their name)."""
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
            chunk_sums, blobs = [], []
            for c in range(self.num_chunks):
                data = done[c].read_bytes()
                digest = hashlib.sha256(data).hexdigest()
                if done[c].name != f"c{c:06d}-{digest}.bin":
                    raise StoreError(f"{done[c]}: chunk checksum mismatch (corrupt part file); delete it and rerun")
                chunk_sums.append(digest)
                blobs.append(data)
            whole = hashlib.sha256()
            for b in blobs:
                whole.update(b)
            _write_chunks(self.epoch_file(epoch), blobs)
            self._manifest["epochs"][str(epoch)] = {
                "file": self.epoch_file(epoch).name, "bytes": sum(len(b) for b in blobs),
                "sha256": whole.hexdigest(), "chunk_sha256": chunk_sums}
            _write_chunks(self.path / MANIFEST,
                                [json.dumps(self._manifest, indent=1, sort_keys=True).encode()])
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
                    raise StoreError(f"{src}: checksum mismatch, not merged")
                _write_chunks(self.epoch_file(e), [data])
                self._manifest["epochs"][str(e)] = dict(info, file=self.epoch_file(e).name)
                added.append(e)
            _write_chunks(self.path / MANIFEST,
                                [json.dumps(self._manifest, indent=1, sort_keys=True).encode()])
        self._maps.clear()
        return added

    def _remove_finished_parts(self) -> None:
        for e in self.epochs:
            shutil.rmtree(self._parts_dir(e), ignore_errors=True)

    # -------------------------------------------------------------------------------------------- reader
    def _map(self, epoch: int) -> np.memmap:
        mm = self._maps.get(epoch)
        if mm is None:
            info = self._manifest["epochs"].get(str(epoch))
            if info is None:
                raise StoreError(f"{self.path}: epoch {epoch} is not in the store (finalized: {self.epochs})")
            f = self.path / info["file"]
            if not f.is_file():
                raise StoreError(f"{f}: record file missing")
            size = f.stat().st_size
            if size != info["bytes"] or size != self.length * self.record_bytes:
                raise StoreError(f"{f}: truncated or wrong size ({size} bytes, manifest says {info['bytes']}, "
                                 f"{self.length} records × {self.record_bytes} B expected)")
            mm = np.memmap(f, dtype=np.uint8, mode="r", shape=(self.length, self.record_bytes))
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
        """Check every finalized epoch's file size and checksums; {epoch: [problems]} (empty lists if fine)."""
        problems: dict[int, list[str]] = {}
        for e in self.epochs:
            info, errs = self._manifest["epochs"][str(e)], []
            f = self.path / info["file"]
            if not f.is_file():
                problems[e] = [f"{f.name}: missing"]
                continue
            size = f.stat().st_size
            if size != info["bytes"]:
                errs.append(f"{f.name}: {size} bytes, manifest says {info['bytes']} (truncated?)")
            elif file_sha256(f) != info["sha256"]:
                chunk_bytes = self._manifest["chunk_size"] * self.record_bytes
                with open(f, "rb") as fh:
                    for c, want in enumerate(info["chunk_sha256"]):
                        if hashlib.sha256(fh.read(chunk_bytes)).hexdigest() != want:
                            errs.append(f"{f.name}: chunk {c} (indices {self.chunk_range(c).start}.."
                                        f"{self.chunk_range(c).stop - 1}) checksum mismatch")
                errs = errs or [f"{f.name}: checksum mismatch"]
            problems[e] = errs
        return problems

    def __repr__(self) -> str:
        m = self._manifest
        return (f"LogitStore({str(self.path)!r}, teacher={m['teacher']['name']}, C={m['num_classes']}, "
                f"K={m['topk']}, {m['value_format']}, N={self.length}, epochs={self.epochs})")
