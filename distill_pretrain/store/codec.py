"""Record codec of the logit store: the byte layout of one record, batch encode / decode (``fp16`` and the
bit-packed ``compact`` format; see the package doc), and paper Eq. 2's dense recovery of sparse targets."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .errors import StoreError

VALUE_FORMATS = ("fp16", "compact")
VALUE_BITS, VALUE_P_MIN = 7, 1e-5  # compact values: 7-bit log scale on [1e-5, 1]
REST_BITS, REST_P_MIN = 12, 1e-9  # compact rest mass (1 - sum of top-K): 12-bit logit scale, code 0 = 0


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
