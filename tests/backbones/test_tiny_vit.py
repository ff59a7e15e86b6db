"""TinyViT backbone: sizes, shapes, parity with timm, MMEngine integration, freezing, bad input."""
from __future__ import annotations

import re

import pytest
import timm
import torch
from torch import nn

import backbones
from backbones import TinyViT

ARCHS = ["5m", "11m", "21m"]
DIMS = {"5m": (64, 128, 160, 320), "11m": (64, 128, 256, 448), "21m": (96, 192, 384, 576)}


@pytest.mark.parametrize("arch", ARCHS)
def test_params_match_paper(arch):
    """Paper Tab. 4 / supp. Tab. 1: 5.4 / 11 / 21 M parameters with a 1000-class head (MACs:
    tests/benchmarks/test_backbone_speed.py, where they are counted)."""
    paper = {"5m": 5.4, "11m": 11.0, "21m": 21.0}[arch]
    params_m = sum(p.numel() for p in TinyViT(arch, num_classes=1000).parameters()) / 1e6
    assert abs(params_m - paper) / paper < 0.03, params_m


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("size", [(224, 224), (97, 131)])
def test_multiscale_output_shapes(arch, size):
    model = TinyViT(arch, out_indices=(0, 1, 2, 3)).eval()
    with torch.no_grad():
        outs = model(torch.randn(2, 3, *size))
    ceil_half = lambda hw: tuple(-(-v // 2) for v in hw)  # noqa: E731 - a 3×3 stride-2 conv
    hw = ceil_half(ceil_half(size))  # stride 4 after the patch embedding
    for out, dim in zip(outs, DIMS[arch]):
        assert out.shape == (2, dim, *hw)
        assert out.is_contiguous()
        hw = ceil_half(hw)
    assert model.out_channels == DIMS[arch]


@pytest.mark.parametrize("arch,img_size", [("5m", 224), ("11m", 224), ("21m", 224), ("21m", 384), ("21m", 512)])
def test_numerical_parity_with_timm(arch, img_size, randomize):
    ref = randomize(timm.create_model(f"tiny_vit_{arch}_{img_size}", num_classes=1000, drop_path_rate=0.0)).eval()
    ours = TinyViT(arch, img_size=img_size, num_classes=1000).eval()
    report = backbones.load_pretrained(ours, ref.state_dict(), strict=True)
    assert report.source_format == "timm"
    x = torch.randn(1, 3, img_size, img_size)
    with torch.no_grad():
        f_ours, f_ref = ours.forward_features(x), ref.forward_features(x)
        assert (f_ours - f_ref).abs().max() <= 1e-4
        assert (ours.forward_head(f_ours) - ref.forward_head(f_ref)).abs().max() <= 1e-4
    # The training-mode (unfused) path matches too, including odd sizes that need window padding.
    if arch == "5m":
        ours.train()
        ref.train()
        x = torch.randn(2, 3, 160, 200)
        assert (ours.forward_features(x) - ref.forward_features(x)).abs().max() <= 1e-4


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
def test_amp_error_no_worse_than_timm(randomize, device):
    """The model against timm with the same weights: fp32 within 1e-4, and its AMP error against its own fp32
    output no worse than timm's against timm's (bf16 on CPU, fp16 on CUDA; TF32 off): the mean |error| within 10 %
    of timm's, the max (a few outlier logits) within 50 %."""
    ref = randomize(timm.create_model("tiny_vit_5m_224", num_classes=1000), 10).eval().to(device)
    ours = TinyViT("5m", num_classes=1000).eval()
    backbones.load_pretrained(ours, ref.state_dict(), strict=True)
    ours.to(device)
    x = torch.randn(4, 3, 224, 224, device=device)
    amp = torch.autocast(device, dtype=torch.bfloat16 if device == "cpu" else torch.float16)
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        with torch.no_grad():
            want, got = ref(x), ours(x)
            assert (got - want).abs().max() <= 1e-4
            with amp:
                err_ours, err_ref = (ours(x).float() - got).abs(), (ref(x).float() - want).abs()
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    assert err_ours.mean() <= 1.1 * err_ref.mean() and err_ours.max() <= 1.5 * err_ref.max(), (
        err_ours.mean(), err_ref.mean(), err_ours.max(), err_ref.max())


def test_pre_logits_and_classifier_interface():
    model = TinyViT("5m", num_classes=10).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        feats = model.forward_head(model.forward_features(x), pre_logits=True)
        assert feats.shape == (2, model.num_features)
        assert model(x).shape == (2, 10)
    model.reset_classifier(0)
    with torch.no_grad():
        assert torch.equal(model(x), feats)
    assert isinstance(model.get_classifier(), nn.Identity)
    backbone = TinyViT("5m", out_indices=(3,)).double().eval()
    assert backbone.head is None  # backbone mode has no unused head parameters
    backbone.reset_classifier(10)  # a head on demand, where and how the model is
    assert backbone.head.fc.weight.dtype == torch.float64 and not backbone.head.training
    with torch.no_grad():
        assert backbone.forward_head(backbone.forward_features(x.double())).shape == (2, 10)


def test_nothing_cached_goes_stale(randomize):
    """eval() → forward → load_state_dict() → forward must equal a fresh model (the official/timm bug)."""
    a, b = randomize(TinyViT("5m"), 1).eval(), randomize(TinyViT("5m"), 2).eval()
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        a(x)
        a.load_state_dict(b.state_dict())
        assert torch.equal(a(x), b(x))
        # in-place parameter edits (as an optimizer or EMA does) are seen too
        for pa, pb in zip(a.parameters(), b.parameters()):
            pa.mul_(0.5)
            pb.mul_(0.5)
        assert torch.allclose(a(x), b(x), atol=1e-6)


@pytest.mark.parametrize("registry_module", ["mmengine.registry", "mmdet.registry", "mmseg.registry"])
def test_registered_in_openmmlab_registries(registry_module):
    import importlib
    registry = importlib.import_module(registry_module).MODELS
    model = registry.build(dict(type="TinyViT", arch="21m", out_indices=(0, 1, 2, 3)))
    assert isinstance(model, TinyViT) and model.embed_dims == DIMS["21m"]


def test_mmdet_fpn_and_mmseg_neck_consume_features():
    from mmdet.registry import MODELS as DET
    from mmseg.registry import MODELS as SEG
    backbone = TinyViT("5m", out_indices=(0, 1, 2, 3)).eval()
    with torch.no_grad():
        feats = backbone(torch.randn(2, 3, 128, 128))
        fpn = DET.build(dict(type="FPN", in_channels=list(DIMS["5m"]), out_channels=32, num_outs=5))
        outs = fpn(feats)
        assert len(outs) == 5 and outs[0].shape == (2, 32, 32, 32)
        head = SEG.build(dict(type="UPerHead", in_channels=list(DIMS["5m"]), in_index=[0, 1, 2, 3],
                              pool_scales=(1, 2, 3, 6), channels=32, num_classes=5, norm_cfg=dict(type="BN")))
        head.eval()
        assert head(feats).shape == (2, 5, 32, 32)


@pytest.mark.parametrize("frozen_stages", [0, 2])
def test_frozen_stages(frozen_stages):
    model = TinyViT("5m", out_indices=(0, 1, 2, 3), frozen_stages=frozen_stages)
    model.train()
    frozen_prefixes = ["patch_embed."] + [f"stages.{i}." for i in range(frozen_stages)] + \
        [f"norm{i}." for i in range(frozen_stages)]
    for name, p in model.named_parameters():
        assert p.requires_grad != any(name.startswith(f) for f in frozen_prefixes), name
    assert not model.patch_embed.training
    assert model.stages[frozen_stages].training
    loss = sum(o.sum() for o in model(torch.randn(2, 3, 64, 64)))
    loss.backward()
    assert model.patch_embed.conv1.conv.weight.grad is None


def test_norm_eval_keeps_batchnorm_statistics():
    model = TinyViT("5m", out_indices=(3,), norm_eval=True).train()
    before = model.patch_embed.conv1.bn.running_mean.clone()
    model(torch.randn(2, 3, 64, 64))
    assert torch.equal(before, model.patch_embed.conv1.bn.running_mean)


def test_with_cp_and_drop_path_train():
    model = TinyViT("5m", out_indices=(0, 1, 2, 3), with_cp=True, drop_path_rate=0.1).train()
    outs = model(torch.randn(2, 3, 64, 64))
    sum(o.mean() for o in outs).backward()
    assert model.stages[3].blocks[1].attn.qkv.weight.grad is not None


def test_custom_contraction_factors():
    model = TinyViT(dict(embed_dims=(32, 64, 96, 128), depths=(1, 1, 2, 1), head_dim=16, mlp_ratio=2,
                         mbconv_ratio=2), out_indices=(0, 1, 2, 3))
    assert model.num_heads == (2, 4, 6, 8)
    assert [o.shape[1] for o in model(torch.randn(1, 3, 64, 64))] == [32, 64, 96, 128]


def test_layer_depth_matches_official_decay():
    model = TinyViT("5m")
    depth = lambda n: model.get_layer_depth(n)[0]  # noqa: E731
    assert model.get_layer_depth("patch_embed.conv1.conv.weight") == (0, 12)
    assert depth("stages.0.blocks.1.conv1.conv.weight") == 1
    assert depth("stages.1.downsample.conv1.conv.weight") == 1  # shares the block before it
    assert depth("stages.1.blocks.0.attn.qkv.weight") == 2
    assert depth("stages.3.blocks.1.mlp.fc2.weight") == 11
    assert depth("head.fc.weight") == 11


def test_layer_decay_optimizer_constructor_groups():
    from mmengine.optim import build_optim_wrapper

    class Detector(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = TinyViT("5m", out_indices=(0, 1, 2, 3))
            self.neck = nn.Linear(4, 4)

    model = Detector()
    wrapper = build_optim_wrapper(model, dict(
        type="OptimWrapper", optimizer=dict(type="AdamW", lr=1e-3, weight_decay=0.05),
        constructor="LayerDecayOptimWrapperConstructor", paramwise_cfg=dict(layer_decay_rate=0.8)))
    lr_of, wd_of = {}, {}
    for group in wrapper.optimizer.param_groups:
        for p in group["params"]:
            lr_of[id(p)], wd_of[id(p)] = group["lr"], group["weight_decay"]
    params = dict(model.named_parameters())
    assert lr_of[id(params["neck.weight"])] == pytest.approx(1e-3)
    assert lr_of[id(params["backbone.patch_embed.conv1.conv.weight"])] == pytest.approx(1e-3 * 0.8 ** 11)
    assert lr_of[id(params["backbone.stages.3.blocks.1.mlp.fc1.weight"])] == pytest.approx(1e-3)
    assert wd_of[id(params["backbone.stages.1.blocks.0.attn.attention_biases"])] == 0.0
    assert wd_of[id(params["backbone.norm0.weight"])] == 0.0
    assert wd_of[id(params["backbone.stages.1.blocks.0.attn.qkv.weight"])] == 0.05
    assert sum(len(g["params"]) for g in wrapper.optimizer.param_groups) == len(params)


@pytest.mark.parametrize("kwargs,match", [
    (dict(arch="7m"), r"unknown TinyViT arch '7m'"),
    (dict(arch=dict(embed_dims=(64, 128))), r"missing keys \['depths'\]"),
    (dict(arch=dict(embed_dims=(64, 128, 160, 320), depths=(2, 2, 6, 2), heads=3)), r"unknown keys \['heads'\]"),
    (dict(window_sizes=(7, 7, 14)), r"window_sizes must be 4 positive ints"),
    (dict(window_sizes=(7, 0, 14, 7)), r"window_sizes must be 4 positive ints"),
    (dict(img_size=200), r"img_size=200 has no default window sizes"),
])
def test_bad_configuration_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TinyViT(**kwargs)


def test_wrong_input_channels_error():
    with pytest.raises(ValueError, match=re.escape("TinyViT expects (B, 3, H, W) input, got shape [1, 1, 32, 32]")):
        TinyViT("5m")(torch.randn(1, 1, 32, 32))


# ------------------------------------------------------------------- timm's interface: stages, intermediates
@pytest.fixture(scope="module")
def timm_pair(randomize):
    """timm's tiny_vit_5m_224 with random non-trivial weights, and ours holding the same weights."""
    ref = randomize(timm.create_model("tiny_vit_5m_224", num_classes=10, drop_path_rate=0.0), 5).eval()
    ours = TinyViT("5m", num_classes=10).eval()
    ours.load_state_dict(ref.state_dict())
    return ours, ref


def test_forward_hooks_on_stages_fire():
    model = TinyViT("5m", out_indices=(1, 3)).eval()
    seen = {}
    for i, stage in enumerate(model.stages):
        stage.register_forward_hook(lambda m, inp, out, i=i: seen.__setitem__(i, out.shape))
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64))
    assert sorted(seen) == [0, 1, 2, 3]  # every stage up to the last wanted one
    for i, info in enumerate(model.feature_info):
        assert seen[i] == (1, info["num_chs"], 64 // info["reduction"], 64 // info["reduction"])
        assert info["module"] == f"stages.{i}"


@pytest.mark.parametrize("kwargs", [dict(), dict(indices=2), dict(indices=[0, -1], stop_early=True),
                                    dict(indices=(1,), norm=True, intermediates_only=True)])
def test_forward_intermediates_match_timm(timm_pair, kwargs):
    ours, ref = timm_pair
    x = torch.randn(2, 3, 96, 128)
    with torch.no_grad():
        got, want = ours.forward_intermediates(x, **kwargs), ref.forward_intermediates(x, **kwargs)
    if not kwargs.get("intermediates_only"):
        (got_final, got), (want_final, want) = got, want
        assert got_final.shape == want_final.shape and (got_final - want_final).abs().max() <= 1e-4
    assert len(got) == len(want) > 0
    for a, b in zip(got, want):
        assert a.shape == b.shape and (a - b).abs().max() <= 1e-4


def test_forward_intermediates_bad_arguments(timm_pair):
    ours, _ = timm_pair
    x = torch.randn(1, 3, 64, 64)
    with pytest.raises(ValueError, match=r"indices=\[4\]: each must be in -4\.\.3"):
        ours.forward_intermediates(x, indices=[4])
    with pytest.raises(ValueError, match=r"indices=0: last-n must be in 1\.\.4"):
        ours.forward_intermediates(x, indices=0)
    with pytest.raises(ValueError, match=r"output_fmt must be 'NCHW', got 'NHWC'"):
        ours.forward_intermediates(x, output_fmt="NHWC")


def test_backbone_mode_is_forward_intermediates_with_norms(randomize):
    model = randomize(TinyViT("5m", out_indices=(0, 2)), 1).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        outs = model(x)
        inter = model.forward_intermediates(x, [0, 2], norm=True, intermediates_only=True)
        plain = model.forward_intermediates(x, [0, 2], intermediates_only=True)
    assert all(torch.equal(a, b) for a, b in zip(outs, inter))
    assert not torch.allclose(outs[1], plain[1])  # norm=True applied the output LayerNorms


@pytest.mark.parametrize("indices", [2, [0, 1]])
def test_prune_intermediate_layers_matches_timm(randomize, indices):
    ref = randomize(timm.create_model("tiny_vit_5m_224", num_classes=10, drop_path_rate=0.0), 6).eval()
    ours = TinyViT("5m", num_classes=10).eval()
    ours.load_state_dict(ref.state_dict())
    assert ours.prune_intermediate_layers(indices) == ref.prune_intermediate_layers(indices)
    assert len(ours.stages) == len(ref.stages) and ours.num_features == ref.num_features == ours.head_hidden_size
    assert isinstance(ours.get_classifier(), nn.Identity) and ours.num_classes == 0
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert (ours(x) - ref(x)).abs().max() <= 1e-4  # no head: the last kept stage's map, as timm
        for a, b in zip(ours.forward_intermediates(x, indices, intermediates_only=True),
                        ref.forward_intermediates(x, indices, intermediates_only=True)):
            assert (a - b).abs().max() <= 1e-4


def test_prune_in_backbone_mode_keeps_surviving_outputs():
    model = TinyViT("5m", out_indices=(0, 1, 3))
    model.prune_intermediate_layers([0, 1])
    assert model.out_indices == (0, 1) and not hasattr(model, "norm3")
    assert [o.shape[1] for o in model(torch.randn(1, 3, 64, 64))] == [64, 128]
    with pytest.raises(ValueError, match=r"removes every stage of out_indices \(3,\)"):
        TinyViT("5m", out_indices=(3,)).prune_intermediate_layers([0, 1])


def test_fx_feature_extractor_returns_stage_outputs(randomize):
    from torchvision.models.feature_extraction import create_feature_extractor
    model = randomize(TinyViT("5m"), 2).eval()
    extractor = create_feature_extractor(model, return_nodes={"stages.1": "c3", "stages.3": "c5"}).eval()
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        feats = extractor(x)
        want = model.forward_intermediates(x, [1, 3], intermediates_only=True)
    assert torch.equal(feats["c3"], want[0]) and torch.equal(feats["c5"], want[1])  # the same ops: the same bits


def test_grad_checkpointing_same_gradients(randomize):
    a = randomize(TinyViT("5m", out_indices=(0, 1, 2, 3)), 3).train()
    b = randomize(TinyViT("5m", out_indices=(0, 1, 2, 3), with_cp=True), 3).train()
    assert b.grad_checkpointing and b.with_cp and all(s.grad_checkpointing for s in b.stages)
    a.with_cp = True  # the mmdet/mmseg attribute sets timm's flag
    assert a.grad_checkpointing and all(s.grad_checkpointing for s in a.stages)
    a.set_grad_checkpointing(False)
    assert not a.with_cp and not any(s.grad_checkpointing for s in a.stages)
    x = torch.randn(2, 3, 64, 64)
    for m in (a, b):
        sum(o.square().mean() for o in m(x)).backward()
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        assert pa.grad is not None and torch.allclose(pa.grad, pb.grad, atol=1e-6), name


def test_forward_hooks_on_linear_layers_fire_at_inference(randomize):
    """A hook on an attention Linear layer (an attention-map or feature extractor, a FLOP counter) fires at eval with
    grad off; a global module hook too: the model has one forward, whatever the mode."""
    model = randomize(TinyViT("5m"), 6).eval()
    x = torch.randn(1, 3, 64, 64)
    seen: list[torch.Tensor] = []
    with torch.no_grad():
        handle = model.stages[1].blocks[0].attn.qkv.register_forward_hook(lambda m, i, o: seen.append(o))
        model(x)
        handle.remove()
        assert len(seen) == 1 and seen[0].shape[-1] == 3 * model.embed_dims[1]
        calls = []
        handle = torch.nn.modules.module.register_module_forward_hook(lambda m, i, o: calls.append(type(m)))
        try:
            model(x)
        finally:
            handle.remove()
    assert torch.nn.Linear in calls and torch.nn.LayerNorm in calls


def test_training_and_inference_run_the_same_ops(randomize):
    """Training mode with gradients (dropout and drop path at 0, BatchNorm on its running statistics) gives the bits
    of eval mode without gradients: no second inference path in the model."""
    model = randomize(TinyViT("5m", num_classes=10), 11)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        want = model.eval()(x)
    model.train()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()  # batch statistics would change the function, not the path
    assert torch.equal(model(x), want)


class _PickledConfig:
    """Stands in for the yacs config an official Cream training checkpoint pickles."""


def test_init_cfg_allow_pickle(tmp_path, randomize):
    from mmengine.registry import MODELS
    source = randomize(TinyViT("5m", out_indices=(3,)), 7)
    path = tmp_path / "cream_train.pth"
    torch.save({"model": source.state_dict(), "config": _PickledConfig(), "epoch": 299}, path)
    cfg = dict(type="TinyViT", arch="5m", out_indices=(3,), init_cfg=dict(type="Pretrained", checkpoint=str(path)))
    with pytest.raises(ValueError, match="pass allow_pickle=True"):
        MODELS.build(cfg).init_weights()
    model = MODELS.build({**cfg, "init_cfg": {**cfg["init_cfg"], "allow_pickle": True}})
    model.init_weights()
    assert torch.equal(model.stages[3].blocks[1].mlp.fc1.weight, source.stages[3].blocks[1].mlp.fc1.weight)
    with pytest.raises(ValueError, match=r"unknown keys \['allow_pickles'\]"):
        MODELS.build({**cfg, "init_cfg": {**cfg["init_cfg"], "allow_pickles": True}}).init_weights()
