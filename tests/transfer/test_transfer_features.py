"""Backbone specs (TinyViT checkpoints, timm, torchvision, random, modules) and the on-disk feature cache."""
import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.datasets import ImageFolder

from backbones import CHECKPOINT_FORMAT, TinyViT, file_sha256
from transfer.features import extract_features, load_backbone, module_sha256


def _student(path, num_classes=10, **meta):
    from distill_pretrain.checkpoint import save_checkpoint
    torch.manual_seed(1)
    src = TinyViT("5m", num_classes=num_classes)
    save_checkpoint(path, src.state_dict(), {"arch": "5m", "img_size": 224, "window_sizes": [7, 7, 14, 7],
                                             "num_classes": num_classes, "epoch": 0, **meta})
    return src


def test_tinyvit_distill_checkpoint_and_random(tmp_path):
    path = tmp_path / "student.pth"
    src = _student(path, mode="stored", pretrain="in21k-distill")
    bb = load_backbone("tinyvit-5m", path)
    assert bb.record_info() == {"name": "tinyvit-5m", "source": "distill", "pretrain": "in21k-distill",
                                "checkpoint_sha256": file_sha256(path), "checkpoint": "student.pth",
                                "load_report": {"missing": [], "unexpected": [],
                                                "skipped": ["head.fc.weight", "head.fc.bias"],
                                                "allowed": ["head.fc.*"]}}
    assert not bb.model.training and all(not p.requires_grad for p in bb.model.parameters())
    x = torch.randn(2, 3, 64, 64)
    src.eval()
    torch.testing.assert_close(bb.features(x), src.forward_head(src.forward_features(x), pre_logits=True))
    rnd = load_backbone({"spec": "tinyvit-5m", "seed": 3})
    assert rnd.record_info() == {"name": "tinyvit-5m", "source": "random", "pretrain": "none",
                                 "checkpoint_sha256": None, "init_seed": 3}
    assert module_sha256(rnd.model) == module_sha256(load_backbone("tinyvit-5m", seed=3).model)
    assert bb.features(x).shape == (2, 320)
    # --pretrain overrides the meta; a scratch run is named so; random weights cannot claim a pretraining
    assert load_backbone("tinyvit-5m", path, pretrain="in1k").record["pretrain"] == "in1k"
    _student(tmp_path / "scratch.pth", mode="scratch")
    assert load_backbone("tinyvit-5m", tmp_path / "scratch.pth").record["source"] == "scratch"
    with pytest.raises(ValueError, match="pretrain='in1k' names the pretraining of a checkpoint"):
        load_backbone("tinyvit-5m", pretrain="in1k")


def test_partial_tinyvit_checkpoint_is_an_error_unless_allowed(tmp_path):
    from distill_pretrain.checkpoint import save_checkpoint
    state = TinyViT("5m", num_classes=0).state_dict()
    dropped = [k for k in state if k.startswith("stages.3.blocks.1.")]  # 18 weights + 1 index buffer
    path = tmp_path / "partial.pth"
    save_checkpoint(path, {k: v for k, v in state.items() if k not in dropped},
                    {"arch": "5m", "img_size": 224, "window_sizes": [7, 7, 14, 7], "num_classes": 0, "epoch": 0,
                     "mode": "stored", "pretrain": "in21k-distill"})
    with pytest.raises(ValueError, match=rf"partial\.pth: partial match \(ours checkpoint\): "
                                         r"18 missing \['stages\.3\.blocks\.1\."):
        load_backbone("tinyvit-5m", path)
    bb = load_backbone("tinyvit-5m", path, allow_keys=["stages.3.blocks.1.*"])
    report = bb.record["load_report"]
    assert len(report["missing"]) == 18 and set(report["missing"]) < set(dropped)
    assert report["allowed"] == ["head.fc.*", "stages.3.blocks.1.*"]


def test_timm_by_name_and_by_position(tmp_path):
    import timm
    ref = timm.create_model("resnet18", num_classes=0)
    path = tmp_path / "r18.pth"
    torch.save(ref.state_dict(), path)
    bb = load_backbone("timm:resnet18", path, pretrain="in1k")
    assert bb.record["pretrain"] == "in1k" and bb.record["checkpoint_sha256"] == file_sha256(path)
    assert bb.source == "timm" and bb.record["load_report"]["loaded_by"] == "name"
    assert module_sha256(bb.model) == module_sha256(ref)
    renamed = tmp_path / "renamed.pth"
    torch.save({f"t{i}": v for i, (k, v) in enumerate(ref.state_dict().items()) if "num_batches" not in k}, renamed)
    assert module_sha256(load_backbone("timm:resnet18", renamed).model) == module_sha256(ref)
    assert load_backbone("timm:resnet18", renamed).record["pretrain"] == "unknown"  # a file that does not say
    partial = tmp_path / "partial.pth"
    torch.save({k: v for k, v in ref.state_dict().items() if not k.startswith("layer4.")}, partial)
    with pytest.raises(ValueError, match=r"partial\.pth: checkpoint only partly matches .* missing \['layer4\."):
        load_backbone("timm:resnet18", partial)
    torch.save({"bogus": torch.zeros(3)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="no key matches"):
        load_backbone("timm:resnet18", tmp_path / "bad.pth")


def test_torchvision_asset_weights():
    from contracts.assets import AssetMissing
    try:
        bb = load_backbone("torchvision:mobilenet_v2", "asset:mobilenet_v2")
    except AssetMissing as err:
        pytest.skip(str(err))
    assert bb.source == "torchvision" and len(bb.record["checkpoint_sha256"]) == 64
    assert bb.record["pretrain"] == "in1k"  # the asset is torchvision's ImageNet-1k classifier
    assert bb.features(torch.randn(1, 3, 64, 64)).shape == (1, 1280)


@pytest.mark.parametrize("spec, match", [("tinyvit-7m", "unknown backbone spec"), ("foo:bar", "unknown backbone kind"),
                                          ("torchvision:nonet", "unknown torchvision model")])
def test_bad_specs(spec, match):
    with pytest.raises(ValueError, match=match):
        load_backbone(spec)


def test_missing_checkpoint_and_asset():
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        load_backbone("tinyvit-5m", "/nowhere.pth")
    with pytest.raises(ValueError, match="unknown asset"):
        load_backbone("tinyvit-5m", "asset:resnet")


def test_feature_cache_keyed_by_weights_data_and_transform(tmp_path):
    for c in range(2):
        for i in range(3):
            (tmp_path / "d" / f"c{c}").mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((9, 9, 3), 60 * c + i, np.uint8)).save(tmp_path / "d" / f"c{c}" / f"{i}.png")
    ds = ImageFolder(tmp_path / "d")
    bb = load_backbone("tinyvit-5m", seed=0)
    cache = tmp_path / "cache"
    f1, y1 = extract_features(bb, ds, resolution=32, cache_dir=cache, batch_size=4)
    assert f1.shape == (6, 320) and y1.tolist() == [0, 0, 0, 1, 1, 1] and len(list(cache.glob("*.npz"))) == 1
    mtime = next(cache.glob("*.npz")).stat().st_mtime_ns
    f2, _ = extract_features(bb, ds, resolution=32, cache_dir=cache)
    np.testing.assert_array_equal(f1, f2)
    assert next(cache.glob("*.npz")).stat().st_mtime_ns == mtime  # read, not rewritten
    extract_features(bb, ds, resolution=48, cache_dir=cache)
    extract_features(load_backbone("tinyvit-5m", seed=1), ds, resolution=32, cache_dir=cache)
    assert len(list(cache.glob("*.npz"))) == 3 and not list(cache.glob(".*tmp"))
