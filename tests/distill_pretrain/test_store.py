"""The logit store: record codec, Eq. 2, chunked resumable writing, refusal of mismatches, corruption detection."""
import numpy as np
import pytest
import torch

from distill_pretrain import LogitStore, StoreError, recover_dense
from distill_pretrain.store import decode_records, encode_records, official_record_bytes, record_layout


def _softmax_topk(rng, b, c, k, temperature=3.0):
    logits = rng.normal(size=(b, c)) * temperature
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    idx = np.argsort(-p, 1)[:, :k]
    return p, idx, np.take_along_axis(p, idx, 1)


@pytest.mark.parametrize("num_classes", [10, 1000, 21841, 70000])
@pytest.mark.parametrize("value_format", ["fp16", "compact"])
def test_codec_roundtrip(num_classes, value_format):
    rng = np.random.default_rng(num_classes)
    k = 10
    _, idx, val = _softmax_topk(rng, 64, num_classes, k)
    seeds = rng.integers(0, 2**32, 64, dtype=np.uint64).astype(np.uint32)
    raw = encode_records(seeds, idx, val, num_classes, value_format)
    assert raw.shape == (64, record_layout(num_classes, k, value_format)["record_bytes"])
    out = decode_records(raw, num_classes, k, value_format)
    assert out.seeds.dtype == np.uint32 and out.indices.dtype == np.int64 and out.values.dtype == np.float32
    np.testing.assert_array_equal(out.seeds, seeds)
    np.testing.assert_array_equal(out.indices, idx)  # no index wrap-around above 32,767 classes (official bug)
    big = val > 1e-3
    rel = 2e-3 if value_format == "fp16" else 0.1  # compact: ±4.6 % code step, then rescaled to the stored mass
    np.testing.assert_allclose(out.values[big], val[big], rtol=rel)


def test_record_sizes_against_official():
    assert record_layout(1000, 10, "fp16")["record_bytes"] == official_record_bytes(10) == 44
    assert record_layout(70000, 10, "fp16")["index_dtype"] == "int32"
    for c in (1000, 21841):
        for k in (10, 100):
            assert record_layout(c, k, "compact")["record_bytes"] <= 0.75 * official_record_bytes(k)


@pytest.mark.parametrize("k", [1, 10, 100])
def test_compact_targets_stay_close_to_fp16(k):
    """Compact keeps the top-K mass exactly enough that Eq. 2's recovered targets barely move (KL ≤ 1e-3)."""
    rng = np.random.default_rng(k)
    _, idx, val = _softmax_topk(rng, 256, 1000, k, temperature=4.0)
    dense = {}
    for fmt in ("fp16", "compact"):
        rec = decode_records(encode_records(np.zeros(256, np.uint32), idx, val, 1000, fmt), 1000, k, fmt)
        dense[fmt] = recover_dense(torch.from_numpy(rec.indices), torch.from_numpy(rec.values), 1000).double()
    kl = (dense["fp16"] * (dense["fp16"].log() - dense["compact"].log())).sum(1).mean().item()
    assert 0 < kl <= 1e-3


def test_recover_dense_is_eq2():
    rng = np.random.default_rng(0)
    p, idx, val = _softmax_topk(rng, 4, 50, 5)
    dense = recover_dense(torch.from_numpy(idx), torch.from_numpy(val).float(), 50)
    assert dense.shape == (4, 50)
    torch.testing.assert_close(dense.sum(1), torch.ones(4))
    torch.testing.assert_close(dense.gather(1, torch.from_numpy(idx)), torch.from_numpy(val).float())
    rest = (1 - val.sum(1)) / 45
    mask = torch.ones(4, 50, dtype=torch.bool).scatter_(1, torch.from_numpy(idx), False)
    torch.testing.assert_close(dense[mask].view(4, 45), torch.from_numpy(rest).float()[:, None].expand(4, 45))


