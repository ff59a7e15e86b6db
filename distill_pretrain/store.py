"""Contract 1 — the sparse teacher-logit store (paper §3.1, Eq. 2).

A store is a directory that describes itself::

    STORE/manifest.json            format, teacher, C, K, dtypes, transform (+hash), dataset identity,
                                   seed policy, chunk and batch size, finalized epochs with their checksums,
                                   and `field_sha256`: a digest of every other field (a hand edit is caught)
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
into ``epoch_XXXX.bin`` (atomically) and records the file's sha256 and each chunk's sha256 and crc32 in the manifest.

Integrity a reader gets for free: `LogitStore.open` checks the manifest against itself (`check_manifest`: every
field against its digest, record size and dtypes against C/K/format, classes against the teacher's, the epoch
table against the layout) and every listed epoch file's size; the first read of an epoch checks its chunks' crc32
(zlib, ~3x faster than sha256 here; see `benchmarks.store_bench`); `require_epochs` refuses a run that would need
an epoch the store lacks. Every error names the file and the manifest field.

Bytes are reproducible for the same ``batch_size`` and ``chunk_size`` (and the same hardware, thread count and
library versions) whatever the number of processes, workers, kills and resumes: batches never cross a chunk, so
the teacher sees the same batches. The teacher's fp16 outputs depend on the batch composition (another batch size
moves ~10 % of fp16 values by one step), so the manifest records ``batch_size`` and a resume with another is refused.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import shutil
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch

from contracts.fileio import atomic_write, file_sha256, remove_orphaned_temps

FORMAT = "tinyvit-bench/logit-store/v2"  # v2: field_sha256, batch_size, chunk_crc32
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


def _write_fields(body: np.ndarray, start_bit: int, bits: int, fields: np.ndarray) -> None:
    """OR little-endian bit fields [B, count] of width ``bits`` into the zeroed, contiguous byte rows ``body``
    (padded by ≥ 8 bytes) at bit ``start_bit + j·bits``. Field t of every group (see `_read_fields`) goes through
    one strided byte view per byte it touches: no two fields of one view share a byte, and no fancy indexing."""
    rows, count = fields.shape
    g = 8 // math.gcd(bits, 8)
    gbytes, span = g * bits // 8, (bits + 7 + 7) // 8
    for t in range(min(g, count)):
        bit = start_bit + t * bits
        shifted = fields[:, t::g].astype(np.uint64) << np.uint64(bit & 7)
        for j in range(span):
            view = np.ndarray((rows, shifted.shape[1]), np.uint8, buffer=body, offset=(bit >> 3) + j,
                              strides=(body.strides[0], gbytes))
            view |= (shifted >> np.uint64(8 * j)).astype(np.uint8)  # the low byte


def _read_fields(buf: np.ndarray, rows: int, row_bytes: int, start_bit: int, bits: int, count: int) -> np.ndarray:
    """``count`` little-endian bit fields of width ``bits`` from bit ``start_bit`` of each of ``rows`` records laid
    out contiguously in ``buf`` (with a zero tail of ≥ 8 + bits bytes): uint32 [rows, count] (uint64 if wider).

    Vectorised without bit unpacking: field offsets repeat every g = 8 / gcd(bits, 8) fields (g·bits/8 bytes). A run
    of fields t0..t0+h-1 of a group sits at bytes b0 + u·⌊bits/8⌋ with shifts s0 + u·(bits mod 8), so one strided,
    unaligned word view [rows, groups, h] reads the whole run as long as its largest shift plus ``bits`` fits the
    word. One run (32- or 64-bit words) covers the group unless indices take 16 or 24 bits: one copy, one shift,
    one mask per batch.
    """
    g = 8 // math.gcd(bits, 8)
    gbytes, groups = g * bits // 8, -(-count // g)
    top_shift = (start_bit & 7) + (g - 1) * (bits & 7)  # of a single run over the whole group
    one_run = [w for w in (4, 8) if top_shift + bits <= 8 * w]
    word = np.dtype(f"<u{one_run[0] if one_run else (4 if bits + 7 <= 32 else 8)}")
    out, shifts = np.empty((rows, groups, g), word), np.empty(g, word)
    t0 = 0
    while t0 < g:
        s0 = (start_bit + t0 * bits) & 7
        h = 1
        while t0 + h < g and s0 + h * (bits & 7) + bits <= 8 * word.itemsize:
            h += 1
        view = np.ndarray((rows, groups, h), dtype=word, buffer=buf, offset=(start_bit + t0 * bits) >> 3,
                          strides=(row_bytes, gbytes, bits >> 3))
        np.copyto(out[:, :, t0:t0 + h], view)  # unaligned reads: copy first, shift aligned words after
        shifts[t0:t0 + h] = s0 + np.arange(h) * (bits & 7)
        t0 += h
    out >>= shifts
    out &= word.type((1 << bits) - 1)
    out = out.reshape(rows, groups * g)
    return out if groups * g == count else out[:, :count]


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
        # torch converts to fp16 ~75x faster than numpy (small values), with the same IEEE round-to-nearest-even
        out[:, end:] = torch.from_numpy(np.ascontiguousarray(values)).to(torch.float16).numpy().view(np.uint8)
    else:
        fields = indices.astype(np.int64) | (_log_codes(values, VALUE_BITS, VALUE_P_MIN) << index_bits(num_classes))
        rest = _rest_codes(np.clip(1.0 - values.astype(np.float64).sum(1), 0.0, 1.0))
        f = lay["field_bits"]
        body = np.zeros((b, end - 4 + 8), np.uint8)
        _write_fields(body, 0, f, fields)
        _write_fields(body, k * f, REST_BITS, rest[:, None])
        out[:, 4:] = body[:, :end - 4]
    return out


def decode_records(raw: np.ndarray, num_classes: int, topk: int, value_format: str) -> SparseTargets:
    """Unpack uint8 [B, record_bytes] records."""
    lay = record_layout(num_classes, topk, value_format)
    end = lay["body_end"]
    if value_format == "fp16":
        seeds = raw[:, :4].copy().view("<u4").reshape(-1).astype(np.uint32)
        idx = raw[:, 4:end].copy().view("<" + np.dtype(lay["index_dtype"]).str[1:]).astype(np.int64)
        val = torch.from_numpy(raw[:, end:].copy().view("<f2")).float().numpy()  # torch converts fp16 ~8x faster
        return SparseTargets(seeds=seeds, indices=idx, values=val)
    b, rb = raw.shape
    ib, f = index_bits(num_classes), lay["field_bits"]
    buf = np.zeros(b * rb + 8 + f, np.uint8)  # records back to back, then a zero tail for the last word reads
    buf[:b * rb] = raw.reshape(-1)
    seeds = np.ndarray((b,), dtype="<u4", buffer=buf, strides=(rb,)).astype(np.uint32)
    fields = _read_fields(buf, b, rb, 32, f, topk)
    idx = np.bitwise_and(fields, fields.dtype.type((1 << ib) - 1), dtype=np.int64)
    val = np.take(_VALUE_TABLE, (fields >> fields.dtype.type(ib)).astype(np.intp))
    rest = _REST_TABLE[_read_fields(buf, b, rb, 32 + topk * f, REST_BITS, 1)[:, 0]]
    kept = (1.0 - rest).astype(np.float32)  # the stored top-K mass: values are rescaled to sum to it exactly
    val *= (kept / val.sum(1))[:, None]
    return SparseTargets(seeds=seeds, indices=idx, values=val)


# ------------------------------------------------------------------------------------------------- helpers
def _write_chunks(path: Path, chunks: Iterable[bytes | memoryview]) -> None:
    atomic_write(path, lambda f: f.writelines(chunks))


def _canonical(obj: Any) -> Any:
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def config_hash(obj: Any) -> str:
    """sha256 of a JSON-able config (sorted keys)."""
    return hashlib.sha256(json.dumps(_canonical(obj), sort_keys=True).encode()).hexdigest()


def _field_digest(value: Any) -> str:
    return config_hash(value)[:16]


def _seal(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest with `field_sha256` = a digest of every other top-level field."""
    body = {k: v for k, v in manifest.items() if k != "field_sha256"}
    return {**body, "field_sha256": {k: _field_digest(v) for k, v in body.items()}}


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
              "base_seed", "chunk_size", "batch_size", "pipeline")
