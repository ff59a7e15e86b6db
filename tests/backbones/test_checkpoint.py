"""Checkpoint interop: official (microsoft/Cream), timm, mmpretrain and our own format, by name."""
from __future__ import annotations

import re

import pytest
import torch

import backbones
from backbones import CHECKPOINT_FORMAT, TinyViT, load_pretrained


def to_official(sd: dict) -> dict:
    """Our (timm) names → the official repo's names, written independently of the loader's rules."""
    out = {}
    for key, value in sd.items():
        key = key.replace("patch_embed.conv1.", "patch_embed.seq.0.").replace("patch_embed.conv2.", "patch_embed.seq.2.")
        m = re.match(r"stages\.(\d)\.downsample\.(.*)", key)
        if m:
            key = f"layers.{int(m.group(1)) - 1}.downsample.{m.group(2)}"
        key = key.replace("stages.", "layers.").replace(".conv.weight", ".c.weight")
        key = {"head.norm.weight": "norm_head.weight", "head.norm.bias": "norm_head.bias",
               "head.fc.weight": "head.weight", "head.fc.bias": "head.bias"}.get(key, key)
        out[key] = value
    return out


def to_mmpretrain(sd: dict) -> dict:
    """Our names → mmpretrain's TinyViT classifier names (backbone.*, norm3, head.fc)."""
    out = {}
    for key, value in sd.items():
        key = key.replace("patch_embed.conv1.", "patch_embed.seq.0.").replace("patch_embed.conv2.", "patch_embed.seq.2.")
        m = re.match(r"stages\.(\d)\.downsample\.(.*)", key)
        if m:
            key = f"stages.{int(m.group(1)) - 1}.downsample.{m.group(2)}"
        key = key.replace(".conv.weight", ".conv2d.weight").replace(".bn.", ".bn2d.")
        if key.startswith("head.norm."):
            key = key.replace("head.norm.", "norm3.")
        out[key if key.startswith("head.fc.") else "backbone." + key] = value
    return out


@pytest.fixture(scope="module")
def source(randomize):
    return randomize(TinyViT("5m", num_classes=1000), seed=3).eval()


def _same_outputs(a: TinyViT, b: TinyViT) -> bool:
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return torch.allclose(a(x), b(x), atol=1e-6)


def test_official_layout(tmp_path, source):
    official = to_official(source.state_dict())
    assert "layers.0.downsample.conv1.c.weight" in official and "norm_head.weight" in official
    official["layers.1.blocks.0.attn.attention_bias_idxs"] = torch.zeros(49, 49, dtype=torch.long)
    torch.save({"model": official, "epoch": 299}, tmp_path / "tiny_vit_5m_22kto1k_distill.pth")
    model = TinyViT("5m").eval()
    report = load_pretrained(model, tmp_path / "tiny_vit_5m_22kto1k_distill.pth", strict=True)
    assert report.source_format == "official" and report.meta == {"epoch": 299}
    assert _same_outputs(model, source)


def test_mmpretrain_layout(tmp_path, source):
    torch.save({"state_dict": to_mmpretrain(source.state_dict()), "meta": {"epoch": 300}}, tmp_path / "mmpre.pth")
    model = TinyViT("5m").eval()
    assert load_pretrained(model, tmp_path / "mmpre.pth", strict=True).source_format == "mmpretrain"
    assert _same_outputs(model, source)


def test_timm_safetensors(tmp_path, source):
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(tmp_path / "model.safetensors"))
    model = TinyViT("5m").eval()
    assert load_pretrained(model, tmp_path / "model.safetensors").source_format == "timm"
    assert _same_outputs(model, source)


def test_our_format_loads_with_weights_only(tmp_path, source):
    ckpt = {"format": CHECKPOINT_FORMAT, "state_dict": source.state_dict(),
            "meta": {"arch": "5m", "img_size": 224, "window_sizes": [7, 7, 14, 7], "epoch": 3}}
    torch.save(ckpt, tmp_path / "ours.pth")
    torch.load(tmp_path / "ours.pth", weights_only=True)
    model = TinyViT("5m").eval()
    report = load_pretrained(model, tmp_path / "ours.pth", strict=True)
    assert report.source_format == "ours" and report.meta["epoch"] == 3
    assert _same_outputs(model, source)


