"""Result records written by the real writers at tiny size, once per session (no hand-made record shapes).

- a TinyViT-21M checkpoint written by `contracts.checkpoint.save_checkpoint` whose meta names its
  pretraining (`mode='stored'`, `pretrain='in21k-distill'`); its weights are random: the numbers are not the
  paper's, the join is what is tested;
- `python -m transfer.linear_probe` on CIFAR-100 (torchvision's real class over files in the exact on-disk format)
  and on the offline Fashion-MNIST (a stand-in), with that checkpoint; the same CIFAR-100 probe with a random
  TinyViT-5M; `python -m transfer.few_shot` on an EuroSAT folder (5-way 5-shot) with the checkpoint;
- `benchmarks.probe_speed --quick` (task probe_speed / probe_fit).
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest


def write_cifar100(root: Path, classes: int = 3, train_per_class: int = 6, test_per_class: int = 2) -> Path:
    """CIFAR-100 python-pickle files (train, test, meta), as torchvision's CIFAR100 reads them."""
    base = root / "cifar-100-python"
    base.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for split, per_class in (("train", train_per_class), ("test", test_per_class)):
        labels = [c for c in range(classes) for _ in range(per_class)]
        # class-coloured images with noise: separable, so the probe learns something
        data = np.stack([np.clip(rng.normal(60 + 60 * c, 20, 3072), 0, 255) for c in labels]).astype(np.uint8)
        (base / split).write_bytes(pickle.dumps({"data": data, "fine_labels": labels,
                                                 "coarse_labels": [0] * len(labels)}))
    (base / "meta").write_bytes(pickle.dumps({"fine_label_names": [f"c{i}" for i in range(100)]}))
    return root


def write_eurosat(root: Path, classes: int = 5, per_class: int = 6) -> Path:
    """An EuroSAT-style class-folder tree of small JPEGs."""
    from PIL import Image
    rng = np.random.default_rng(1)
    for c in range(classes):
        for i in range(per_class):
            path = root / f"class{c}" / f"{i}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.clip(rng.normal(40 * c + 20, 15, (16, 16, 3)), 0, 255).astype(np.uint8)).save(path)
    return root


def write_student(path: Path, arch: str = "21m", **meta) -> Path:
    """A contract-2 TinyViT checkpoint (random weights) written by the trainer's own writer."""
    import torch

    from backbones import TinyViT
    from contracts.checkpoint import save_checkpoint
    torch.manual_seed(0)
    model = TinyViT(arch, num_classes=10)
    return save_checkpoint(path, model.state_dict(), {"arch": arch, "img_size": 224, "window_sizes": [7, 7, 14, 7],
                                                      "num_classes": 10, "epoch": 0, **meta})


@pytest.fixture(scope="session")
def student_writer():
    return write_student


@pytest.fixture(scope="session")
def cifar100_writer():
    return write_cifar100


@pytest.fixture(scope="session")
def student(tmp_path_factory) -> Path:
    return write_student(tmp_path_factory.mktemp("student") / "tinyvit_21m_in21k_distill.pth", mode="stored",
                         pretrain="in21k-distill")


