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


def _compiled_activation_ops(model: torch.nn.Module, x: torch.Tensor) -> dict[str, int]:
    """aten ops on the input's path in the inference graph `torch.compile` hands its backend (after AOT
    autograd's functionalisation and decomposition), under bf16 autocast; weight-only work is left out."""
    from collections import Counter

    from torch._functorch.aot_autograd import aot_module_simplified

    graphs: list[torch.fx.GraphModule] = []

    def backend(gm: torch.fx.GraphModule, example_inputs: list) -> object:
        return aot_module_simplified(gm, example_inputs, fw_compiler=lambda g, _: graphs.append(g) or g.forward)

    torch._dynamo.reset()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        torch.compile(model, backend=backend, fullgraph=True)(x)
    torch._dynamo.reset()
    (graph,) = graphs
    on_path = {n for n in graph.graph.nodes if n.op == "placeholder" and n.meta["val"].shape == x.shape}
    ops: Counter = Counter()
    for node in graph.graph.nodes:
        if node.op == "call_function" and on_path.intersection(node.all_input_nodes):
            on_path.add(node)
            ops[str(node.target)] += 1
    return ops


def test_compiled_ours_and_timm_tuned_lower_to_the_same_work():
    """Under `torch.compile` our GPU layout and timm tuned (fused ConvNorms, SDPA) reach inductor as the same
    activation graph up to view ops: the same norms, GELUs, adds, casts, copies and attention, with 10 of our 1×1
    convs as GEMMs (CPU tensors, bf16 autocast). So compiled, ours can only match timm: the eager GPU changes are
    what inductor does itself (on CUDA it peels a conv's bias off into a fused epilogue, `kernel/conv.py`)."""
    ours = _randomized(TinyViT("5m")).eval()
    ours.set_speed_options(attention="sdpa", pointwise_convs="gemm", autocast_norm="half", onednn=False)
    timm_model = timm_tiny_vit("5m", ours.window_sizes).eval()
    timm_model.load_state_dict(ours.state_dict())
    x = torch.randn(2, 3, 224, 224).contiguous(memory_format=torch.channels_last)
    got, want = (_compiled_activation_ops(m, x) for m in (ours, tune_timm(timm_model, "sdpa")))
    views = {"aten.view.default", "aten.permute.default", "aten.transpose.int", "aten.unbind.int",
             "aten.split_with_sizes.default", "aten.as_strided.default"}
    gemms = ["aten.convolution.default", "aten.addmm.default"]
    assert [got[op] - want[op] for op in gemms] == [-10, 10]
    same = [op for op in set(got) | set(want) if op not in views.union(gemms)]
    assert {op: got[op] for op in same} == {op: want[op] for op in same}
    assert got["aten.clone.default"] > 0 and got["aten.native_layer_norm.default"] == 21
