"""save_logits + verify with a real ImageNet teacher (torchvision MobileNetV2 weights) over real Fashion-MNIST
images; kill -9 at random points then rerun gives a byte-identical store; world size does not change the bytes."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from distill_pretrain import AugmentConfig, LogitStore, ReplayDataset, StoreError, build_dataset, build_teacher
from distill_pretrain import save_logits, verify

REPO = Path(__file__).resolve().parents[2]
CONFIG = str(REPO / "configs" / "distill" / "save_logits_mobilenetv2_fmnist.py")
SMALL = ["dataset.limit=16", "augment.img_size=32", "store.chunk_size=4", "batch_size=4", "num_workers=0",
         "epochs=2"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _options(path, *extra):
    return ["--cfg-options", f"store.path={path}", *SMALL, *extra]


def _run(path, *extra, torchrun=False):
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
                "-m"] if torchrun else [sys.executable, "-m"]
    return [*launcher, "distill_pretrain.save_logits", CONFIG, *_options(path, *extra)]


def _store_bytes(path):
    return {p.name: p.read_bytes() for p in sorted(Path(path).iterdir()) if not p.name.startswith(".")}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    path = tmp_path_factory.mktemp("ref") / "store"
    subprocess.run(_run(path), check=True, env=ENV, timeout=300, capture_output=True)
    return path


@pytest.fixture
def reference_threads():
    """In-process runs at the reference's thread count: CPU reductions split by thread, so a store's bytes depend
    on it (a run at 2 threads differs from the 1-thread reference in the last fp16 bit; reruns at one count match)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(int(ENV["OMP_NUM_THREADS"]))
    yield
    torch.set_num_threads(threads)


def test_saved_topk_is_the_teachers(reference, tmp_path):
    store = LogitStore.open(reference, expect=dict(topk=10, num_classes=1000, value_format="fp16"))
    assert store.epochs == [0, 1] and store.length == 16
    # independent check: the teacher on the replayed sample gives the stored top-K
    teacher, ident = build_teacher(dict(type="torchvision", name="mobilenet_v2", weights="asset:mobilenet_v2"))
    replay = ReplayDataset(build_dataset(dict(type="FashionMNIST", split="train", limit=16)),
                           AugmentConfig.coerce(store.manifest["transform"]), base_seed=0)
    items = [replay.get(i, 1) for i in (0, 5, 11)]
    with torch.no_grad():
        probs = teacher(torch.stack([it["image"] for it in items])).softmax(-1)
    rec = store.read(1, [0, 5, 11])
    np.testing.assert_array_equal(rec.seeds, [it["seed"] for it in items])
    np.testing.assert_array_equal(rec.indices[:, :3], probs.topk(3).indices.numpy())
    np.testing.assert_allclose(rec.values, probs.topk(10).values.numpy(), atol=1e-3)
    assert any(it["mix"] is not None for it in items)  # the teacher saw mixed images
    # the verify entry point re-runs the teacher from the manifest alone
    out = tmp_path / "verify.json"
    assert verify.main([str(reference), "--num-samples", "8", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["rerun"]["seed_mismatches"] == 0 and report["rerun"]["topk_overlap"] >= 0.95
    assert report["rerun"]["value_abs_err_max"] < 2e-3


def test_mismatching_rerun_is_refused(reference):
    with pytest.raises(StoreError, match="field 'topk'"):
        save_logits.main([CONFIG, *_options(reference, "store.topk=5")])
    assert LogitStore.open(reference).manifest["batch_size"] == 4
    with pytest.raises(StoreError, match="field 'batch_size' is 4, but this run uses 8"):
        save_logits.main([CONFIG, *_options(reference, "batch_size=8")])


def test_rerun_after_a_kill_during_finalisation_leaves_no_temp_files(reference, reference_threads, tmp_path):
    """A kill while epoch 1's file (and the manifest) were being written leaves their temps; the rerun removes
    them and finishes the store byte-identical to an uninterrupted run."""
    path = tmp_path / "store"
    assert save_logits.main([CONFIG, *_options(path), "--epochs", "0"]) == 0
    epoch_size = (reference / "epoch_0001.bin").stat().st_size
    orphans = [path / ".epoch_0001.bin.k1ll3d.tmp", path / ".manifest.json.k1ll3d.tmp",
               path / "epoch_0001.parts" / ".c000002-0f.bin.k1ll3d.tmp"]
    for orphan in orphans:
        orphan.parent.mkdir(exist_ok=True)
        orphan.write_bytes(b"\0" * epoch_size)
    assert save_logits.main([CONFIG, *_options(path)]) == 0
    assert not list(path.rglob("*.tmp")) and not list(path.glob("*.parts"))
    assert _store_bytes(path) == _store_bytes(reference)


@pytest.mark.slow
def test_kill9_then_resume_is_byte_identical(reference, tmp_path):
    path = tmp_path / "store"
    rng = np.random.default_rng(int(time.time()))
    targets = sorted(rng.choice(np.arange(1, 8), size=3, replace=False))  # of 2 epochs × 4 chunks
    killed = 0
    for target in targets:
        proc = subprocess.Popen(_run(path), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while proc.poll() is None:
            done = len(list(path.glob("epoch_*.parts/c*.bin"))) + 4 * len(list(path.glob("epoch_*.bin")))
            if done >= target:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.02)
        killed += proc.wait() == -signal.SIGKILL
    assert killed >= 1, "no run was killed mid-way"
    subprocess.run(_run(path), check=True, env=ENV, timeout=300, capture_output=True)
    assert _store_bytes(path) == _store_bytes(reference)
    assert verify.main([str(path)]) == 0


@pytest.mark.slow
def test_two_processes_write_the_same_store(reference, tmp_path):
    path = tmp_path / "store"
    subprocess.run(_run(path, torchrun=True), check=True, env=ENV, timeout=300, capture_output=True)
    assert _store_bytes(path) == _store_bytes(reference)
