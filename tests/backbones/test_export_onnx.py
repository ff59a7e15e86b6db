"""ONNX export: onnxruntime (CPU) matches PyTorch for the classifier and the pyramid; bad input writes nothing."""
from __future__ import annotations

import pytest
import torch

pytest.importorskip("onnxruntime")
import onnx  # noqa: E402

from backbones import TinyViT  # noqa: E402
from backbones.export_onnx import export_onnx, main, max_abs_diff, ort_session  # noqa: E402
from contracts.checkpoint import save_checkpoint  # noqa: E402


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, randomize):
    """A 10-class TinyViT-5M checkpoint as the trainer writes it (contract 2)."""
    model = randomize(TinyViT("5m", num_classes=10), 11)
    path = tmp_path_factory.mktemp("ckpt") / "student.pth"
    meta = dict(arch="5m", img_size=224, window_sizes=[7, 7, 14, 7], num_classes=10, epoch=3)
    save_checkpoint(path, model.state_dict(), meta)
    return path, model.eval()


def test_classifier_dynamic_batch_matches_pytorch_at_224(tmp_path, checkpoint):
    path, model = checkpoint
    out, diff = export_onnx(path, tmp_path / "cls.onnx", img_size=224, dynamic_batch=True)
    assert diff <= 1e-4
    proto = onnx.load(str(out))
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    assert {n.op_type for n in proto.graph.node} >= {"LayerNormalization", "Conv", "Softmax"}
    assert "BatchNormalization" not in {n.op_type for n in proto.graph.node}  # folded into the convs
    names = {i.name for i in proto.graph.initializer} | {i.name for i in proto.graph.input}
    assert not any("attention_bias" in name for name in names)  # bias tables folded into constants
    assert max_abs_diff(model, ort_session(out), 224, batch=3, seed=1) <= 1e-4  # another batch size
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cls.onnx"]


def test_dense_pyramid_matches_pytorch_at_288(tmp_path, checkpoint):
    path, model = checkpoint
    out, diff = export_onnx(path, tmp_path / "dense.onnx", img_size=288, dense=True)
    assert diff <= 1e-4
    session = ort_session(out)
    assert [o.name for o in session.get_outputs()] == ["stride4", "stride8", "stride16", "stride32"]
    x = torch.randn(1, 3, 288, 288)
    shapes = [o.shape for o in session.run(None, {"image": x.numpy()})]
    assert shapes == [(1, 64, 72, 72), (1, 128, 36, 36), (1, 160, 18, 18), (1, 320, 9, 9)]
    with torch.no_grad():
        want = model.forward_intermediates(x, intermediates_only=True)
    assert all(tuple(w.shape) == s for w, s in zip(want, shapes))


@pytest.mark.parametrize("kwargs,match", [
    (dict(arch="11m"), r"student\.pth: key 'stages\.2\.downsample\.conv1\.conv\.weight' has shape "
                       r"\(160, 128, 1, 1\) in the checkpoint but \(256, 128, 1, 1\) in TinyViT '11m'"),
    (dict(num_classes=5), r"classifier \['head\.fc\.weight', 'head\.fc\.bias'\] shaped for another class count"),
    (dict(img_size=200), r"img_size 200: export needs a positive multiple of 32"),
    (dict(opset=16), r"opset 16: TinyViT needs 17\.\."),
    (dict(opset=99), r"opset 99: TinyViT needs 17\.\."),
])
def test_bad_input_fails_before_writing(tmp_path, checkpoint, kwargs, match):
    path, _ = checkpoint
    with pytest.raises(ValueError, match=match):
        export_onnx(path, tmp_path / "out.onnx", **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_cli_reports_bad_input(tmp_path, checkpoint, capsys):
    path, _ = checkpoint
    with pytest.raises(SystemExit) as exit_info:
        main([str(path), str(tmp_path / "out.onnx"), "--img-size", "100"])
    assert exit_info.value.code == 2
    assert "img_size 100: export needs a positive multiple of 32" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def detector_checkpoint(tmp_path_factory, randomize):
    """A detector-shaped checkpoint as MMEngine's runner writes it: our TinyViT-5M backbone with output norms on
    stages 1-3 (non-trivial weights) under `backbone.`, mmdet's FPN under `neck.`."""
    from mmdet.models.necks import FPN
    from mmengine.runner.checkpoint import save_checkpoint as mmengine_save
    detector = torch.nn.Module()
    detector.backbone = randomize(TinyViT("5m", out_indices=(1, 2, 3)), 12).eval()
    detector.neck = FPN(in_channels=[128, 160, 320], out_channels=32, num_outs=3)
    path = tmp_path_factory.mktemp("det") / "detector.pth"
    mmengine_save({"meta": {"epoch": 1}, "state_dict": detector.state_dict()}, str(path))
    return path, detector.backbone


def test_detector_backbone_with_output_norms_matches_pytorch(tmp_path, detector_checkpoint):
    path, backbone = detector_checkpoint
    assert any(k.startswith("neck.") for k in torch.load(path, weights_only=True)["state_dict"])
    out, diff = export_onnx(path, tmp_path / "det.onnx", img_size=128, dense=True, prefix="backbone.", arch="5m")
    assert diff <= 1e-4
    session = ort_session(out)
    assert [o.name for o in session.get_outputs()] == ["stride8", "stride16", "stride32"]
    assert max_abs_diff(backbone, session, 128, batch=1, seed=2) <= 1e-4  # the trained norms are in the graph


@pytest.mark.parametrize("kwargs,match", [
    (dict(dense=True, prefix="model.backbone."), r"detector\.pth: no checkpoint key starts with prefix "
                                                  r"'model\.backbone\.'"),
    (dict(prefix="backbone."), r"prefix 'backbone\.': a detector / segmentor backbone has no classifier"),
    (dict(dense=True), r"detector\.pth: not a TinyViT checkpoint .*first keys: \['backbone\.norm1\.bias'"),
])
def test_bad_detector_export_fails_before_writing(tmp_path, detector_checkpoint, kwargs, match):
    path, _ = detector_checkpoint
    with pytest.raises(ValueError, match=match):
        export_onnx(path, tmp_path / "out.onnx", img_size=128, arch="5m", **kwargs)
    assert list(tmp_path.iterdir()) == []
