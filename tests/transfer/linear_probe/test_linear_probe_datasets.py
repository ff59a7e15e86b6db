"""torchvision's real data set classes over tiny files written in each data set's exact on-disk layout."""
import pickle

import numpy as np
import pytest
import scipy.io
from PIL import Image

from transfer.linear_probe import DatasetNotFound, build_dataset
from transfer.features import dataset_targets


def _jpg(path, seed=0, size=(20, 16)):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)


def _pickle(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj))


def write_cifar10(root):
    base = root / "cifar-10-batches-py"
    rng = np.random.default_rng(0)
    for i in range(1, 6):
        _pickle(base / f"data_batch_{i}", {"data": rng.integers(0, 255, (4, 3072), dtype=np.uint8),
                                           "labels": [0, 1, 2, i % 10]})
    _pickle(base / "test_batch", {"data": rng.integers(0, 255, (3, 3072), dtype=np.uint8), "labels": [3, 4, 5]})
    _pickle(base / "batches.meta", {"label_names": [f"c{i}" for i in range(10)]})
    return 20, 3, [3, 4, 5]


def write_cifar100(root):
    base = root / "cifar-100-python"
    rng = np.random.default_rng(0)
    _pickle(base / "train", {"data": rng.integers(0, 255, (6, 3072), dtype=np.uint8), "fine_labels": [0, 1, 2, 3, 4, 99],
                             "coarse_labels": [0] * 6})
    _pickle(base / "test", {"data": rng.integers(0, 255, (2, 3072), dtype=np.uint8), "fine_labels": [7, 98],
                            "coarse_labels": [0, 0]})
    _pickle(base / "meta", {"fine_label_names": [f"c{i}" for i in range(100)]})
    return 6, 2, [7, 98]


def write_flowers(root):
    base = root / "flowers-102"
    for i in range(1, 9):
        _jpg(base / "jpg" / f"image_{i:05d}.jpg", i)
    scipy.io.savemat(base / "imagelabels.mat", {"labels": np.array([[1, 2, 3, 1, 2, 3, 102, 5]])})
    scipy.io.savemat(base / "setid.mat", {"trnid": np.array([[1, 2, 3]]), "valid": np.array([[4, 5]]),
                                          "tstid": np.array([[6, 7, 8]])})
    return 5, 3, [2, 101, 4]


def write_cars(root):
    base = root / "stanford_cars"
    dtype = [(k, "O") for k in ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname")]

    def annos(names, classes):
        arr = np.zeros((1, len(names)), dtype=dtype)
        for j, (n, c) in enumerate(zip(names, classes)):
            arr[0, j] = (1, 1, 10, 10, c, n)
        return arr
    for n in ("00001.jpg", "00002.jpg", "00003.jpg"):
        _jpg(base / "cars_train" / n)
    for n in ("00001.jpg", "00002.jpg"):
        _jpg(base / "cars_test" / n)
    (base / "devkit").mkdir(parents=True)
    scipy.io.savemat(base / "devkit" / "cars_meta.mat",
                     {"class_names": np.array([["AM General Hummer SUV 2000", "Acura RL Sedan 2012", "Audi R8"]],
                                              dtype=object)})
    scipy.io.savemat(base / "devkit" / "cars_train_annos.mat",
                     {"annotations": annos(["00001.jpg", "00002.jpg", "00003.jpg"], [1, 2, 3])})
    scipy.io.savemat(base / "cars_test_annos_withlabels.mat", {"annotations": annos(["00001.jpg", "00002.jpg"], [3, 1])})
    return 3, 2, [2, 0]


def write_pets(root):
    base = root / "oxford-iiit-pet"
    lines = {"trainval": ["Abyssinian_1 1 1 1", "american_bulldog_10 2 2 1", "Bengal_3 3 1 3"],
             "test": ["Abyssinian_2 1 1 1", "Bengal_4 3 1 3"]}
    for split, rows in lines.items():
        for row in rows:
            _jpg(base / "images" / f"{row.split()[0]}.jpg")
        (base / "annotations").mkdir(parents=True, exist_ok=True)
        (base / "annotations" / f"{split}.txt").write_text("\n".join(rows) + "\n")
    return 3, 2, [0, 2]


def write_aircraft(root):
    base = root / "fgvc-aircraft-2013b" / "data"
    base.mkdir(parents=True)
    (base / "variants.txt").write_text("707-320\n727-200\nA300B4\n")
    (base / "images_variant_trainval.txt").write_text("1025794 707-320\n1340192 727-200\n0056978 A300B4\n")
    (base / "images_variant_test.txt").write_text("1514522 A300B4\n")
    for n in ("1025794", "1340192", "0056978", "1514522"):
        _jpg(base / "images" / f"{n}.jpg")
    return 3, 1, [2]


def write_imagefolder(root):
    for split, n in (("train", 3), ("test", 2)):
        for c in ("cat", "dog"):
            for i in range(n):
                _jpg(root / split / c / f"{i}.png")
    return 6, 4, [0, 0, 1, 1]


WRITERS = {"cifar10": write_cifar10, "cifar100": write_cifar100, "flowers102": write_flowers,
           "stanford_cars": write_cars, "oxford_pets": write_pets, "fgvc_aircraft": write_aircraft,
           "imagefolder": write_imagefolder}


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_loader_reads_the_exact_layout(name, tmp_path):
    n_train, n_test, test_labels = WRITERS[name](tmp_path)
    train = build_dataset(name, tmp_path, "train", verify_md5=False)
    test = build_dataset(name, tmp_path, "test", verify_md5=False)
    assert len(train) == n_train and len(test) == n_test
    assert dataset_targets(test).tolist() == test_labels
    image, label = test[0]
    assert image.mode == "RGB" and label == test_labels[0]


def test_md5_checked_by_default(tmp_path):
    write_cifar10(tmp_path)
    with pytest.raises(DatasetNotFound, match="cifar-10-batches-py"):
        build_dataset("cifar10", tmp_path, "train")


@pytest.mark.parametrize("name", sorted(WRITERS) + ["fashion_mnist"])
def test_missing_dataset_names_root_and_layout(name, tmp_path):
    with pytest.raises(DatasetNotFound) as err:
        build_dataset(name, tmp_path / "nowhere", "train")
    assert str(tmp_path / "nowhere") in str(err.value) and "Expected layout" in str(err.value)


def test_unknown_dataset_name():
    with pytest.raises(ValueError, match="unknown linear-probe data set 'imagenet5'"):
        build_dataset("imagenet5", ".", "train")
