"""Plain-ViT backbones: attention taps, masked encoding, checkpoint interop, the mmdet simple-FPN wrapper."""
from __future__ import annotations

import pytest
import timm
import torch

from backbones.vit import (TapAttention, ViTSimpleFPN, attention_taps, build_vit, enable_taps, forward_tokens,
                           load_vit_pretrained, vit_from_spec)
from contracts.checkpoint import save_checkpoint


def tiny(depth: int = 3, **kw):
    torch.manual_seed(0)
    return build_vit("vit_tiny_patch16_224", img_size=32, patch_size=8, depth=depth, **kw).eval()


def test_taps_record_only_the_asked_blocks_and_match_timm_fused_attention():
    model, x = tiny(), torch.randn(2, 3, 32, 32)
    plain = model.forward_features(x)
    with attention_taps(model, {-1: ("attn", "logits", "q"), 0: ("v",)}) as taps:
        tapped = model.forward_features(x)
    assert set(taps) == {0, 2} and set(taps[2]) == {"attn", "logits", "q"} and set(taps[0]) == {"v"}
    torch.testing.assert_close(tapped, plain, atol=1e-5, rtol=1e-5)
    attn = taps[2]["attn"]
    assert attn.shape == (2, 3, 17, 17) and taps[2]["q"].shape == (2, 3, 17, 64)
    torch.testing.assert_close(attn.sum(-1), torch.ones(2, 3, 17))
    torch.testing.assert_close(taps[2]["logits"].softmax(-1), attn)
    assert all(not b.attn.tap and not getattr(b.attn, "taps", {}) for b in model.blocks)  # nothing kept after


def test_bad_layer_index_kind_and_non_vit_are_refused_with_key_and_value():
    model = tiny()
    with pytest.raises(ValueError, match=r"student_layers: layer index 3 is beyond the depth 3"):
        with attention_taps(model, {3: ("attn",)}, key="student_layers"):
            pass
    with pytest.raises(ValueError, match="unknown tap kinds"):
        with attention_taps(model, {0: ("attention",)}):
            pass
    with pytest.raises(ValueError, match="teacher: ResNet has no timm ViT attention"):
        enable_taps(timm.create_model("resnet18", num_classes=0), key="teacher")


def test_patch_size_must_divide_the_image():
    with pytest.raises(ValueError, match=r"patch_size=7 does not divide img_size=32"):
        build_vit("vit_tiny_patch16_224", img_size=32, patch_size=7)
    with pytest.raises(ValueError, match="img_size"):
        forward_tokens(tiny(), torch.randn(1, 3, 40, 40))
    with pytest.raises(ValueError, match="ViT name 'resnet50' is unknown"):
        build_vit("resnet50")


def test_masked_encoding_with_every_patch_in_order_equals_the_full_forward():
    model, x = tiny(), torch.randn(2, 3, 32, 32)
    keep = torch.arange(16).expand(2, 16)
    torch.testing.assert_close(forward_tokens(model, x, keep), model.forward_features(x))
    assert forward_tokens(model, x, keep[:, :4]).shape == (2, 5, 192)


def test_timm_models_become_tappable_in_place():
    model = timm.create_model("vit_small_patch16_224", pretrained=False, img_size=32, patch_size=8, depth=2,
                              num_classes=0)
    assert type(vit_from_spec(model).blocks[0].attn) is TapAttention


def test_official_mae_checkpoint_loads_by_name(tmp_path):
    source = tiny(depth=2)
    sd = {k: torch.randn_like(v) for k, v in source.state_dict().items()}
    # the official MAE pretraining file: timm encoder names + the decoder, under "model"
    sd.update({"mask_token": torch.zeros(1, 1, 64), "decoder_embed.weight": torch.zeros(64, 192),
               "decoder_pos_embed": torch.zeros(1, 17, 64)})
    path = tmp_path / "mae_pretrain_vit_tiny.pth"
    torch.save({"model": sd, "epoch": 399}, path)
    student = tiny(depth=2)
    report = load_vit_pretrained(student, path, strict=True)
    assert report.source_format == "mae" and "decoder_embed.weight" in report.skipped_keys
    for key, value in student.state_dict().items():
        torch.testing.assert_close(value, sd[key], msg=key)


def test_pos_embed_is_resampled_and_head_skipped_but_other_mismatches_raise(tmp_path):
    src = build_vit("vit_tiny_patch16_224", img_size=64, patch_size=8, depth=2, num_classes=10)
    dst = build_vit("vit_tiny_patch16_224", img_size=32, patch_size=8, depth=2, num_classes=5)
    report = load_vit_pretrained(dst, src.state_dict())
    assert report.source_format == "timm" and report.skipped_keys == ["head.weight", "head.bias"]
    torch.testing.assert_close(dst.blocks[1].mlp.fc1.weight, src.blocks[1].mlp.fc1.weight)
    wide = build_vit("vit_small_patch16_224", img_size=32, patch_size=8, depth=2)
    with pytest.raises(ValueError, match=r"key 'cls_token' has shape \(1, 1, 384\)"):
        load_vit_pretrained(dst, wide.state_dict())
    with pytest.raises(ValueError, match="not a ViT checkpoint"):
        load_vit_pretrained(dst, {"model": {"conv1.weight": torch.zeros(1)}})


def test_our_checkpoint_builds_the_teacher_it_describes(tmp_path):
    src = tiny(depth=2)
    path = save_checkpoint(tmp_path / "checkpoint.pth", src.state_dict(),
                           {"arch": "vit_tiny_patch16_224", "img_size": 32, "patch_size": 8, "window_sizes": None,
                            "num_classes": 0, "epoch": 1, "objective": "mae"})
    teacher = vit_from_spec({"checkpoint": str(path), "depth": 2})
    torch.testing.assert_close(teacher.pos_embed, src.pos_embed)
    with pytest.raises(ValueError, match="leaves keys"):
        vit_from_spec({"checkpoint": str(path), "depth": 3})


def test_simple_fpn_gives_strides_4_to_32_and_layer_depths():
    fpn = ViTSimpleFPN(img_size=64, drop_path_rate=0.0, out_channels=16, num_outs=5)
    fpn.vit.blocks = fpn.vit.blocks[:2]
    outs = fpn(torch.randn(1, 3, 64, 96))
    assert [tuple(o.shape[-2:]) for o in outs] == [(16, 24), (8, 12), (4, 6), (2, 3), (1, 2)]
    assert all(o.shape[1] == 16 for o in outs)
    assert fpn.get_layer_depth("backbone.vit.blocks.1.attn.qkv.weight", "backbone.") == (2, 4)
    assert fpn.get_layer_depth("backbone.vit.pos_embed", "backbone.")[0] == 0
    with pytest.raises(ValueError, match="multiple of the patch size"):
        fpn(torch.randn(1, 3, 40, 64))


def test_mmseg_conversion_renames_every_key_and_refuses_unknown_ones():
    from backbones.vit import to_mmseg_mae
    sd = tiny(depth=1).state_dict()
    out = to_mmseg_mae({"model": {**sd, "decoder_pred.weight": torch.zeros(1)}})
    assert "layers.0.ffn.layers.0.0.weight" in out and "layers.0.ln2.bias" in out
    assert not any(k.startswith(("blocks.", "norm.", "decoder")) for k in out)
    torch.testing.assert_close(out["layers.0.attn.qkv.weight"], sd["blocks.0.attn.qkv.weight"])
    with pytest.raises(ValueError, match=r"unplaced keys \['stages.0.conv.weight'\]"):
        to_mmseg_mae({**sd, "stages.0.conv.weight": torch.zeros(1)})
