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

Modules: `codec` (record layout, encode / decode, Eq. 2's `recover_dense`), `manifest` (fields, sealing, parsing,
checks, `config_hash`), `logit_store` (`LogitStore`: create / write_chunk / finalize_epoch / merge / open / read /
verify_checksums), `errors` (`StoreError`).
"""
from .codec import (REST_BITS, REST_P_MIN, VALUE_BITS, VALUE_FORMATS, VALUE_P_MIN, SparseTargets, decode_records,
                    encode_records, index_bits, official_record_bytes, record_layout, recover_dense)
from .errors import StoreError
from .logit_store import LogitStore
from .manifest import (DEFAULT_PIPELINE, EXPECTABLE, FIELDS, FORMAT, MANIFEST, SEED_POLICY, check_manifest,
                       config_hash, load_manifest)

__all__ = ["StoreError", "SparseTargets", "recover_dense", "index_bits", "record_layout", "official_record_bytes",
           "encode_records", "decode_records", "VALUE_FORMATS", "VALUE_BITS", "VALUE_P_MIN", "REST_BITS",
           "REST_P_MIN", "FORMAT", "SEED_POLICY", "MANIFEST", "EXPECTABLE", "DEFAULT_PIPELINE", "FIELDS",
           "config_hash", "load_manifest", "check_manifest", "LogitStore"]