def test_backbone_mode_reports_head_and_missing_norms(source):
    model = TinyViT("5m", out_indices=(0, 1, 2, 3))
    report = load_pretrained(model, source.state_dict())  # strict: the backbone-mode difference is not partial
    assert sorted(report.missing_keys) == sorted(f"norm{i}.{p}" for i in range(4) for p in ("weight", "bias"))
    assert set(report.unexpected_keys) == {"head.norm.weight", "head.norm.bias", "head.fc.weight", "head.fc.bias"}


def test_other_head_size_is_skipped(source):
    model = TinyViT("5m", num_classes=10)
    report = load_pretrained(model, source.state_dict())
    assert report.skipped_keys == ["head.fc.weight", "head.fc.bias"] and not report.missing_keys


def test_window_resize_on_load(source):
    model = TinyViT("5m", window_sizes=(16, 16, 32, 16))
    load_pretrained(model, source.state_dict(), strict=True)
    table = model.stages[2].blocks[0].attn.attention_biases
    assert table.shape == (5, 32 * 32)
    # bicubic resize keeps the corner (zero offset) close to the source's
    src = source.stages[2].blocks[0].attn.attention_biases
    assert torch.allclose(table.view(5, 32, 32)[:, 0, 0], src.view(5, 14, 14)[:, 0, 0], atol=0.05)


def test_init_cfg_pretrained_through_mmdet_registry(tmp_path, source):
    from mmdet.registry import MODELS
    torch.save({"model": to_official(source.state_dict())}, tmp_path / "official.pth")
    model = MODELS.build(dict(type="TinyViT", arch="5m", out_indices=(3,), num_classes=1000,
                              init_cfg=dict(type="Pretrained", checkpoint=str(tmp_path / "official.pth"))))
    model.init_weights()
    assert torch.equal(model.stages[3].blocks[1].mlp.fc1.weight, source.stages[3].blocks[1].mlp.fc1.weight)


def test_prefix_for_detector_checkpoints(source):
    detector_sd = {"backbone." + k: v for k, v in source.state_dict().items()}
    detector_sd["neck.lateral_convs.0.conv.weight"] = torch.zeros(1)
    model = TinyViT("5m").eval()
    load_pretrained(model, detector_sd, prefix="backbone.", strict=True)
    assert _same_outputs(model, source)


def test_unknown_format_lists_formats_tried():
    with pytest.raises(ValueError, match=r"not a TinyViT checkpoint \(unknown format\); "
                                         r"tried ours.*timm.*official.*mmpretrain"):
        load_pretrained(TinyViT("5m"), {"conv1.weight": torch.zeros(1)})


def test_shape_mismatch_names_key_and_shapes(source):
    with pytest.raises(ValueError, match=r"key 'patch_embed.conv1.conv.weight' has shape \(32, 3, 3, 3\) "
                                         r"in the checkpoint but \(48, 3, 3, 3\) in TinyViT '21m'"):
        load_pretrained(TinyViT("21m"), source.state_dict())


def test_pickled_metadata_needs_explicit_trust(tmp_path, source):
    import numpy as np
    torch.save({"model": to_official(source.state_dict()), "acc": np.float64(0.8)}, tmp_path / "legacy.pth")
    with pytest.raises(ValueError, match=r"legacy.pth: cannot be read with weights_only=True"):
        load_pretrained(TinyViT("5m"), tmp_path / "legacy.pth")
    assert load_pretrained(TinyViT("5m"), tmp_path / "legacy.pth", allow_pickle=True).source_format == "official"


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="checkpoint not found: /nonexistent.pth"):
        backbones.load_pretrained(TinyViT("5m"), "/nonexistent.pth")


def test_build_from_checkpoint_restores_the_trained_architecture(tmp_path, randomize):
    trained = randomize(TinyViT("5m", img_size=64, window_sizes=(8, 8, 4, 2), num_classes=10)).eval()
    torch.save({"format": CHECKPOINT_FORMAT, "state_dict": trained.state_dict(),
                "meta": {"arch": "5m", "img_size": 64, "window_sizes": [8, 8, 4, 2], "num_classes": 10}},
               tmp_path / "student.pth")
    model, report = backbones.build_from_checkpoint(tmp_path / "student.pth", num_classes=10, strict=True)
    assert model.window_sizes == (8, 8, 4, 2) and report.source_format == "ours"
    assert _same_outputs(model.eval(), trained)
    with pytest.raises(ValueError, match="no 'arch' in the checkpoint metadata"):
        backbones.build_from_checkpoint(trained.state_dict())


