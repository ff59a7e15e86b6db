"""benchmarks.backbone_speed: sizes against the paper; every contender computes the same function from the same
weights; the ablation chain ends at every option on; records validate."""
from __future__ import annotations

import pytest
import torch

from backbones import TinyViT
from backbones.tiny_vit import Attention
from benchmarks.backbone_speed import ABLATION_OFF, ablation_steps, contenders, main, summarize, timm_tiny_vit, tune_timm
from benchmarks.common import count_macs, count_params
from contracts.records import read_records

# Paper Tab. 4 / supp. Tab. 1: params (M, 1000-class head) and MACs (G) at 224².
PAPER = {"5m": (5.4, 1.3), "11m": (11.0, 2.0), "21m": (21.0, 4.3)}


@pytest.mark.parametrize("arch", sorted(PAPER))
def test_params_and_macs_match_paper(arch):
    model = TinyViT(arch, num_classes=1000)
    params_m, macs_g = count_params(model) / 1e6, count_macs(model, 224) / 1e9
    paper_params, paper_macs = PAPER[arch]
    assert abs(params_m - paper_params) / paper_params < 0.03, params_m
    assert abs(macs_g - paper_macs) / paper_macs < 0.03, macs_g


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
    assert set(runners) == {"ours", "ours plain", "timm", "timm tuned sdpa", "timm tuned matmul", "ours: none",
                            "ours: +fused BN", "ours: +oneDNN"}
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
    assert m["gain_optimize"] == pytest.approx(m["ours_img_s"] / m["ours_plain_img_s"])
    assert record["setting"]["inference_options"].keys() == {"fuse_bn", "attention", "onednn", "pointwise_gemm",
                                                             "half_norm"}
    assert record["setting"]["batch"] == 2 and record["setting"]["clock"] == "cpu"
    assert record["setting"]["allocator"] == "heap (freed memory kept)"  # the default, glibc on Linux
    assert record["backbone"]["source"] == "random"
    assert "onnxruntime" in capsys.readouterr().out


@pytest.mark.parametrize("gpu", [False, True])
def test_ablation_chain_ends_with_every_option_of_the_device(gpu):
    """Each device's chain starts with every `optimize` option off and ends with all of this device's on (the other
    device's stay off); the record's gains multiply to the last row over the base row."""
    options = dict(ABLATION_OFF)
    for _, step, _ in ablation_steps(gpu):
        options.update(step)
    mine = dict(attention="windows", pointwise_gemm=True, half_norm=True) if gpu else dict(onednn=True)
    other = dict(onednn=False) if gpu else dict(attention="map", pointwise_gemm=False, half_norm=False)
    assert options == dict(fuse_bn=True, **mine, **other)
    speed = {name: 10.0 + i for i, (name, _, _) in enumerate(ablation_steps(gpu))}
    speed.update({"ours": 20.0, "ours plain": 8.0, "timm": 5.0, "timm tuned sdpa": 6.0, "timm tuned matmul": 7.0})
    m = summarize(speed)
    gains = [m[gain] for _, _, gain in ablation_steps(gpu)[1:]]
    last = ablation_steps(gpu)[-1][0]
    assert len(gains) == (4 if gpu else 2) and speed[last] / m["ablation_base_img_s"] == pytest.approx(
        torch.tensor(gains, dtype=torch.float64).prod().item())
    assert m["gain_optimize"] == 2.5


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
    """Under `torch.compile` our inference copy with SDPA on windows and timm tuned (fused ConvNorms, SDPA) reach
    inductor as the same activation graph up to view ops: the same convs, GEMMs, norms, GELUs, adds, casts and
    attention (CPU tensors, bf16 autocast), with 2 layout copies fewer per attention block in ours (its residual is
    added in window layout). The 1×1 GEMMs (a GPU option) turn 10 convs into GEMMs, nothing else. So compiled, ours
    can only match timm: the eager GPU changes are what inductor does itself (on CUDA it peels a conv's bias off into
    a fused epilogue, `kernel/conv.py`)."""
    from backbones.inference import optimize
    plain = _randomized(TinyViT("5m")).eval()
    timm_model = timm_tiny_vit("5m", plain.window_sizes).eval()
    timm_model.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 224, 224).contiguous(memory_format=torch.channels_last)
    windows, gemms = (optimize(plain, device="cpu", amp="bf16", logger="silent", attention="windows",
                               pointwise_gemm=g, half_norm=True) for g in (False, True))
    ours, gpu, want = (_compiled_activation_ops(m, x) for m in (windows, gemms, tune_timm(timm_model, "sdpa")))
    views = {"aten.view.default", "aten.permute.default", "aten.transpose.int", "aten.unbind.int",
             "aten.split_with_sizes.default", "aten.as_strided.default", "aten.alias.default", "aten.slice.Tensor",
             "<built-in function getitem>"}
    ops = set(ours) | set(gpu) | set(want)
    clone, conv, addmm = "aten.clone.default", "aten.convolution.default", "aten.addmm.default"
    blocks = sum(isinstance(m, Attention) for m in plain.modules())
    assert want[clone] - ours[clone] == 2 * blocks == 20
    assert {op: ours[op] for op in ops - views - {clone}} == {op: want[op] for op in ops - views - {clone}}
    assert [gpu[conv] - ours[conv], gpu[addmm] - ours[addmm]] == [-10, 10]
    assert {op: gpu[op] for op in ops - views - {conv, addmm}} == {op: ours[op] for op in ops - views - {conv, addmm}}
    assert want["aten.native_layer_norm.default"] == 21