DEFAULT_PIPELINE = "pil"  # `create`'s default replay pipeline (`distill_pretrain.replay.PIPELINES`)
# Every manifest field and its JSON type.
FIELDS: dict[str, type | tuple[type, ...]] = {
    "format": str, "teacher": dict, "num_classes": int, "topk": int, "value_format": str, "index_dtype": str,
    "value_dtype": str, "record_bytes": int, "transform": dict, "transform_hash": str, "dataset": dict,
    "base_seed": int, "seed_policy": str, "chunk_size": int, "batch_size": (int, type(None)), "pipeline": str,
    "extra": dict,
    "epochs": dict, "field_sha256": dict}


def load_manifest(mpath: Path) -> dict[str, Any]:
    """Parse a manifest file, refusing anything but exactly one JSON object (e.g. garbage appended)."""
    text = mpath.read_bytes()
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as err:
        what = (f"{len(text) - err.pos} trailing bytes after the JSON object at offset {err.pos}"
                if err.msg == "Extra data" else f"invalid JSON ({err})")
        raise StoreError(f"{mpath}: corrupt manifest: {what}") from None
    except UnicodeDecodeError as err:
        raise StoreError(f"{mpath}: corrupt manifest: not UTF-8 text ({err})") from None
    if not isinstance(manifest, dict):
        raise StoreError(f"{mpath}: corrupt manifest: a JSON {type(manifest).__name__}, not an object")
    return manifest


