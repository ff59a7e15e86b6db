"""backbones.inference.optimize: every option computes the plain model's function (fp32 ≤ 1e-4, AMP error no worse
than timm's), the GPU kernels on CPU tensors too; the choice per device kind; the private oneDNN ops only where
picked, with a public fallback; the copy is a snapshot and leaves the model as it was."""
from __future__ import annotations

import dataclasses
import itertools

import pytest
import timm
import torch
from torch import nn

import backbones
from backbones import TinyViT
from backbones import inference
from backbones.inference import MEASURED, UNMEASURED, InferenceOptions, default_options, optimize

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
# every valid combination of the options that change fp32 kernels
COMBOS = [dict(fuse_bn=f, attention=a, onednn=o, pointwise_gemm=g)
          for f, a, o, g in itertools.product([False, True], ["windows", "map"], [False, True], [False, True])
          if f or not g]


def _quiet(model: TinyViT, **kwargs) -> TinyViT:
    return optimize(model, logger="silent", **kwargs)


@pytest.mark.parametrize("options", COMBOS, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_every_option_computes_the_model(randomize, options):
    """Classifier at a padded size (64: stage 1 windows padded, stage 2 one padded window) and a whole-window one
    (224), and a backbone with output norms: within 1e-4 of the plain model in fp32."""
    model = randomize(TinyViT("5m", num_classes=10), 1).eval()
    dense = randomize(TinyViT("5m", out_indices=(0, 1, 2, 3)), 2).eval()
    with torch.no_grad():
        for size in (64, 224):
            x = torch.randn(2, 3, size, size)
            assert (_quiet(model, device="cpu", **options)(x) - model(x)).abs().max() <= 1e-4, size
        x = torch.randn(1, 3, 96, 80)
        for got, want in zip(_quiet(dense, device="cpu", **options)(x), dense(x)):
            assert got.shape == want.shape and (got - want).abs().max() <= 1e-4


@pytest.mark.parametrize("device,gpu_options", [("cpu", False), ("cpu", True), pytest.param("cuda", True, marks=CUDA)])
def test_amp_error_no_worse_than_timm(randomize, device, gpu_options):
    """The device's pick (the GPU kernels also forced on CPU tensors: SDPA on windows, 1×1 GEMMs, half LayerNorm):
    fp32 within 1e-4 of timm, and its AMP error against the plain model's fp32 output no worse than timm's AMP error
    against timm's (bf16 on CPU, fp16 on CUDA; TF32 off): mean within 10 %, max (outlier logits) within 50 %."""
    ref = randomize(timm.create_model("tiny_vit_5m_224", num_classes=1000), 10).eval().to(device)
    model = TinyViT("5m", num_classes=1000).eval()
    backbones.load_pretrained(model, ref.state_dict(), strict=True, logger=None)
    model.to(device)
    amp = "bf16" if device == "cpu" else "fp16"
    extra = dict(attention="windows", pointwise_gemm=True, half_norm=True) if gpu_options else {}
    fast32 = _quiet(model, device=device, **{k: v for k, v in extra.items() if k != "half_norm"})
    fast_amp = _quiet(model, device=device, amp=amp, **extra)
    x = torch.randn(4, 3, 224, 224, device=device)
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        with torch.no_grad():
            want = ref(x)
            assert (fast32(x) - want).abs().max() <= 1e-4 and (model(x) - want).abs().max() <= 1e-4
            plain = model(x)
            with torch.autocast(device, dtype=inference.AMP_DTYPES[amp]):
                err_ours, err_ref = (fast_amp(x).float() - plain).abs(), (ref(x).float() - want).abs()
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    assert err_ours.mean() <= 1.1 * err_ref.mean() and err_ours.max() <= 1.5 * err_ref.max(), (
        err_ours.mean(), err_ref.mean(), err_ours.max(), err_ref.max())


class _CountConvs(torch.utils._python_dispatch.TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.convs = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001 - torch's signature
        self.convs += func is torch.ops.aten.convolution.default
        return func(*args, **(kwargs or {}))


def test_pointwise_gemms_replace_the_1x1_convs(randomize):
    """With pointwise_gemm the 10 BN-folded 1×1 convs of TinyViT-5M (of 27) run as GEMMs (on CPU tensors here)."""
    model = randomize(TinyViT("5m"), 7).eval()
    pointwise = sum(m.conv.kernel_size == (1, 1) for m in model.modules() if isinstance(m, backbones.tiny_vit.ConvNorm))
    x = torch.randn(1, 3, 64, 64)
    counts = {}
    with torch.no_grad():
        for gemm in (False, True):
            with _CountConvs() as counted:
                _quiet(model, device="cpu", onednn=False, pointwise_gemm=gemm)(x)
            counts[gemm] = counted.convs
    assert pointwise == 10 and counts == {False: 27, True: 27 - pointwise}


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
def test_activation_copies_per_attention_layout(device):
    """Per image at 224 under autocast, the activations each attention layout copies (half the batch-4 count minus
    the batch-2 count: weight and bias copies drop out; at batch 1 more folds into views): 'windows' 2C channels per
    block of a multi-window map and none for a one-window map; 'map' 4C per block (for one window q, k and v are
    copied inside the batched matmuls). On CUDA nothing is copied inside SDPA or out of its output (q, k, v and the
    result are views); on CPU its math path copies inside."""
    from torch.overrides import TorchFunctionMode
    from torch.utils._python_dispatch import TorchDispatchMode
    copies = {torch.ops.aten.clone.default, torch.ops.aten.copy_.default, torch.ops.aten.constant_pad_nd.default,
              torch.ops.aten.cat.default}

    class InSdpa(TorchFunctionMode):
        def __init__(self) -> None:
            super().__init__()
            self.depth, self.outputs = 0, []

        def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001 - torch's signature
            if func is not torch.nn.functional.scaled_dot_product_attention:
                return func(*args, **(kwargs or {}))
            self.depth += 1
            try:
                out = func(*args, **(kwargs or {}))
            finally:
                self.depth -= 1
            self.outputs.append(out)  # kept alive: its storage is not reused within the forward
            return out

    class Copied(TorchDispatchMode):
        def __init__(self, sdpa: InSdpa) -> None:
            super().__init__()
            self.sdpa, self.elements = sdpa, {"layout": 0, "inside sdpa": 0, "sdpa output": 0}

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001 - torch's signature
            out = func(*args, **(kwargs or {}))
            if func in copies:
                source = args[0] if func is not torch.ops.aten.copy_.default else args[1]
                storages = {o.untyped_storage().data_ptr() for o in self.sdpa.outputs}
                kind = ("inside sdpa" if self.sdpa.depth else
                        "sdpa output" if isinstance(source, torch.Tensor)
                        and source.untyped_storage().data_ptr() in storages else "layout")
                self.elements[kind] += out.numel()
            return out

    def per_image(model: nn.Module) -> dict[str, int]:
        counts = []
        for batch in (2, 4):
            x = torch.randn(batch, 3, 224, 224, device=device).contiguous(memory_format=torch.channels_last)
            sdpa = InSdpa()
            with torch.no_grad(), torch.autocast(device, dtype=amp), sdpa, Copied(sdpa) as copied:
                model(x)
            counts.append(copied.elements)
        return {k: (counts[1][k] - counts[0][k]) // 2 for k in counts[0]}

    amp = torch.bfloat16 if device == "cpu" else torch.float16
    model = TinyViT("5m").eval().to(device)
    maps = []  # (C·H·W, windows) of each block's input, from a forward hook
    hooks = [m.register_forward_hook(lambda m, args, out: maps.append(
        (args[0][0].numel(), -(-args[0].shape[1] // m.window_size) * -(-args[0].shape[2] // m.window_size))))
        for m in model.modules() if isinstance(m, backbones.tiny_vit.Attention)]
    with torch.no_grad():
        model(torch.randn(1, 3, 224, 224, device=device))
    for h in hooks:
        h.remove()
    assert sorted({windows for _, windows in maps}) == [1, 16]  # stage 1 cut into windows, stages 2-3 one window
    gpu = dict(device=device, amp="bf16" if device == "cpu" else "fp16", onednn=False, pointwise_gemm=True,
               half_norm=True)
    windows = per_image(_quiet(model, attention="windows", **gpu))
    assert windows["layout"] == sum(2 * chw for chw, n in maps if n > 1)
    if device == "cuda":
        assert windows["inside sdpa"] == windows["sdpa output"] == 0, windows
    matmul = per_image(_quiet(model, attention="map", **gpu))
    assert matmul["layout"] == sum(4 * chw for chw, _ in maps)
    assert matmul["inside sdpa"] == matmul["sdpa output"] == 0


def test_half_layer_norm(randomize):
    """`HalfLayerNorm` returns the autocast dtype, within one rounding of the fp32 norm, with or without autocast
    around it; a whole model's AMP error with it is no worse than with autocast's own fp32 norm."""
    norm = randomize(nn.LayerNorm(64), 8)
    half = inference.HalfLayerNorm(norm, torch.bfloat16, "cpu")
    x = torch.randn(2, 7, 7, 64) * 3 + 1
    ref = nn.functional.layer_norm(x, (64,), norm.weight, norm.bias, norm.eps)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        y = half(x.bfloat16())
    assert y.dtype == torch.bfloat16
    assert ((y.float() - ref).abs() <= 2 ** -7 * ref.abs() + 2e-2).all()  # bf16 input and weights, bf16 output

    model = randomize(TinyViT("5m"), 9).eval()
    x = torch.randn(2, 3, 64, 64)
    errors = {}
    with torch.no_grad():
        want = model(x)
        for half_norm in (False, True):
            fast = _quiet(model, device="cpu", amp="bf16", half_norm=half_norm)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                errors[half_norm] = (fast(x).float() - want).abs().max().item()
    assert errors[True] <= 1.25 * errors[False] + 1e-3, errors


def _mkldnn_ops(run) -> set[str]:
    from torch.profiler import profile
    with torch.no_grad(), profile() as prof:
        run()
    return {e.name for e in prof.events() if e.name.startswith("mkldnn::")}


def test_onednn_calls_only_where_picked(randomize, monkeypatch, capsys):
    """The oneDNN fused ops run in an optimized copy built with onednn=True, never in the model itself or a copy
    without them; where this PyTorch lacks them the copy falls back to public ops, and the log says so."""
    model = randomize(TinyViT("5m"), 5).eval()
    x = torch.randn(1, 3, 64, 64)
    if inference.onednn_available():
        fast = _quiet(model, device="cpu", onednn=True)
        assert _mkldnn_ops(lambda: fast(x)) == {"mkldnn::_linear_pointwise", "mkldnn::_convolution_pointwise"}
    assert not _mkldnn_ops(lambda: model(x))
    assert not _mkldnn_ops(lambda: _quiet(model, device="cpu", onednn=False)(x))
    monkeypatch.setattr(inference, "onednn_available", lambda: False)
    fallback = optimize(model, device="cpu", logger=None, onednn=True)
    assert "oneDNN calls asked for but not in torch" in capsys.readouterr().out
    assert not fallback.inference_options.onednn and not _mkldnn_ops(lambda: fallback(x))
    assert (fallback(x) - model(x)).abs().max() <= 1e-4


def test_the_copy_is_a_snapshot_and_the_model_stays(randomize):
    model = randomize(TinyViT("5m", num_classes=10), 3).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    fast = _quiet(model.eval(), device="cpu")
    assert torch.equal(torch.get_rng_state(), rng)  # building the copy draws nothing: a mid-run eval leaves training's stream
    assert model.stages[1].blocks[0].attn.qkv.weight.requires_grad
    assert not any(p.requires_grad for p in fast.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert type(model.stages[1].blocks[0]) is backbones.tiny_vit.TinyViTBlock
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        want = fast(x)
        model.stages[1].blocks[0].attn.attention_biases.add_(1.0)  # a change to the model...
        assert torch.equal(fast(x), want)  # ...does not reach the copy made before it
        assert (_quiet(model, device="cpu")(x) - model(x)).abs().max() <= 1e-4  # optimize again: it does


def test_default_options_per_device_kind(monkeypatch, capsys):
    """The measured pick for a known device kind, the public-op default for an unknown one; oneDNN calls dropped
    under autocast; the pick and its reason are logged and kept on the copy."""
    options, why = default_options("cuda", "fp16")
    assert options == MEASURED["cuda"][0] and why.startswith("cuda: ")
    monkeypatch.setattr(inference, "device_kind", lambda device: "cpu:SomeOtherVendor")
    assert default_options("cpu") == (UNMEASURED[0], f"cpu:SomeOtherVendor: {UNMEASURED[1]}")
    monkeypatch.setattr(inference, "device_kind", lambda device: "cpu:AuthenticAMD")
    amd, _ = MEASURED["cpu:AuthenticAMD"]
    options, why = default_options("cpu", "bf16")
    assert options == dataclasses.replace(amd, onednn=False)
    assert not amd.onednn or "oneDNN calls off (autocast)" in why
    fast = optimize(TinyViT("5m").eval(), device="cpu", logger=None, attention="windows")
    assert fast.inference_options == dataclasses.replace(default_options("cpu")[0], attention="windows")
    assert "cpu:AuthenticAMD" in capsys.readouterr().out


def test_device_kind_reads_the_cpu_vendor():
    kind = inference.device_kind("cpu")
    assert kind.startswith("cpu:") and len(kind) > 4 and inference.device_kind("cuda:1") == "cuda"


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(attention="flash"), ValueError, r"attention='flash': choose one of \['windows', 'map'\]"),
    (dict(pointwise_gemm=True, fuse_bn=False), ValueError, "pointwise_gemm=True needs fuse_bn=True"),
    (dict(half_norm=True), ValueError, "half_norm=True needs amp='bf16' or 'fp16'"),
    (dict(amp="fp8"), ValueError, r"amp='fp8': choose None or one of \['bf16', 'fp16'\]"),
    (dict(onednn=True, amp="bf16"), ValueError, "oneDNN's fused calls run in fp32 on the CPU"),
    (dict(channels_last=True), TypeError, r"unknown options \['channels_last'\]"),
])
def test_bad_options(kwargs, error, match):
    with pytest.raises(error, match=match):
        optimize(TinyViT("5m"), device="cpu", logger="silent", **kwargs)
    with pytest.raises(TypeError, match="optimize takes a backbones.TinyViT, got Linear"):
        optimize(nn.Linear(2, 2))

