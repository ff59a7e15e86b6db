"""What timm's own model tests check, for our TinyViT as registered in timm (`tinyvit_bench_5m_224`, built through
`timm.models.build_model_with_cfg`) and for timm's `tiny_vit_5m_224`: forward, backward, the default config and
the head's sizes, construction on a device / in a dtype, the `features_only` wrappers, `forward_intermediates`,
TorchScript, torch.fx (output equal to eager bit for bit) and fx + TorchScript. Written here from what timm's
`tests/test_models.py` (1.0.29-1.0.31) asserts; small inputs."""
from __future__ import annotations

import math

import pytest
import timm
import torch
from timm.models import get_notrace_functions, get_notrace_modules
from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

import backbones.tiny_vit  # noqa: F401 - registers tinyvit_bench_* in timm's registry

MODELS = ["tinyvit_bench_5m_224", "tiny_vit_5m_224"]
SIZE = 96  # any size runs (windows padded); timm's tests cap theirs at 96-128 px too


def _fx(model: torch.nn.Module, train: bool = False) -> torch.nn.Module:
    """The model traced by torchvision's fx feature extractor with timm's leaf modules / functions, returning its
    output node (timm's own tests trace this way)."""
    tracer_kwargs = dict(leaf_modules=get_notrace_modules(), autowrap_functions=get_notrace_functions())
    train_nodes, eval_nodes = get_graph_node_names(model, tracer_kwargs=tracer_kwargs)
    return create_feature_extractor(model, train_return_nodes=[train_nodes[-1]], eval_return_nodes=[eval_nodes[-1]],
                                    tracer_kwargs=tracer_kwargs).train(train)