def _spec(**over):
    spec = dict(teacher=dict(name="mobilenet_v2", weights_sha256="ab" * 32), num_classes=1000, topk=5,
                dataset=dict(type="FashionMNIST", length=10, sha256="cd" * 32), transform=dict(img_size=32),
                base_seed=0, value_format="fp16", chunk_size=4)
    spec.update(over)
    return spec


def _fill_epoch(store, epoch, rank=0, world=1):
    rng = np.random.default_rng(epoch)
    for c in store.pending_chunks(epoch, rank, world):
        r = store.chunk_range(c)
        _, idx, val = _softmax_topk(rng, len(r), store.num_classes, store.topk)
        store.write_chunk(epoch, c, np.array(list(r)) + 1000 * epoch, idx, val)


def test_write_read_and_chunk_ownership(tmp_path):
    store = LogitStore.create(tmp_path / "s", **_spec())
    assert store.num_chunks == 3 and store.pending_chunks(0, 0, 2) == [0, 2] and store.pending_chunks(0, 1, 2) == [1]
    _fill_epoch(store, 0, rank=1, world=2)
    assert not store.finalize_epoch(0)  # chunks of rank 0 missing
    assert store.pending_chunks(0, 1, 2) == []  # resumable: written chunks are skipped
    _fill_epoch(store, 0, rank=0, world=2)
    assert store.finalize_epoch(0) and store.epochs == [0]
    assert not (tmp_path / "s" / "epoch_0000.parts").exists()
    reader = LogitStore.open(tmp_path / "s", expect=dict(topk=5, num_classes=1000))
    out = reader.read(0, [9, 0, 4])
    np.testing.assert_array_equal(out.seeds, [9, 0, 4])
    assert out.indices.shape == (3, 5) and out.values.shape == (3, 5)
    assert reader.verify_checksums() == {0: []}
    with pytest.raises(StoreError, match="epoch 1 is not in the store"):
        reader.read(1, [0])


@pytest.mark.parametrize("field,value", [
    ("topk", 10), ("num_classes", 21841), ("teacher", dict(name="tf_efficientnet_lite0", weights_sha256="ef" * 32)),
    ("transform", dict(img_size=64)), ("dataset", dict(type="FashionMNIST", length=11, sha256="00" * 32)),
    ("value_format", "compact")])
def test_mismatch_is_refused_naming_the_field(tmp_path, field, value):
    LogitStore.create(tmp_path / "s", **_spec())
    with pytest.raises(StoreError, match=f"field '{field}'"):
        LogitStore.open(tmp_path / "s", expect={field: value})
    with pytest.raises(StoreError, match=f"field '{field}'"):
        LogitStore.create(tmp_path / "s", **_spec(**{field: value}))


def test_corrupt_part_file_is_refused_when_the_epoch_is_assembled(tmp_path):
    store = LogitStore.create(tmp_path / "s", **_spec())
    _fill_epoch(store, 0)
    part = sorted((tmp_path / "s" / "epoch_0000.parts").glob("c000000-*.bin"))[0]  # its name carries its sha256
    part.write_bytes(b"\0" * part.stat().st_size)
    with pytest.raises(StoreError, match="checksum mismatch"):
        store.finalize_epoch(0)


def test_resume_with_another_batch_size_is_refused_naming_both(tmp_path):
    LogitStore.create(tmp_path / "s", **_spec(batch_size=4))
    assert LogitStore.create(tmp_path / "s", **_spec(batch_size=4)).manifest["batch_size"] == 4
    with pytest.raises(StoreError, match=r"field 'batch_size' is 4, but this run uses 8"):
        LogitStore.create(tmp_path / "s", **_spec(batch_size=8))


