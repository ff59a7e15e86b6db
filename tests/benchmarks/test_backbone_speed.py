"""benchmarks.backbone_speed: every contender computes the same function from the same weights; records validate."""
from __future__ import annotations

import pytest
import torch

from backbones import TinyViT
from benchmarks.backbone_speed import contenders, main, timm_tiny_vit, tune_timm
from contracts.records import read_records


def _randomized(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-trivial weights and BN statistics (the zero-initialised ones would hide a wrong copy)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.randn(t.shape, generator=g) * 0.1 + (0.6 if name.endswith("running_var") else 0.0))
    return model


def test_all_contenders_compute_the_same_function():
    ours = _randomized(TinyViT("5m", img_size=64, num_classes=10))
    runners = contenders(ours, 64, "cpu", compile_mode=None, ablation=True, onnxruntime=False, notes=[])
    assert set(runners) == {"ours", "timm", "timm tuned sdpa", "timm tuned matmul", "ours: none",
                            "ours: +channels-last", "ours: +fused BN", "ours: +attention kernel"}
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        want = ours(x)
        for name, run in runners.items():
            assert (run(x) - want).abs().max() <= 1e-4, name


def test_tuned_timm_has_no_unfused_convnorm():
    from timm.models.tiny_vit import ConvNorm
    tuned = tune_timm(timm_tiny_vit("5m", (2, 2, 4, 2)).eval(), "matmul")
    assert not any(isinstance(m, ConvNorm) for m in tuned.modules())
    assert tuned.patch_embed.conv1.weight.is_contiguous(memory_format=torch.channels_last)


def test_cli_writes_valid_records(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    threads = torch.get_num_threads()
    try:
        main(["--archs", "5m", "--img-size", "64", "--batch", "2", "--rounds", "1", "--iters", "1", "--ablation",
              "--onnxruntime", "--threads", "1", "--clock", "cpu", "--records", str(tmp_path)])
    finally:
        torch.set_num_threads(threads)
    (record,) = read_records(tmp_path, tasks=["throughput"])
    m = record["metrics"]
    assert m["timm_tuned_img_s"] == max(m["timm_tuned_sdpa_img_s"], m["timm_tuned_matmul_img_s"])
    assert m["timm_best_img_s"] >= m["timm_tuned_img_s"] and m["ort_img_s"] > 0
    assert m["ours_img_s"] / m["ablation_base_img_s"] == pytest.approx(
        m["gain_channels_last"] * m["gain_fuse_bn"] * m["gain_attention"] * m["gain_onednn"])
    assert record["setting"]["batch"] == 2 and record["setting"]["clock"] == "cpu"
    assert record["setting"]["allocator"] == "heap (freed memory kept)"  # the default, glibc on Linux
    assert record["backbone"]["source"] == "random"
    assert "onnxruntime" in capsys.readouterr().out


@pytest.mark.parametrize("gpu", [False, True])
def test_ablation_steps_end_at_ours_as_shipped(gpu):
    """Each device's chain (GPU's run here on CPU tensors) keeps the outputs, ends with every trick at its default,
    and its gains multiply to ours over the base row in the record."""
    from benchmarks.backbone_speed import _ABLATION_OFF, ablation_steps, summarize
    ours = _randomized(TinyViT("5m", img_size=64, num_classes=10)).eval()
    x = torch.randn(2, 3, 64, 64)
    options = dict(_ABLATION_OFF)
    with torch.no_grad():
        want = ours(x)
        for name, step, _ in ablation_steps(gpu):
            options.update(step)
            model = TinyViT("5m", img_size=64, num_classes=10).eval()
            model.load_state_dict(ours.state_dict())
            model.set_speed_options(**options)
            assert (model(x) - want).abs().max() <= 1e-4, name
    # the other device's switches stay off: oneDNN acts on CPU only, and on CPU 'auto' means conv and fp32 norm
    other = dict(onednn=False) if gpu else dict(pointwise_convs="conv", autocast_norm="fp32")
    assert {k: options[k] for k in other} == other
    options.update(onednn=True, pointwise_convs="auto", autocast_norm="auto")
    assert options == dict(channels_last=True, fuse_bn=True, onednn=True, pointwise_convs="auto",
                           autocast_norm="auto", attention="auto")
    speed = {name: 10.0 + i for i, (name, _, _) in enumerate(ablation_steps(gpu))}
    speed.update({"timm": 5.0, "timm tuned sdpa": 6.0, "timm tuned matmul": 7.0})
    m = summarize(speed)
    gains = [m[gain] for _, _, gain in ablation_steps(gpu)[1:]]
    assert len(gains) == (5 if gpu else 4) and m["ours_img_s"] / m["ablation_base_img_s"] == pytest.approx(
        torch.tensor(gains, dtype=torch.float64).prod().item())