@pytest.mark.parametrize("name", MODELS)
def test_forward_and_grad_checkpointing(name):
    model = timm.create_model(name, num_classes=10).eval()
    x = torch.randn(1, 3, SIZE, SIZE)
    out = model(x)
    assert out.shape == (1, 10) and not out.isnan().any()
    model.set_grad_checkpointing()
    assert torch.allclose(model(x), out, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", MODELS)
def test_backward_reaches_every_parameter(name):
    model = timm.create_model(name, num_classes=42).train()
    out = model(torch.randn(2, 3, 64, 64))
    out.mean().backward()
    assert out.shape == (2, 42)
    assert [n for n, p in model.named_parameters() if p.grad is None] == []


@pytest.mark.parametrize("name", MODELS)
def test_default_config_and_head_sizes(name):
    """The config's pool size is the feature map at its input size; `num_features` is the map's channels,
    `head_hidden_size` the pre-logits width; reset_classifier(0) pools, (0, '') keeps the map; the config's
    classifier and first conv name real parameters."""
    model = timm.create_model(name).eval()
    cfg = model.default_cfg
    assert model.num_classes == cfg["num_classes"] > 0 and model.num_features > 0 and model.head_hidden_size > 0
    x = torch.randn(1, *cfg["input_size"])
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.shape[1:] == (model.num_features, *cfg["pool_size"])
        assert model.forward_head(feats, pre_logits=True).shape == (1, model.head_hidden_size)
        model.reset_classifier(0)
        assert model.num_classes == 0 and model(x).shape == (1, model.head_hidden_size)
        model.reset_classifier(0, "")
        assert model(x).shape == (1, model.num_features, *cfg["pool_size"])
        assert timm.create_model(name, num_classes=0, global_pool="").eval()(x).shape == feats.shape
    state = model.state_dict()
    assert f"{cfg['first_conv']}.weight" in state
    assert f"{cfg['classifier']}.weight" in timm.create_model(name).state_dict()


@pytest.mark.parametrize("name", MODELS)
def test_device_dtype_and_the_head_keep_placement(name):
    """`create_model(device=..., dtype=...)` makes every tensor there (the meta device: nothing allocated); after
    `.to(bfloat16)` the output is bfloat16; a new classifier lands on the model's device and dtype and training flag;
    unknown keyword arguments raise; a frozen model stays frozen through reset_classifier(0) / (0, '')."""
    model = timm.create_model(name, device="meta", dtype=torch.float32).eval()
    assert {t.device.type for t in [*model.parameters(), *model.buffers()]} == {"meta"}
    assert model.in_chans == model.default_cfg["input_size"][0] == 3
    x = torch.randn(1, 3, SIZE, SIZE, device="meta")
    assert model.to(torch.bfloat16)(x.bfloat16()).dtype == torch.bfloat16
    model.to(dtype=torch.float64)
    model.reset_classifier(0)
    model.reset_classifier(2)
    assert {(p.device.type, p.dtype) for p in model.get_classifier().parameters()} == {("meta", torch.float64)}
    assert not any(m.training for m in model.modules())
    with pytest.raises(TypeError):
        timm.create_model(name, device="meta", not_a_model_arg=1)
    frozen = timm.create_model(name, device="meta").requires_grad_(False)
    frozen.reset_classifier(0)
    frozen.reset_classifier(0, "")
    assert not any(p.requires_grad for p in frozen.parameters())


def _check_levels(model: torch.nn.Module, outputs: list[torch.Tensor], info: timm.models.FeatureInfo) -> None:
    assert len(outputs) == len(info.channels()) >= 3
    for channels, reduction, out in zip(info.channels(), info.reduction(), outputs):
        assert out.shape[:2] == (1, channels) and not out.isnan().any()
        assert max(out.shape[2:]) <= math.ceil(SIZE / reduction) + 1


@pytest.mark.parametrize("feature_cls", [None, "getter"])
@pytest.mark.parametrize("name", MODELS)
def test_features_only_wrappers(name, feature_cls):
    """`features_only=True`: timm's hook-free sequential wrapper (FeatureListNet) and the `forward_intermediates`
    one (`feature_cls='getter'`, which prunes the model first)."""
    kwargs = {} if feature_cls is None else {"feature_cls": feature_cls}
    model = timm.create_model(name, features_only=True, **kwargs).eval()
    with torch.no_grad():
        _check_levels(model, model(torch.randn(1, 3, SIZE, SIZE)), model.feature_info)


@pytest.mark.parametrize("name", MODELS)
def test_forward_intermediates(name):
    model = timm.create_model(name).eval()
    x = torch.randn(1, 3, SIZE, SIZE)
    with torch.no_grad():
        final, inter = model.forward_intermediates(x, output_fmt="NCHW")
        _check_levels(model, inter, timm.models.FeatureInfo(model.feature_info, len(model.feature_info)))
        assert torch.allclose(final, model.forward_features(x))
        model.set_grad_checkpointing()
        assert torch.allclose(model.forward_intermediates(x)[0], final, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", MODELS)
def test_torchscript(name):
    with timm.set_scriptable(True):
        model = timm.create_model(name).eval()
    scripted = torch.jit.script(model)
    x = torch.randn(1, 3, SIZE, SIZE)
    with torch.no_grad():
        out = scripted(x)
        assert out.shape == (1, model.num_classes) and torch.allclose(out, model(x), atol=1e-5)


@pytest.mark.parametrize("name", MODELS)
def test_fx_trace_gives_the_eager_bits(name):
    model = timm.create_model(name).eval()
    x = torch.randn(1, 3, SIZE, SIZE)
    with torch.inference_mode():
        want = model(x)
        (got,) = _fx(model)(x).values()
    assert torch.equal(got, want)


@pytest.mark.parametrize("name", MODELS)
def test_fx_trace_trains(name):
    model = timm.create_model(name, num_classes=42).train()
    traced = _fx(model, train=True)
    (out,) = traced(torch.randn(2, 3, 64, 64)).values()
    out.mean().backward()
    assert out.shape == (2, 42) and all(p.grad is not None for p in traced.parameters())


@pytest.mark.parametrize("name", MODELS)
def test_fx_trace_scripts(name):
    with timm.set_scriptable(True):
        model = timm.create_model(name).eval()
    scripted = torch.jit.script(_fx(model))
    x = torch.randn(1, 3, SIZE, SIZE)
    with torch.inference_mode():
        (out,) = scripted(x).values()
        assert out.shape == (1, model.num_classes) and torch.allclose(out, model(x), atol=1e-5)
