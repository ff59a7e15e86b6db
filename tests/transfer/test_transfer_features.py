"""Backbone specs (TinyViT checkpoints, timm, torchvision, random, modules) and the on-disk feature cache."""
import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.datasets import ImageFolder

from backbones import CHECKPOINT_FORMAT, TinyViT, file_sha256
from transfer.features import extract_features, load_backbone, module_sha256


def _student(path, num_classes=10, **meta):
    from contracts.checkpoint import save_checkpoint
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
    from contracts.checkpoint import save_checkpoint
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


# ------------------------------------------------------------------------------------------------ plain ViTs
def _tiny_vit(seed=0, num_classes=0, **kw):
    from backbones.vit import build_vit
    torch.manual_seed(seed)
    return build_vit("vit_tiny_patch16_224", img_size=32, patch_size=8, depth=2, num_classes=num_classes, **kw).eval()


def test_vit_specs_random_weights_and_pooling():
    bb = load_backbone("vit-tiny/patch8@32", seed=2)
    assert bb.record_info() == {"name": "vit-tiny", "source": "random", "pretrain": "none", "checkpoint_sha256": None,
                                "init_seed": 2, "pool": "token", "img_size": 32, "patch_size": 8, "depth": 12}
    slim = load_backbone({"spec": "vit-tiny/patch8@32", "depth": 2, "seed": 0})
    ref = _tiny_vit()
    assert module_sha256(slim.model) == module_sha256(ref)
    x = torch.randn(2, 3, 32, 32)
    tokens = ref.forward_features(x)  # final-norm tokens: cls first
    torch.testing.assert_close(slim.features(x), tokens[:, 0])
    avg = load_backbone({"spec": "vit-tiny/patch8@32", "depth": 2, "pool": "avg"})
    torch.testing.assert_close(avg.features(x), tokens[:, 1:].mean(1))
    assert avg.record["pool"] == "avg" and module_sha256(avg.model) == module_sha256(ref)
    assert slim.features(torch.randn(1, 3, 48, 48)).shape == (1, 192)  # other resolutions: pos-embed interpolated
    small = load_backbone({"spec": "vit-small", "img_size": 32, "patch_size": 4, "depth": 1})
    assert small.features(torch.randn(1, 3, 32, 32)).shape == (1, 384) and small.record["patch_size"] == 4


@pytest.mark.parametrize("spec, match", [
    ("vit-huge", "unknown ViT backbone spec 'vit-huge'"), ("vit-tiny/p8", "unknown ViT backbone spec"),
    ("vit-tiny/patch5@32", r"patch_size=5 does not divide img_size=32"),
    ({"spec": "vit-tiny", "pool": "max"}, "backbone key 'pool'='max'"),
    ({"spec": "tinyvit-5m", "depth": 2}, r"\['depth'\] apply to vit-\* specs only")])
def test_bad_vit_specs(spec, match):
    with pytest.raises(ValueError, match=match):
        load_backbone(spec)


def test_vit_official_mae_and_timm_files(tmp_path):
    src = _tiny_vit(seed=1)
    state = src.state_dict()
    mae = {**state, "mask_token": torch.zeros(1, 1, 96), "decoder_embed.weight": torch.zeros(96, 192),
           "decoder_pred.bias": torch.zeros(192)}
    torch.save({"model": mae}, tmp_path / "mae_pretrain.pth")  # the official MAE layout (timm names under 'model')
    spec = {"spec": "vit-tiny/patch8@32", "depth": 2}
    bb = load_backbone(spec, tmp_path / "mae_pretrain.pth", pretrain="in1k-mae")
    assert (bb.source, bb.record["pretrain"]) == ("official", "in1k-mae")
    assert bb.record["checkpoint_sha256"] == file_sha256(tmp_path / "mae_pretrain.pth")
    assert sorted(bb.record["load_report"]["skipped"]) == ["decoder_embed.weight", "decoder_pred.bias", "mask_token"]
    assert module_sha256(bb.model) == module_sha256(src)
    classifier = _tiny_vit(seed=1, num_classes=10)
    torch.save(classifier.state_dict(), tmp_path / "timm.pth")
    bb = load_backbone(spec, tmp_path / "timm.pth")
    assert (bb.source, bb.record["pretrain"]) == ("timm", "unknown")
    assert bb.record["load_report"]["unexpected"] == ["head.weight", "head.bias"]
    torch.testing.assert_close(bb.features(torch.ones(1, 3, 32, 32)),
                               classifier.forward_head(classifier.forward_features(torch.ones(1, 3, 32, 32)),
                                                       pre_logits=True))
    torch.save({k: v for k, v in state.items() if not k.startswith("blocks.1.")}, tmp_path / "partial.pth")
    with pytest.raises(ValueError, match=r"partial\.pth: checkpoint only partly matches .* missing \['blocks\.1\."):
        load_backbone(spec, tmp_path / "partial.pth")
    loaded = load_backbone(spec, tmp_path / "partial.pth", allow_keys=["blocks.1.*"])
    assert len(loaded.record["load_report"]["missing"]) == 12
    with pytest.raises(ValueError, match=r"'patch_embed.proj.weight' has shape \(192, 3, 8, 8\)"):
        load_backbone({"spec": "vit-tiny@32", "depth": 2}, tmp_path / "timm.pth")  # patch 16 asked for


def test_our_vit_checkpoint_builds_from_its_meta(tmp_path):
    from contracts.checkpoint import save_checkpoint
    from distill_pretrain.student import student_meta
    src = _tiny_vit(seed=3, num_classes=10)
    meta = student_meta(src, {"type": "timm", "arch": "vit_tiny_patch16_224", "img_size": 32})
    path = save_checkpoint(tmp_path / "student.pth", src.state_dict(),
                           {**meta, "epoch": 0, "objective": "tinymim", "pretrain": "fashionmnist-tinymim"})
    bb = load_backbone("vit-tiny", path)  # img_size, patch 8 and depth 2 come from the meta
    assert (bb.source, bb.record["pretrain"], bb.record["depth"]) == ("distill", "fashionmnist-tinymim", 2)
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(bb.features(x), src.forward_head(src.forward_features(x), pre_logits=True))
    with pytest.raises(ValueError, match=r"meta arch='vit_tiny_patch16_224' is not a vit-small"):
        load_backbone("vit-small", path)


# ------------------------------------------------------------------------------------------------ loader registry
def test_a_registered_family_loads_through_load_backbone():
    from transfer.features import BACKBONE_LOADERS, Backbone, register_loader
    assert {"tinyvit", "vit", "timm", "torchvision"} <= set(BACKBONE_LOADERS)
    seen = []

    @register_loader("toy")
    def load_toy(request):
        seen.append(request)
        model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4))
        return Backbone(model, name=f"toy:{request.arch}", record={"name": f"toy:{request.arch}", "source": "random"})

    try:
        bb = load_backbone("toy:net", seed=3, img_size=32, allow_keys=["x.*"])
        (request,) = seen
        assert (request.spec, request.arch, request.path, request.seed, request.img_size, request.allow_keys) == \
            ("toy:net", "net", None, 3, 32, ("x.*",))
        assert not bb.model.training and not any(p.requires_grad for p in bb.model.parameters())  # frozen for it
        assert bb.features(torch.randn(2, 3, 8, 8)).shape == (2, 4)
        with pytest.raises(ValueError, match="'toy' is registered already"):
            register_loader("toy")(load_toy)
    finally:
        BACKBONE_LOADERS.pop("toy")
    with pytest.raises(ValueError, match="unknown backbone kind 'toy'"):
        load_backbone("toy:net")