def check_manifest(manifest: Mapping[str, Any], mpath: Path) -> None:
    """Check a manifest against itself; StoreError naming the file and the first bad field.

    Order: format, field set and types, each field against its digest in `field_sha256` (a hand edit of `topk`,
    `num_classes`, the teacher, ... is caught here), then derived fields: record size and dtypes from C, K and the
    value format; C against the teacher's class count; the transform hash; the epoch table against the layout.
    """
    def bad(field: str, why: str) -> StoreError:
        return StoreError(f"{mpath}: field {field!r} {why}")

    if manifest.get("format") != FORMAT:
        old = isinstance(manifest.get("format"), str) and manifest["format"].startswith(FORMAT.rsplit("/", 1)[0])
        raise bad("format", f"is {manifest.get('format')!r}, expected {FORMAT!r}"
                  + ("; the store predates manifest checksums and batch-size recording: save it again" if old else ""))
    for key, kind in FIELDS.items():
        if key not in manifest:
            raise bad(key, "is missing")
        if not isinstance(manifest[key], kind) or isinstance(manifest[key], bool):
            raise bad(key, f"has type {type(manifest[key]).__name__}, expected {kind}")
    for key in manifest:
        if key not in FIELDS:
            raise bad(key, "is not a store field (added by hand?)")
    sums = manifest["field_sha256"]
    for key in FIELDS:
        if key != "field_sha256" and sums.get(key) != _field_digest(manifest[key]):
            raise bad(key, f"does not match its digest in 'field_sha256' (edited after the store wrote it?): "
                           f"{manifest[key]!r:.200}")
    c, k, fmt = manifest["num_classes"], manifest["topk"], manifest["value_format"]
    try:
        lay = record_layout(c, k, fmt)
    except StoreError as err:
        raise StoreError(f"{mpath}: fields 'num_classes'/'topk'/'value_format': {err}") from None
    for key in ("record_bytes", "index_dtype", "value_dtype"):
        if manifest[key] != lay[key]:
            raise bad(key, f"is {manifest[key]!r}, but num_classes={c}, topk={k}, value_format={fmt!r} give "
                           f"{lay[key]!r}")
    teacher = manifest["teacher"]
    for key in ("name", "weights_sha256"):
        if not isinstance(teacher.get(key), str):
            raise bad("teacher", f"lacks {key!r}")
    if "num_classes" in teacher and teacher["num_classes"] != c:
        raise bad("num_classes", f"is {c}, but the teacher {teacher['name']!r} has {teacher['num_classes']} classes")
    if manifest["transform_hash"] != config_hash(manifest["transform"]):
        raise bad("transform_hash", "is not the hash of field 'transform'")
    length = manifest["dataset"].get("length")
    if not isinstance(length, int) or length <= 0:
        raise bad("dataset", f"has length {length!r}, expected a positive int")
    if manifest["chunk_size"] <= 0 or (manifest["batch_size"] is not None and manifest["batch_size"] <= 0):
        raise bad("chunk_size" if manifest["chunk_size"] <= 0 else "batch_size", "must be positive")
    chunks = math.ceil(length / manifest["chunk_size"])
    for e, info in manifest["epochs"].items():
        where = f"epochs.{e}"
        if not (e.isdigit() and isinstance(info, dict)):
            raise bad(where, "is not an epoch number with an entry")
        if info.get("file") != f"epoch_{int(e):04d}.bin":
            raise bad(f"{where}.file", f"is {info.get('file')!r}, expected 'epoch_{int(e):04d}.bin'")
        if info.get("bytes") != length * lay["record_bytes"]:
            raise bad(f"{where}.bytes", f"is {info.get('bytes')!r}, but {length} records × {lay['record_bytes']} B "
                                        f"= {length * lay['record_bytes']}")
        for key in ("chunk_sha256", "chunk_crc32"):
            if not isinstance(info.get(key), list) or len(info[key]) != chunks:
                raise bad(f"{where}.{key}", f"must list {chunks} chunk checksums")


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
        transform = _canonical(dict(transform))
        manifest = {
            "format": FORMAT, "teacher": _canonical(dict(teacher)), "num_classes": int(num_classes),
            "topk": int(topk), "value_format": value_format, "index_dtype": lay["index_dtype"],
            "value_dtype": lay["value_dtype"], "record_bytes": lay["record_bytes"],
            "transform": transform, "transform_hash": config_hash(transform),
            "dataset": _canonical(dict(dataset)), "base_seed": int(base_seed),
            "seed_policy": SEED_POLICY, "chunk_size": int(chunk_size),
            "batch_size": None if batch_size is None else int(batch_size), "pipeline": str(pipeline),
            "extra": _canonical(dict(extra or {})), "epochs": {},
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
        self._manifest = _seal(self._manifest)
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
            cls._check_field(path, manifest, key, want)
        store = cls(path, manifest)
        if check_files:
            for e in store.epochs:
                problem = store._file_problem(e)
                if problem:
                    raise StoreError(problem)
        return store

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
        if ok:
            return
        if key == "batch_size":
            raise StoreError(f"{path}: store field 'batch_size' is {have!r}, but this run uses {want!r}: the "
                             f"teacher's outputs depend on the batch composition, so resume with batch_size={have}")
        raise StoreError(f"{path}: store field {key!r} is {have!r}, but {want!r} was expected")

    def check(self, **expect: Any) -> None:
        """Refuse (StoreError naming the field) if any of ``expect`` differs from the manifest (see `open`)."""
        for key, want in expect.items():
            self._check_field(self.path, self._manifest, key, want)

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
