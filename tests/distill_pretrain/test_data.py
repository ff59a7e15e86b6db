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


@pytest.fixture()
def folder_with_bad_files(photo_folder):
    good = (photo_folder / "cat" / "chelsea.jpg").read_bytes()
    (photo_folder / "cat" / "truncated.jpg").write_bytes(good[:len(good) // 3])  # a JPEG cut short
    (photo_folder / "cup" / "garbage.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    return photo_folder


def test_unreadable_images_stop_naming_the_file(folder_with_bad_files):
    from torch.utils.data import DataLoader
    from distill_pretrain.data import BadImageError
    from distill_pretrain.replay import build_replay
    ds = build_dataset(dict(type="ImageFolder", root=str(folder_with_bad_files)))
    with pytest.raises(BadImageError, match=r"truncated\.jpg: unreadable image.*on_error='skip'"):
        ds[2]  # cat/cat.jpg, cat/chelsea.jpg, cat/truncated.jpg, cup/coffee.jpg, cup/garbage.png
    for pipeline in ("pil", "tensor"):  # in a worker process: the error reaches the main process, no hang
        replay = build_replay(pipeline, ds, dict(img_size=16, mixup_alpha=0.0, cutmix_alpha=0.0))
        loader = DataLoader(replay.dataset, batch_size=2, num_workers=2, collate_fn=replay.collate, timeout=120)
        with pytest.raises(BadImageError, match=r"(truncated\.jpg|garbage\.png): unreadable image"):
            list(loader)


def test_unreadable_images_skip_with_a_count(folder_with_bad_files):
    from torch.utils.data import DataLoader
    from distill_pretrain.replay import build_replay, drop_unreadable
    ds = build_dataset(dict(type="ImageFolder", root=str(folder_with_bad_files), on_error="skip"))
    assert ds.identity == build_dataset(dict(type="ImageFolder", root=str(folder_with_bad_files))).identity
    for pipeline in ("pil", "tensor"):
        replay = build_replay(pipeline, ds, dict(img_size=16, mixup_alpha=0.0, cutmix_alpha=0.0))
        loader = DataLoader(replay.dataset, batch_size=3, num_workers=2, collate_fn=replay.collate, timeout=120)
        valid, errors = [], []
        for batch in loader:
            batch = replay.finish(batch, "cpu")
            assert batch["image"].shape[1:] == (3, 16, 16)
            valid += batch["valid"].tolist()
            errors += batch["errors"]
            kept, skipped = drop_unreadable(batch)
            assert len(kept["image"]) == len(kept["index"]) == len(batch["index"]) - skipped
            assert kept["valid"].all() and skipped == int((~batch["valid"]).sum())
        assert len(valid) == 5 and valid.count(False) == 2 == len(errors)
        assert any("truncated.jpg" in e for e in errors) and any("garbage.png" in e for e in errors)
    with pytest.raises(ValueError, match="on_error"):
        build_dataset(dict(type="ImageFolder", root=str(folder_with_bad_files), on_error="ignore"))


def test_save_logits_stops_or_skips_on_unreadable_images(folder_with_bad_files, tmp_path_factory, capsys):
    from pathlib import Path
    from distill_pretrain import LogitStore, save_logits
    from distill_pretrain.data import BadImageError
    config = str(Path(__file__).resolve().parents[2] / "configs" / "distill" / "save_logits_mobilenetv2_fmnist.py")
    opts = ["dataset.type=ImageFolder", f"dataset.root={folder_with_bad_files}", "augment.img_size=32",
            "store.chunk_size=5", "batch_size=5", "num_workers=0", "epochs=1", "augment.mixup_alpha=0.0",
            "augment.cutmix_alpha=0.0"]
    tmp_path = tmp_path_factory.mktemp("stores")  # not inside the image folder
    with pytest.raises(BadImageError, match=r"truncated\.jpg"):
        save_logits.main([config, "--cfg-options", f"store.path={tmp_path / 'stop'}", *opts])
    save_logits.main([config, "--cfg-options", f"store.path={tmp_path / 'skip'}", *opts, "dataset.on_error=skip"])
    assert LogitStore.open(tmp_path / "skip").epochs == [0]  # every record written; readers drop the 2 bad ones
    out = capsys.readouterr().out
    assert "skipped 2 samples with unreadable images" in out and "garbage.png" in out
