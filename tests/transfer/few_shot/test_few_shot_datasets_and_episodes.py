"""CD-FSL layouts (folders / CSVs), seeded saved episodes, and a reproducible paired evaluation."""
import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from transfer.few_shot import build_few_shot_dataset, generate_episodes, load_or_create_episodes, mean_ci95, run_few_shot
from transfer.features import dataset_targets
from transfer.linear_probe import DatasetNotFound


def _img(path, value, mode="RGB", ext_size=(12, 10)):
    path.parent.mkdir(parents=True, exist_ok=True)
    channels = 3 if mode == "RGB" else 1
    arr = np.full((ext_size[1], ext_size[0], channels), value, dtype=np.uint8).squeeze()
    Image.fromarray(arr, mode=None).save(path)


def write_cropdisease(root):
    for c, cls in enumerate(["Apple___Black_rot", "Tomato___healthy"]):
        for i in range(3):
            _img(root / "dataset" / "train" / cls / f"{i}.jpg", 40 * c + i)
    return [0, 0, 0, 1, 1, 1]


def write_eurosat(root):
    for c, cls in enumerate(["AnnualCrop", "Forest", "River"]):
        for i in range(2):
            _img(root / cls / f"{cls}_{i + 1}.jpg", 30 * c)
    return [0, 0, 1, 1, 2, 2]


def write_isic(root):
    rows = ["image,MEL,NV,BCC,AKIEC,BKL,DF,VASC", "ISIC_0024306,0.0,1.0,0.0,0.0,0.0,0.0,0.0",
            "ISIC_0024307,0.0,0.0,0.0,0.0,0.0,0.0,1.0", "ISIC_0024308,1.0,0.0,0.0,0.0,0.0,0.0,0.0"]
    csv = root / "ISIC2018_Task3_Training_GroundTruth" / "ISIC2018_Task3_Training_GroundTruth.csv"
    csv.parent.mkdir(parents=True)
    csv.write_text("\n".join(rows) + "\n")
    for r in rows[1:]:
        _img(root / "ISIC2018_Task3_Training_Input" / f"{r.split(',')[0]}.jpg", 100)
    return [1, 6, 0]


def write_chestx(root):
    rows = [("00000001_000.png", "Cardiomegaly"), ("00000001_001.png", "Cardiomegaly|Emphysema"),
            ("00000002_000.png", "No Finding"), ("00000003_000.png", "Pneumothorax"), ("00000004_000.png", "Hernia"),
            ("00000005_000.png", "Atelectasis")]
    text = "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position\n"
    text += "".join(f"{name},{label},0,1,58,M,PA\n" for name, label in rows)
    root.mkdir(parents=True, exist_ok=True)
    (root / "Data_Entry_2017.csv").write_text(text)
    for name, _ in rows:
        _img(root / "images" / name, 80, mode="L")
    return [1, 6, 0]


WRITERS = {"cropdisease": write_cropdisease, "eurosat": write_eurosat, "isic2018": write_isic,
           "chestx": write_chestx}


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_cdfsl_layouts(name, tmp_path):
    labels = WRITERS[name](tmp_path)
    ds = build_few_shot_dataset(name, tmp_path)
    assert dataset_targets(ds).tolist() == labels
    image, label = ds[0]
    assert image.mode == "RGB" and label == labels[0]


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_cdfsl_missing_names_layout(name, tmp_path):
    with pytest.raises(DatasetNotFound, match="Expected layout"):
        build_few_shot_dataset(name, tmp_path / "absent")


def test_episodes_are_seeded_disjoint_and_saved(tmp_path):
    labels = np.repeat(np.arange(8), 25)
    a = generate_episodes(labels, 5, 5, 15, 20, seed=3)
    assert a == generate_episodes(labels, 5, 5, 15, 20, seed=3) != generate_episodes(labels, 5, 5, 15, 20, seed=4)
    for ep in a:
        assert len(set(ep["support"]) | set(ep["query"])) == 100
        assert [labels[i] for i in ep["support"]] == [c for c in ep["classes"] for _ in range(5)]
    path = tmp_path / "ep.json"
    first = load_or_create_episodes(path, labels, "fp", dataset="d", n_way=5, n_shot=5, n_query=15, n_episodes=20,
                                    seed=3)
    assert first == a and json.loads(path.read_text())["seed"] == 3
    assert load_or_create_episodes(path, labels, "fp", dataset="d", n_way=5, n_shot=5, n_query=15, n_episodes=20,
                                   seed=3) == a
    with pytest.raises(ValueError, match="n_shot=5 but this run needs 20"):
        load_or_create_episodes(path, labels, "fp", dataset="d", n_way=5, n_shot=20, n_query=15, n_episodes=20,
                                seed=3)
    with pytest.raises(ValueError, match="only 0 classes"):
        generate_episodes(labels, 5, 20, 15, 1, seed=0)