# ------------------------------------------------------------------------------------ bad files: one line, path, cause
def _cut(path, keep):
    data = path.read_bytes()
    path.write_bytes(data[:keep(len(data))])
    return path


@pytest.mark.parametrize("name,make,cause", [
    ("empty.pth", lambda p, sd: p.write_bytes(b""), "empty checkpoint file"),
    ("cut.pth", lambda p, sd: (torch.save({"model": sd}, p), _cut(p, lambda n: n // 2)), "truncated or corrupted"),
    ("cut_tail.pth", lambda p, sd: (torch.save({"model": sd}, p), _cut(p, lambda n: n - 20)), "truncated or corrupted"),
    ("legacy_cut.pth", lambda p, sd: (torch.save({"model": sd}, p, _use_new_zipfile_serialization=False),
                                      _cut(p, lambda n: n // 2)), "truncated or corrupted"),
    ("legacy_head.pth", lambda p, sd: (torch.save({"model": sd}, p, _use_new_zipfile_serialization=False),
                                       _cut(p, lambda n: 10)), "truncated or corrupted"),
    ("cut.safetensors", lambda p, sd: (__import__("safetensors.torch").torch.save_file(
        {k: v.contiguous() for k, v in sd.items()}, str(p)), _cut(p, lambda n: n // 2)), "truncated or corrupted"),
    ("text.pth", lambda p, sd: p.write_text("not a checkpoint at all"), "truncated or corrupted"),
    ("list.pth", lambda p, sd: torch.save([1, 2], p), "not a TinyViT checkpoint"),
    ("resnet.pth", lambda p, sd: torch.save({"conv1.weight": torch.zeros(1)}, p), "not a TinyViT checkpoint"),
])
def test_bad_file_gives_one_line_with_path_and_cause(tmp_path, source, name, make, cause):
    path = tmp_path / name
    make(path, source.state_dict())
    with pytest.raises(ValueError) as info:
        load_pretrained(TinyViT("5m"), path)
    message = str(info.value)
    assert message.startswith(str(path)) and cause in message and "\n" not in message, message
    assert "allow_pickle" not in message  # a damaged file is not a trust problem


def test_partial_match_raises_naming_the_keys_unless_allowed(source):
    sd = {k: v for k, v in source.state_dict().items() if not k.startswith("stages.3.blocks.1.")}
    dropped = [k for k in TinyViT("5m").state_dict() if k.startswith("stages.3.blocks.1.")
               and not k.endswith("num_batches_tracked")]  # BatchNorm fills that one in itself
    sd["extra.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match=rf"partial match \(timm checkpoint\): {len(dropped)} missing "
                                         r"\['stages.3.blocks.1.*1 unexpected \['extra.weight'\]"):
        load_pretrained(TinyViT("5m"), sd)
    with pytest.raises(ValueError, match=r"1 unexpected \['extra.weight'\]"):
        load_pretrained(TinyViT("5m"), sd, allow_keys=["stages.3.blocks.1.*"])  # every key must be allowed
    report = load_pretrained(TinyViT("5m"), sd, allow_keys=["stages.3.blocks.1.*", "extra.*"])
    assert sorted(report.missing_keys) == sorted(dropped) and report.unexpected_keys == ["extra.weight"]
    assert report.to_dict()["unexpected_keys"] == ["extra.weight"]
    assert load_pretrained(TinyViT("5m"), sd, strict=False).missing_keys == report.missing_keys


def test_backbone_only_checkpoint_into_a_classifier_needs_allow_keys(source):
    backbone_sd = {k: v for k, v in source.state_dict().items() if not k.startswith("head.")}
    with pytest.raises(ValueError, match=r"4 missing \['head.norm.weight', 'head.norm.bias', 'head.fc.weight'"):
        load_pretrained(TinyViT("5m", num_classes=10), backbone_sd)
    report = load_pretrained(TinyViT("5m", num_classes=10), backbone_sd, allow_keys=("head.*",))
    assert report.allow_keys == ["head.*"] and len(report.missing_keys) == 4


def test_features_model_skips_the_classifier(source):
    report = load_pretrained(TinyViT("5m", num_classes=0), source.state_dict())
    assert report.skipped_keys == ["head.fc.weight", "head.fc.bias"] and not report.unexpected_keys
