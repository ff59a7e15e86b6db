"""benchmarks.backbone_profile: the category split adds up, the bounds follow from it, the records validate."""
from __future__ import annotations

import pandas as pd
import pytest
import torch

from backbones import TinyViT
from backbones.inference import optimize
from benchmarks.backbone_profile import CATEGORIES, KERNELS, bounds, category_seconds, main, op_category
from contracts.records import read_records


def test_convolutions_split_by_weight_shape():
    assert op_category("aten::conv2d", [[1, 64, 8, 8], [256, 64, 1, 1]]) == "conv 1x1"
    assert op_category("aten::conv2d", [[1, 64, 8, 8], [64, 1, 3, 3]]) == "conv depth-wise"
    assert op_category("aten::conv2d", [[1, 3, 8, 8], [32, 3, 3, 3]]) == "conv dense"
    binary = [[1, 256, 8, 8], [1, 64, 8, 8], [64, 256, 1, 1], [64], *[[]] * 9]  # conv(X) + residual
    assert op_category("mkldnn::_convolution_pointwise", binary) == "conv 1x1"
    assert op_category("mkldnn::_convolution_pointwise", [[1, 64, 8, 8], [64, 1, 3, 3], [64], *[[]] * 7]) == \
        "conv depth-wise"
    assert op_category("mkldnn::_linear_pointwise", [[1, 8, 8, 64], [256, 64]]) == "linear"
    assert op_category("aten::permute", [[1]]) == "layout copies" and op_category("aten::mean", []) == "other ops"


@pytest.mark.parametrize("onednn", [False, True])
def test_split_of_a_real_forward_covers_every_kernel(onednn):
    model = optimize(TinyViT("5m", img_size=64), device="cpu", logger="silent", attention="map", onednn=onednn)
    with torch.inference_mode():
        model(torch.randn(1, 3, 64, 64))
        seconds = category_seconds(model, torch.randn(1, 3, 64, 64))
    assert set(seconds) == set(CATEGORIES) and all(seconds[k] > 0 for k in (*KERNELS, "LayerNorm", "GELU"))


def test_bounds_from_the_split():
    ours = pd.Series(dict.fromkeys(CATEGORIES, 0.0) | {"linear": 2.0, "GELU": 1.0, "layout copies": 1.0})
    timm = pd.Series(dict.fromkeys(CATEGORIES, 0.0) | {"linear": 2.0, "GELU": 2.0})
    b = bounds(ours, timm)
    assert b["profile_speedup"] == 1.0 and b["bound_speedup_kernels"] == 2.0
    assert b["bound_speedup_no_overhead"] == pytest.approx(4 / 3)


def test_cli_profile_writes_valid_records(tmp_path, capsys):
    threads = torch.get_num_threads()
    try:
        main(["--archs", "5m", "--img-size", "64", "--batch", "1", "--rounds", "1", "--threads", "1",
              "--records", str(tmp_path)])
    finally:
        torch.set_num_threads(threads)
    (record,) = read_records(tmp_path, tasks=["inference_profile"])
    m = record["metrics"]
    assert sum(m["ours_split"].values()) == pytest.approx(1.0) and set(m["timm_best_split"]) == set(CATEGORIES)
    assert m["bound_speedup_kernels"] >= m["bound_speedup_no_overhead"] >= m["profile_speedup"] > 0
    assert "bound_speedup_kernels" in capsys.readouterr().out
