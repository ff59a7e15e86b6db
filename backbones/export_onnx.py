"""ONNX export of a TinyViT checkpoint (classifier or stride-4/8/16/32 pyramid), checked with onnxruntime.

    python -m backbones.export_onnx CHECKPOINT out.onnx [--arch 5m] [--img-size 224] [--dynamic-batch] [--dense]
                                    [--opset 17] [--num-classes N] [--allow-pickle] [--prefix backbone.]

`--dense --prefix backbone.` exports the backbone of one of our detector / segmentor checkpoints, with the
per-output LayerNorms it was trained with (the stages whose `norm{i}` the file holds; without any, all four
stages unnormalised, as a classification checkpoint gives).

The graph is traced from the inference step's copy, `backbones.inference.optimize` with public ops only
(BatchNorm folded into the convolutions, map-first attention with the bias tables gathered into constants; input
height/width fixed, the batch optionally dynamic), then run with onnxruntime's CPU provider on a random batch: the
file is written (atomically) only if its outputs match the plain model's within `--atol` (1e-4 by default, fp32).
Every check of the input (checkpoint vs arch, image size, opset) runs before anything is written. Needs the `onnx`
extra (`onnx`, `onnxruntime`); the TorchScript exporter is used (torch's dynamo exporter would need `onnxscript`
too).
"""
from __future__ import annotations

import argparse
import io
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from contracts.fileio import atomic_write

from .checkpoint import CHECKPOINT_FORMAT, read_checkpoint, strip_prefix, unwrap_checkpoint
from .inference import optimize
from .tiny_vit import NUM_STAGES, TinyViT, build_from_checkpoint

MIN_OPSET = 17  # LayerNormalization
DENSE_OUTPUTS = ("stride4", "stride8", "stride16", "stride32")


def max_opset() -> int:
    """The highest opset both torch's exporter and the installed `onnx` can write."""
    import onnx
    from torch.onnx._constants import ONNX_MAX_OPSET
    return min(ONNX_MAX_OPSET, onnx.defs.onnx_opset_version())


def check_opset(opset: int) -> None:
    top = max_opset()
    if not MIN_OPSET <= opset <= top:
        raise ValueError(f"opset {opset}: TinyViT needs {MIN_OPSET}..{top} (LayerNormalization appears in opset "
                         f"{MIN_OPSET}; {top} is the newest this torch/onnx can write)")


def check_img_size(img_size: int) -> None:
    """The traced graph fixes height and width: whole stride-32 cells keep every pyramid level exact."""
    if img_size < 32 or img_size % 32:
        raise ValueError(f"img_size {img_size}: export needs a positive multiple of 32 (stride-32 pyramid; the "
                         "window grid is fixed in the graph)")


def load_for_export(checkpoint: str | Path, *, dense: bool = False, allow_pickle: bool = False,
                    prefix: str | None = None, **overrides: Any) -> TinyViT:
    """The TinyViT a checkpoint describes, in eval mode; raises naming the keys when the file does not fit it.

    `dense` builds the pyramid (no head; head weights in the file are ignored): the stages with an output norm
    in the file, normalised, or all four without norms; otherwise the classifier, which must find every weight,
    its head included. `prefix`: the backbone's key prefix in a detector / segmentor checkpoint
    (`backbone.`). `overrides`: arch / img_size / window_sizes / num_classes for files without our metadata.
    """
    obj = read_checkpoint(checkpoint, allow_pickle)
    meta = obj.get("meta") if obj.get("format") == CHECKPOINT_FORMAT and isinstance(obj.get("meta"), dict) else {}
    if not dense and "num_classes" not in overrides and meta.get("num_classes") is not None:
        overrides = {**overrides, "num_classes": meta["num_classes"]}
    if dense:
        sd = unwrap_checkpoint(obj)[0]
        try:
            sd = strip_prefix(sd, prefix) if prefix else sd
        except ValueError as err:
            raise ValueError(f"{checkpoint}: {err}") from None
        normed = tuple(i for i in range(NUM_STAGES) if f"norm{i}.weight" in sd)
        overrides = {**overrides, "out_indices": normed or tuple(range(NUM_STAGES)), "out_norm": bool(normed),
                     "num_classes": 0}
    try:
        model, report = build_from_checkpoint(obj, strict=False, prefix=prefix, **overrides)
    except ValueError as err:
        raise ValueError(f"{checkpoint}: {str(err).removeprefix('state dict: ')}") from None
    unexpected = [k for k in report.unexpected_keys if not (dense and k.startswith("head."))]
    problems = []
    if report.missing_keys:
        problems.append(f"missing {report.missing_keys[:8]}")
    if unexpected:
        problems.append(f"unexpected {unexpected[:8]}")
    if report.skipped_keys:
        problems.append(f"classifier {report.skipped_keys} shaped for another class count (pass --num-classes)")
    if problems:
        raise ValueError(f"{checkpoint}: does not fit TinyViT {model.arch!r} ({'; '.join(problems)})")
    return model.eval()


