"""The logit store's manifest: its fields and their types, the per-field digests that seal it (`seal`), parsing
(`load_manifest`), the self-consistency check every reader runs (`check_manifest`) and the comparison of a field
with what a reader expects (`check_expected`)."""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any, Mapping

from .codec import record_layout
from .errors import StoreError

FORMAT = "tinyvit-bench/logit-store/v2"  # v2: field_sha256, batch_size, chunk_crc32
SEED_POLICY = "splitmix64(base_seed, epoch, index) >> 32"
MANIFEST = "manifest.json"


def canonical(obj: Any) -> Any:
    """A JSON-able object as it reads back from JSON (sorted keys; non-JSON values as strings)."""
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def config_hash(obj: Any) -> str:
    """sha256 of a JSON-able config (sorted keys)."""
    return hashlib.sha256(json.dumps(canonical(obj), sort_keys=True).encode()).hexdigest()


def _field_digest(value: Any) -> str:
    return config_hash(value)[:16]


def seal(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest with `field_sha256` = a digest of every other top-level field."""
    body = {k: v for k, v in manifest.items() if k != "field_sha256"}
    return {**body, "field_sha256": {k: _field_digest(v) for k, v in body.items()}}


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


def check_expected(path: Path, manifest: Mapping[str, Any], key: str, want: Any) -> None:
    """Refuse (StoreError naming the store and the field) if field ``key`` of ``manifest`` differs from what a
    reader expects (``want``; see `LogitStore.open` for the accepted forms of each key)."""
    if key not in EXPECTABLE:
        raise StoreError(f"cannot expect unknown store field {key!r}; known: {EXPECTABLE}")
    have = manifest.get(key)
    if key == "transform":
        want = want.to_dict() if hasattr(want, "to_dict") else want
        ok = config_hash(want) == manifest["transform_hash"]
    elif key == "teacher" and isinstance(want, str):
        ok = want in (have.get("name"), have.get("weights_sha256"))
    elif key == "teacher":
        want = canonical(dict(want))
        ok = all(have.get(k) == want.get(k) for k in ("name", "weights_sha256"))
    elif key == "dataset" and isinstance(want, str):
        ok = want == have.get("sha256")
    elif key == "dataset":
        want = canonical(dict(want))
        ok = all(have.get(k) == want.get(k) for k in ("length", "sha256"))
    elif key == "pipeline" and have != want:
        raise StoreError(f"{path}: the store was made by the {have!r} replay pipeline, this reader replays with "
                         f"{want!r}; the pixels would differ from what the teacher saw — use pipeline={have!r} "
                         f"or accept approximate replay explicitly")
    else:
        ok = canonical(want) == have
    if ok:
        return
    if key == "batch_size":
        raise StoreError(f"{path}: store field 'batch_size' is {have!r}, but this run uses {want!r}: the "
                         f"teacher's outputs depend on the batch composition, so resume with batch_size={have}")
    raise StoreError(f"{path}: store field {key!r} is {have!r}, but {want!r} was expected")