def test_reopening_removes_orphaned_temps_unless_told_not_to(tmp_path):
    store = LogitStore.create(tmp_path / "s", **_spec())
    _fill_epoch(store, 0)
    root = tmp_path / "s"
    temps = [root / ".epoch_0000.bin.k1ll3d.tmp", root / ".manifest.json.x9.tmp",
             root / "epoch_0000.parts" / ".c000001-ab.bin.q2.tmp"]
    for t in temps:
        t.write_bytes(b"\0" * 100)
    LogitStore.create(root, **_spec(), remove_temps=False)  # another rank of the same run: leaves them
    assert all(t.exists() for t in temps)
    LogitStore.create(root, **_spec())
    assert not list(root.rglob("*.tmp"))
    assert store.finalize_epoch(0)  # the finished chunks were kept


def test_epochs_saved_apart_merge_into_the_same_store(tmp_path):
    """Epochs saved on two machines (separate stores) merge into bytes equal to one run's."""
    one = LogitStore.create(tmp_path / "one", **_spec())
    a = LogitStore.create(tmp_path / "a", **_spec())
    b = LogitStore.create(tmp_path / "b", **_spec())
    for store, epochs in ((one, (0, 1)), (a, (0,)), (b, (1,))):
        for e in epochs:
            _fill_epoch(store, e)
            store.finalize_epoch(e)
    assert a.merge(tmp_path / "b") == [1] and a.merge(b) == []
    files = lambda p: {f.name: f.read_bytes() for f in p.iterdir() if not f.name.startswith(".")}  # noqa: E731
    assert files(tmp_path / "a") == files(tmp_path / "one")
    with pytest.raises(StoreError, match="field 'topk'"):
        a.merge(LogitStore.create(tmp_path / "c", **_spec(topk=3)))


@pytest.mark.parametrize("num_classes", [2, 10, 100, 256, 1000, 21841, 65536, 2**22, 2**24])
@pytest.mark.parametrize("k", [1, 3, 100])
def test_compact_decoder_reads_every_field_width(num_classes, k):
    """Field widths 8..31 bits: single-run and multi-run (16- and 24-bit indices), 32- and 64-bit word paths."""
    if k > num_classes:
        pytest.skip("K > C")
    rng = np.random.default_rng(k)
    idx = np.stack([rng.choice(num_classes, k, replace=False) for _ in range(37)])
    idx[0] = np.arange(num_classes - k, num_classes)  # the largest indices: every bit of the field set
    val = np.sort(rng.dirichlet(np.ones(max(k, 8)), 37)[:, :k], 1)[:, ::-1]
    seeds = rng.integers(0, 2**32, 37, dtype=np.uint64).astype(np.uint32)
    seeds[0] = 2**32 - 1
    out = decode_records(encode_records(seeds, idx, val, num_classes, "compact"), num_classes, k, "compact")
    np.testing.assert_array_equal(out.seeds, seeds)
    np.testing.assert_array_equal(out.indices, idx)
    big = val > 1e-3
    np.testing.assert_allclose(out.values[big], val[big], rtol=0.1)


@pytest.mark.parametrize("num_classes,k,value_format,digest", [
    (1000, 5, "fp16", "a9ff56c6a259d884"), (1000, 5, "compact", "ff05f4d1dfb32bd5"),
    (21841, 100, "fp16", "04c2fee46e4337fb"), (21841, 100, "compact", "b9208fc6a27bf8d9")])
def test_record_bytes_are_pinned(num_classes, k, value_format, digest):
    """The encoder's bytes equal those of the first (per-byte) encoder, digests taken from it: a faster encoder
    must not change what a store holds."""
    import hashlib
    rng = np.random.default_rng(num_classes + k)
    idx = np.stack([rng.choice(num_classes, k, replace=False) for _ in range(16)])
    val = np.sort(rng.dirichlet(np.ones(128) * 0.1, 16)[:, :k], 1)[:, ::-1].astype(np.float32)
    seeds = (np.arange(16, dtype=np.uint64) * 2654435761 % 2**32).astype(np.uint32)
    raw = encode_records(seeds, idx, val, num_classes, value_format)
    assert hashlib.sha256(raw.tobytes()).hexdigest()[:16] == digest