@pytest.fixture(scope="session")
def records_dir(tmp_path_factory, student) -> Path:
    """The records folder the real writers filled (see the module doc)."""
    from contracts.assets import AssetMissing, fashion_mnist_root
    from transfer.few_shot.__main__ import main as few_shot_main
    from transfer.linear_probe.__main__ import main as probe_main

    from benchmarks import probe_speed
    work = tmp_path_factory.mktemp("writers")
    records = work / "records"
    cifar = write_cifar100(work / "cifar")
    probe = ["--dataset", "cifar100", "--data-root", str(cifar), "--resolution", "32", "--cache-dir",
             str(work / "cache"), "--results-dir", str(records), "--cfg-options", "verify_md5=False",
             "methods=[logreg]", "c_grid=[1.0]", "val_fraction=0.3"]
    probe_main(["--backbone", "tinyvit-21m", "--checkpoint", str(student), *probe])
    probe_main(["--backbone", "tinyvit-5m", *probe])
    try:
        fmnist = fashion_mnist_root()
    except AssetMissing as err:  # set up by `python -m contracts.assets fetch`
        pytest.skip(str(err))
    probe_main(["--backbone", "tinyvit-21m", "--checkpoint", str(student), "--dataset", "fashion_mnist",
                "--data-root", str(fmnist), "--resolution", "32", "--max-train", "30", "--max-test", "20",
                "--cache-dir", str(work / "cache"), "--results-dir", str(records), "--cfg-options",
                "methods=[logreg]", "c_grid=[1.0]", "val_fraction=0.3"])
    few_shot_main(["--backbone", "tinyvit-21m", "--checkpoint", str(student), "--dataset", "eurosat",
                   "--data-root", str(write_eurosat(work / "eurosat")), "--resolution", "32", "--shots", "5",
                   "--n-query", "1", "--n-episodes", "3", "--episodes-dir", str(work / "episodes"),
                   "--cache-dir", str(work / "cache"), "--results-dir", str(records), "--cfg-options",
                   "methods=[logreg]"])
    probe_speed.main(["--quick", "--backbones", "tinyvit-5m", "--records", str(records)])
    return records


# ------------------------------------------------------------------------------------------------ the suite runner
TINY_GRID = Path(__file__).resolve().parents[2] / "configs" / "suites" / "fmnist_tiny.py"


def write_tiny_grid(path: Path, seeds: tuple[int, ...] = (0,), extra: str = "") -> Path:
    """A spec inheriting configs/suites/fmnist_tiny.py (4 cells that run in seconds each), with `seeds` and the
    `extra` lines (MMEngine's merge: dicts merge, lists and values replace; `_delete_=True` replaces a dict)."""
    path.write_text(f'"""python -m benchmarks.suite {path}"""\n_base_ = [{str(TINY_GRID)!r}]\nseeds = {list(seeds)}\n'
                    + extra)
    return path


@pytest.fixture(scope="session")
def tiny_grid():
    return write_tiny_grid


@pytest.fixture(scope="session")
def grid_run(tmp_path_factory):
    """The tiny grid run once, uninterrupted, by the local launcher: (spec, out, printed output, result). Tests that
    change the output work on a copy."""
    import io

    from benchmarks.suite import run_suite
    folder = tmp_path_factory.mktemp("grid")
    spec = write_tiny_grid(folder / "tiny_grid.py")
    stream = io.StringIO()
    result = run_suite(spec, folder / "out", max_parallel=2, stream=stream)
    return spec, folder / "out", stream.getvalue(), result


def suite_metrics(out: Path) -> dict[str, list[dict]]:
    """Cell id → the metrics of the records a suite run left under `out` (timings left out)."""
    import json
    return {folder.name: [{k: v for k, v in json.loads(p.read_text())["metrics"].items() if k != "fit_s"}
                          for p in sorted(folder.glob("*.json"))]
            for folder in sorted((out / "records").iterdir())}


@pytest.fixture(scope="session")
def metrics_of():
    return suite_metrics


def _free_port_pair() -> int:
    import socket
    for _ in range(50):
        with socket.socket() as a, socket.socket() as b:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
            try:
                b.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return port
    raise RuntimeError("no two consecutive free ports")


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """A one-node SLURM cluster (tools/slurm_local.sh) for the session, on free ports; SLURM_CONF points at it.
    Not a skip when SLURM is missing: these tests must run (tools/setup_env.sh installs the Debian packages)."""
    import os
    import subprocess
    folder = tmp_path_factory.mktemp("slurm")
    script = Path(__file__).resolve().parents[2] / "tools" / "slurm_local.sh"
    env = {**os.environ, "SLURM_LOCAL_DIR": str(folder), "SLURM_LOCAL_PORT": str(_free_port_pair())}
    started = subprocess.run(["bash", str(script), "start"], env=env, capture_output=True, text=True, timeout=120)
    assert started.returncode == 0, f"tools/slurm_local.sh start failed:\n{started.stdout}\n{started.stderr}"
    conf = started.stdout.strip().splitlines()[-1].removeprefix("export SLURM_CONF=")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SLURM_CONF", conf)
        yield conf
    subprocess.run(["bash", str(script), "stop"], env=env, capture_output=True, timeout=60)