def test_mean_ci95():
    mean, ci = mean_ci95([0.5, 0.7, 0.6, 0.6])
    assert mean == pytest.approx(0.6) and ci == pytest.approx(1.96 * np.std([0.5, 0.7, 0.6, 0.6]) / 2)


def test_rerun_gives_identical_episodes_and_accuracies(tmp_path):
    # 6 colour classes, 25 images each, a tiny conv net: two runs share the episode file and give equal numbers
    for c in range(6):
        for i in range(25):
            _img(tmp_path / "data" / f"class{c}" / f"{i}.png", 20 + 35 * c + i % 5)
    ds = build_few_shot_dataset("imagefolder", tmp_path / "data")
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
    runs = [run_few_shot(net, ds, 5, 5, 15, 10, seed=1, dataset_name="colours", resolution=16,
                         episodes_path=tmp_path / "episodes.json", cache_dir=tmp_path / f"cache{k}",
                         finetune_epochs=20) for k in range(2)]
    saved = json.loads((tmp_path / "episodes.json").read_text())["episodes"]
    assert len(saved) == 10
    for method in ("finetune", "logreg"):
        assert runs[0]["results"][method]["accuracies"] == runs[1]["results"][method]["accuracies"]
        assert runs[0]["results"][method]["top1"] > 0.2


def test_episode_files_follow_the_data_not_its_path(tmp_path):
    """The same EuroSAT folder copied elsewhere reuses the saved episodes; moved labels or swapped files are
    refused with a message saying which."""
    import shutil

    from PIL import Image

    from transfer.features import dataset_fingerprint, dataset_targets
    for c in range(5):
        for i in range(4):
            p = tmp_path / "a" / f"class{c}" / f"{i}.jpg"
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((8, 8, 3), 40 * c + i, np.uint8)).save(p)
    shutil.copytree(tmp_path / "a", tmp_path / "elsewhere" / "b")

    def episodes(root):
        ds = build_few_shot_dataset("eurosat", root)
        return load_or_create_episodes(tmp_path / "ep.json", dataset_targets(ds), dataset_fingerprint(ds),
                                       dataset="eurosat", n_way=5, n_shot=1, n_query=2, n_episodes=3, seed=0)
    first = episodes(tmp_path / "a")
    stamp = (tmp_path / "ep.json").stat().st_mtime_ns
    assert episodes(tmp_path / "elsewhere" / "b") == first and (tmp_path / "ep.json").stat().st_mtime_ns == stamp
    (tmp_path / "a" / "class0" / "3.jpg").rename(tmp_path / "a" / "class1" / "9.jpg")  # one image changes class
    with pytest.raises(ValueError, match=r"ep\.json: the 'eurosat' labels differ from those these episodes"):
        episodes(tmp_path / "a")
    (tmp_path / "elsewhere" / "b" / "class0" / "3.jpg").rename(tmp_path / "elsewhere" / "b" / "class0" / "7.jpg")
    with pytest.raises(ValueError, match=r"the 'eurosat' files differ .*same labels, other images"):
        episodes(tmp_path / "elsewhere" / "b")


def test_episode_file_without_labels_hash_is_refused_by_name(tmp_path):
    labels = np.repeat(np.arange(5), 3)
    path = tmp_path / "old.json"
    load_or_create_episodes(path, labels, "fp", dataset="d", n_way=5, n_shot=1, n_query=1, n_episodes=2, seed=0)
    saved = json.loads(path.read_text())
    del saved["labels_sha256"]
    path.write_text(json.dumps(saved))
    with pytest.raises(ValueError, match=r"old\.json: episode file lacks 'labels_sha256'"):
        load_or_create_episodes(path, labels, "fp", dataset="d", n_way=5, n_shot=1, n_query=1, n_episodes=2, seed=0)
