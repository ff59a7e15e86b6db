"""Image sources (ImageFolder, image list, torchvision Fashion-MNIST, scikit-image photos) and teacher building."""
import numpy as np
import pytest
import skimage.data
from PIL import Image

from distill_pretrain import build_dataset, build_teacher


@pytest.fixture()
def photo_folder(tmp_path):
    for cls, names in {"cat": ["chelsea", "cat"], "cup": ["coffee"]}.items():
        (tmp_path / cls).mkdir()
        for name in names:
            Image.fromarray(getattr(skimage.data, name)()).resize((64, 48)).save(tmp_path / cls / f"{name}.jpg")
    return tmp_path


def test_image_folder_and_image_list(photo_folder):
    ds = build_dataset(dict(type="ImageFolder", root=str(photo_folder)))
    assert len(ds) == 3 and [ds[i][1] for i in range(3)] == [0, 0, 1]
    img, _ = ds[0]
    assert img.mode == "RGB" and img.size == (64, 48)
    unlabeled = build_dataset(dict(type="ImageList", root=str(photo_folder)))
    assert len(unlabeled) == 3 and unlabeled[2][1] == -1
    before = ds.identity
    assert before == build_dataset(dict(type="ImageFolder", root=str(photo_folder))).identity
    Image.fromarray(skimage.data.astronaut()).resize((32, 32)).save(photo_folder / "cup" / "astronaut.png")
    after = build_dataset(dict(type="ImageFolder", root=str(photo_folder))).identity
    assert after["length"] == 4 and after["sha256"] != before["sha256"]
    assert build_dataset(dict(type="ImageFolder", root=str(photo_folder), limit=2)).identity["length"] == 2


def test_fashion_mnist_and_photos():
    fm = build_dataset(dict(type="FashionMNIST", split="test", limit=5))
    img, label = fm[0]
    assert img.mode == "RGB" and img.size == (28, 28) and 0 <= label < 10
    arr = np.asarray(img)
    assert (arr[..., 0] == arr[..., 1]).all() and arr.std() > 0  # grey copied into 3 channels, real pixels
    assert fm.identity["split"] == "test"
    assert fm.identity != build_dataset(dict(type="FashionMNIST", split="train", limit=5)).identity
    photos = build_dataset(dict(type="SkimagePhotos", names=["coffee", "camera"]))
    assert len(photos) == 2 and photos[1][0].mode == "RGB" and photos[1][1] == -1


def test_bad_configs_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="'root'"):
        build_dataset(dict(type="ImageFolder"))
    with pytest.raises(FileNotFoundError, match="no images"):
        build_dataset(dict(type="ImageList", root=str(tmp_path)))
    with pytest.raises(ValueError, match="NotADataset"):
        build_dataset(dict(type="NotADataset"))
    with pytest.raises(FileNotFoundError, match="weights"):
        build_teacher(dict(type="torchvision", name="mobilenet_v2", weights=str(tmp_path / "missing.pth")))
    with pytest.raises(ValueError, match="cannot load by order"):
        build_teacher(dict(type="timm", name="resnet18", weights="asset:efficientnet_lite0", by_order=True))