def export_bytes(model: TinyViT, img_size: int, *, dynamic_batch: bool = False, opset: int = MIN_OPSET,
                 batch: int = 1) -> bytes:
    """The ONNX file of `model` (classifier or pyramid, as built) for img_size² inputs, as bytes: its inference copy
    in public ops (the private oneDNN calls do not export; onnxruntime fuses its own epilogues)."""
    check_opset(opset)
    check_img_size(img_size)
    dense = model.out_indices is not None
    outputs = [DENSE_OUTPUTS[i] for i in model.out_indices] if dense else ["logits"]
    axes = {name: {0: "batch"} for name in ["image", *outputs]} if dynamic_batch else None
    buf = io.BytesIO()
    x = torch.randn(batch, model.in_channels, img_size, img_size)
    with torch.no_grad(), warnings.catch_warnings():
        # shape checks of the traced Python code are constants for a fixed size, which is what we want
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        fast = optimize(model, device="cpu", logger="silent", attention="map", onednn=False, pointwise_gemm=False)
        torch.onnx.export(fast, (x,), buf, dynamo=False, opset_version=opset, input_names=["image"],
                          output_names=outputs, dynamic_axes=axes, do_constant_folding=True)
    return buf.getvalue()


def ort_session(onnx_model: bytes | str | Path, threads: int | None = None) -> Any:
    """An onnxruntime CPU session (intra-op threads as torch's unless given). Its pool threads sleep between runs
    instead of spinning: spinning threads take cores from whatever runs next in the process (PyTorch's threads)."""
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or torch.get_num_threads()
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    src = str(onnx_model) if isinstance(onnx_model, Path) else onnx_model
    return ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])


def max_abs_diff(model: TinyViT, session: Any, img_size: int, batch: int = 2, seed: int = 0) -> float:
    """Largest |onnxruntime − PyTorch| over all outputs on a random batch."""
    x = torch.randn(batch, model.in_channels, img_size, img_size, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        ref = model(x)
    ref = list(ref) if isinstance(ref, tuple) else [ref]
    got = session.run(None, {"image": x.numpy()})
    return max(float(np.abs(g - r.numpy()).max()) for g, r in zip(got, ref))


def export_onnx(checkpoint: str | Path, out: str | Path, *, img_size: int = 224, dynamic_batch: bool = False,
                dense: bool = False, opset: int = MIN_OPSET, allow_pickle: bool = False, atol: float = 1e-4,
                prefix: str | None = None, **overrides: Any) -> tuple[Path, float]:
    """Export, check against PyTorch with onnxruntime, then write `out`; returns (path, max abs diff)."""
    check_opset(opset)
    check_img_size(img_size)
    if prefix and not dense:
        raise ValueError(f"prefix {prefix!r}: a detector / segmentor backbone has no classifier; pass dense=True "
                         "(--dense)")
    model = load_for_export(checkpoint, dense=dense, allow_pickle=allow_pickle, prefix=prefix, **overrides)
    data = export_bytes(model, img_size, dynamic_batch=dynamic_batch, opset=opset)
    diff = max_abs_diff(model, ort_session(data), img_size, batch=2 if dynamic_batch else 1)
    if not diff <= atol:
        raise RuntimeError(f"onnxruntime output differs from PyTorch by {diff:.3g} > {atol}; nothing written")
    return atomic_write(out, lambda f: f.write(data)), diff


def main(argv: Sequence[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(prog="python -m backbones.export_onnx", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="TinyViT checkpoint (ours, timm, official or mmpretrain)")
    parser.add_argument("out", help="output .onnx file")
    parser.add_argument("--arch", choices=["5m", "11m", "21m"], help="needed for files without our metadata")
    parser.add_argument("--img-size", type=int, default=224, help="input height = width, a multiple of 32")
    parser.add_argument("--window-img-size", type=int, default=None,
                        help="resolution whose default windows to use (default: the checkpoint's, else --img-size)")
    parser.add_argument("--num-classes", type=int, default=None, help="classifier size for files without metadata")
    parser.add_argument("--dynamic-batch", action="store_true", help="batch dimension dynamic in the graph")
    parser.add_argument("--dense", action="store_true", help="the stride-4/8/16/32 pyramid instead of the classifier")
    parser.add_argument("--opset", type=int, default=MIN_OPSET)
    parser.add_argument("--atol", type=float, default=1e-4, help="max |onnxruntime - PyTorch| accepted")
    parser.add_argument("--allow-pickle", action="store_true", help="trusted files that pickle objects only")
    parser.add_argument("--prefix", default=None, help="the backbone's key prefix in a detector / segmentor "
                        "checkpoint, e.g. 'backbone.' (with --dense)")
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in (("arch", args.arch), ("num_classes", args.num_classes),
                                   ("img_size", args.window_img_size)) if v is not None}
    try:
        path, diff = export_onnx(args.checkpoint, args.out, img_size=args.img_size, dynamic_batch=args.dynamic_batch,
                                 dense=args.dense, opset=args.opset, allow_pickle=args.allow_pickle, atol=args.atol,
                                 prefix=args.prefix, **overrides)
    except (ValueError, FileNotFoundError) as err:
        parser.exit(2, f"error: {err}\n")
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, opset {args.opset}); onnxruntime vs PyTorch max abs "
          f"diff {diff:.2e} at {args.img_size}²")
    return path


if __name__ == "__main__":
    main()
