"""Store integrity: every corruption is caught by `verify` AND by a reader (at open, `require_epochs`, or the
epoch's first read), each with a message naming the file and the manifest field."""
import json
import shutil

import numpy as np
import pytest

from distill_pretrain import LogitStore, StoreError, verify
from distill_pretrain.store import MANIFEST, check_manifest
from distill_pretrain.store.manifest import seal


def _make(path):
    store = LogitStore.create(path, teacher=dict(name="mobilenet_v2", weights_sha256="ab" * 32, num_classes=1000),
                              num_classes=1000, topk=5, dataset=dict(type="FashionMNIST", length=10, sha256="cd" * 32),
                              transform=dict(img_size=32), base_seed=0, chunk_size=4, batch_size=2,
                              extra=dict(epochs=2))
    rng = np.random.default_rng(0)
    for epoch in (0, 1):
        for c in store.pending_chunks(epoch):
            r = store.chunk_range(c)
            idx = np.argsort(rng.random((len(r), 1000)), 1)[:, :5]
            val = np.sort(rng.dirichlet(np.ones(1000) * 0.05, len(r))[:, :5], 1)[:, ::-1]
            store.write_chunk(epoch, c, np.arange(r.start, r.stop) + 100 * epoch, idx, val)
        assert store.finalize_epoch(epoch)
    return store


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    return _make(tmp_path_factory.mktemp("pristine") / "store").path


@pytest.fixture
def store_dir(pristine, tmp_path):
    return shutil.copytree(pristine, tmp_path / "store")


def _flip(offset_in_record):
    def corrupt(root):
        f = root / "epoch_0001.bin"
        data = bytearray(f.read_bytes())
        record_bytes = len(data) // 10
        data[record_bytes * 5 + offset_in_record % record_bytes] ^= 0x01  # index 5 lies in chunk 1
        f.write_bytes(bytes(data))
    return corrupt


def _edit_manifest(edit):
    def corrupt(root):
        m = json.loads((root / MANIFEST).read_text())
        edit(m)
        (root / MANIFEST).write_text(json.dumps(m, indent=1, sort_keys=True))
    return corrupt


def _resize(delta):
    def corrupt(root):
        f = root / "epoch_0001.bin"
        data = f.read_bytes()
        f.write_bytes(data[:delta] if delta < 0 else data + b"\0" * delta)
    return corrupt


def _append_garbage(root):
    with open(root / MANIFEST, "ab") as f:
        f.write(b"\n}junk")


EPOCH_FILE_FLIPS = {  # verify names the chunk and field; the reader refuses the epoch at its first read
    "seed byte": _flip(0), "index byte": _flip(4), "value byte": _flip(-1)}
AT_OPEN = {  # (corruption, file, field) caught by verify and by LogitStore.open
    "truncated epoch file": (_resize(-3), "epoch_0001.bin", "'epochs.1.bytes'"),
    "extended epoch file": (_resize(7), "epoch_0001.bin", "'epochs.1.bytes'"),
    "missing epoch file": (lambda root: (root / "epoch_0001.bin").unlink(), "epoch_0001.bin", "'epochs.1'"),
    "topk edited": (_edit_manifest(lambda m: m.update(topk=4)), MANIFEST, "field 'topk'"),
    "num_classes edited": (_edit_manifest(lambda m: m.update(num_classes=100)), MANIFEST, "field 'num_classes'"),
    "teacher edited": (_edit_manifest(lambda m: m["teacher"].update(name="resnet50")), MANIFEST, "field 'teacher'"),
    "garbage appended": (_append_garbage, MANIFEST, "5 trailing bytes after the JSON"),
}


def test_a_pristine_store_passes_both(store_dir, capsys):
    assert verify.main([str(store_dir)]) == 0
    store = LogitStore.open(store_dir)
    store.require_epochs([0, 1])
    np.testing.assert_array_equal(store.read(1, [5, 0]).seeds, [105, 100])


@pytest.mark.parametrize("name", EPOCH_FILE_FLIPS)
def test_flipped_byte(store_dir, capsys, name):
    EPOCH_FILE_FLIPS[name](store_dir)
    assert verify.main([str(store_dir)]) == 1
    out = capsys.readouterr().out
    assert "epoch_0001.bin: chunk 1 (indices 4..7) fails manifest field 'epochs.1.chunk_sha256'" in out
    store = LogitStore.open(store_dir)  # sizes are right: the flip shows at the epoch's first read
    store.read(0, [5])  # another epoch stays readable
    with pytest.raises(StoreError, match=r"epoch_0001.bin: corrupt: chunk 1 \(indices 4..7\) fail manifest field "
                                         r"'epochs.1.chunk_crc32'"):
        store.read(1, [0])


@pytest.mark.parametrize("name", AT_OPEN)
def test_caught_at_open(store_dir, capsys, name):
    corrupt, file, field = AT_OPEN[name]
    corrupt(store_dir)
    assert verify.main([str(store_dir)]) == 1
    captured = capsys.readouterr()
    assert f"{file}" in captured.out + captured.err and field in captured.out + captured.err
    with pytest.raises(StoreError, match=rf"{file}.*{field}"):
        LogitStore.open(store_dir)


def test_missing_epoch_is_refused_before_the_run(store_dir, capsys):
    assert verify.main([str(store_dir), "--epochs-planned", "3"]) == 1
    assert "missing [2]" in capsys.readouterr().out
    store = LogitStore.open(store_dir)
    with pytest.raises(StoreError, match=r"manifest.json: field 'epochs' lacks epoch\(s\) \[2\]"):
        store.require_epochs(range(3))


def test_topk_edit_is_not_reported_as_truncation(store_dir, capsys):
    AT_OPEN["topk edited"][0](store_dir)
    assert verify.main([str(store_dir), "--num-samples", "2"]) == 1
    err = capsys.readouterr().err
    assert "field 'topk' does not match its digest" in err and "truncated" not in err


@pytest.mark.parametrize("edit,field", [
    (lambda m: m.update(topk=4), "record_bytes"),  # resealed: the derived size gives it away
    (lambda m: m.update(index_dtype="int32"), "index_dtype"),
    (lambda m: m["teacher"].update(num_classes=21841), "num_classes"),
    (lambda m: m["epochs"]["1"]["chunk_crc32"].pop(), "epochs.1.chunk_crc32"),
    (lambda m: m["epochs"]["1"].update(bytes=1), "epochs.1.bytes"),
])
def test_resealed_inconsistent_manifest_names_the_derived_field(pristine, edit, field):
    m = json.loads((pristine / MANIFEST).read_text())
    edit(m)
    with pytest.raises(StoreError, match=rf"manifest.json: field '{field}'"):
        check_manifest(seal(m), pristine / MANIFEST)


def test_unsealed_or_old_manifest_is_refused(pristine):
    m = json.loads((pristine / MANIFEST).read_text())
    with pytest.raises(StoreError, match="field 'extra' does not match"):
        check_manifest({**m, "extra": {"epochs": 3}}, pristine / MANIFEST)
    with pytest.raises(StoreError, match="field 'x' is not a store field"):
        check_manifest({**m, "x": 1}, pristine / MANIFEST)
    with pytest.raises(StoreError, match="predates manifest checksums"):
        check_manifest({**m, "format": "tinyvit-bench/logit-store/v1"}, pristine / MANIFEST)


def test_verify_checks_what_readers_check(store_dir, capsys):
    """A store verify passes is one a reader accepts: a wrong chunk crc32 (resealed manifest) fails both."""
    m = json.loads((store_dir / MANIFEST).read_text())
    m["epochs"]["1"]["chunk_crc32"][1] ^= 1
    (store_dir / MANIFEST).write_text(json.dumps(seal(m)))
    assert verify.main([str(store_dir)]) == 1
    assert "epoch_0001.bin: chunk 1 fails manifest field 'epochs.1.chunk_crc32'" in capsys.readouterr().out
    with pytest.raises(StoreError, match="chunk 1 .* fail manifest field 'epochs.1.chunk_crc32'"):
        LogitStore.open(store_dir).read(1, [0])
