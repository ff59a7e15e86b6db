"""Checkpoint interop: load any TinyViT checkpoint layout into `backbones.TinyViT`, mapped by name.

Formats (detected from the keys, never by position):
- ours: `{"format": "tinyvit-bench/checkpoint/v1", "state_dict": ..., "meta": ...}` (contract 2,
  `contracts.checkpoint`, written by `distill_pretrain`; `load_checkpoint` reads this format only); its names are
  timm's;
- timm: `tiny_vit_*` state dicts (`.pth`/`.bin`/`.safetensors`), `patch_embed.conv1.conv.weight`, `stages.N...`;
- official (microsoft/Cream): `{"model": ...}`, `patch_embed.seq.0.c.weight`, `layers.N...`, `norm_head`, `head`;
- mmpretrain: `{"state_dict": ...}`, `backbone.patch_embed.seq.0.conv2d.weight`, `backbone.stages.N...`,
  `backbone.norm3`, `head.fc`.
A detector/segmentor checkpoint of ours loads with `prefix='backbone.'`.
"""
from __future__ import annotations

import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from fnmatch import fnmatchcase
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn

from contracts.checkpoint import CHECKPOINT_FORMAT
from contracts.fileio import file_sha256  # noqa: F401 - re-exported as backbones.file_sha256

_PROBE = {
    "timm": "patch_embed.conv1.conv.weight",
    "official": "patch_embed.seq.0.c.weight",
    "mmpretrain": "patch_embed.seq.0.conv2d.weight",
}


@dataclass
class LoadReport:
    """What `load_pretrained` did: the detected format, the keys it could not place (these go into records) and
    the `allow_keys` patterns the caller accepted them under."""

    source_format: str
    missing_keys: list[str] = field(default_factory=list)
    unexpected_keys: list[str] = field(default_factory=list)
    skipped_keys: list[str] = field(default_factory=list)  # present but shaped for another head
    allow_keys: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return (f"loaded {self.source_format} checkpoint: {len(self.missing_keys)} missing "
                f"{self.missing_keys[:8]}, {len(self.unexpected_keys)} unexpected {self.unexpected_keys[:8]}, "
                f"{len(self.skipped_keys)} skipped {self.skipped_keys[:8]}")

    def to_dict(self) -> dict[str, Any]:
        """The key lists for a record's `backbone` block."""
        return {"format": self.source_format, "missing_keys": list(self.missing_keys),
                "unexpected_keys": list(self.unexpected_keys), "skipped_keys": list(self.skipped_keys)}


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0][:200]}" if text else type(err).__name__


def read_checkpoint(path: str | Path, allow_pickle: bool = False) -> dict[str, Any]:
    """Read a checkpoint file: safetensors, or torch files of plain types (`weights_only=True`).

    Files that need arbitrary unpickling (old mmpretrain/official files with numpy or config objects in their
    metadata) are refused unless `allow_pickle=True` (trusted files only). A bad file raises a one-line
    ValueError with the path and the cause: "empty", "truncated or corrupted", or "not a checkpoint".
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: empty checkpoint file (0 bytes)")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        try:
            return load_file(str(path))
        except Exception as err:  # SafetensorError: header too small / file not fully covered / ...
            raise ValueError(f"{path}: truncated or corrupted safetensors file ({_first_line(err)})") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "Unsupported global" not in str(err):  # only a disallowed class is a trust question
            raise ValueError(f"{path}: truncated or corrupted checkpoint ({_first_line(err)})") from None
        if not allow_pickle:  # a complete file whose pickle needs more than plain types
            raise ValueError(f"{path}: cannot be read with weights_only=True (it pickles objects other than "
                             f"tensors and plain types); if you trust the file, pass allow_pickle=True") from None
        try:
            obj = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as err2:
            raise ValueError(f"{path}: truncated or corrupted checkpoint ({_first_line(err2)})") from None
    except Exception as err:  # zip reader errors, EOF in legacy files, OSError from a cut archive
        raise ValueError(f"{path}: truncated or corrupted checkpoint ({_first_line(err)})") from None
    if not isinstance(obj, Mapping):
        raise ValueError(f"{path}: not a TinyViT checkpoint (a {type(obj).__name__}, not a dict of weights)")
    return dict(obj)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a contract-2 checkpoint (`read_checkpoint`: bad files named); refuses other formats with the file's name."""
    obj = read_checkpoint(path)
    if obj.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a {CHECKPOINT_FORMAT} checkpoint (format={obj.get('format')!r})")
    return obj


def unwrap_checkpoint(obj: Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state_dict, meta) from the known wrappers: ours, `model` / `state_dict` / `*_ema` dicts, or bare tensors."""
    if obj.get("format") == CHECKPOINT_FORMAT:
        return dict(obj["state_dict"]), dict(obj.get("meta", {}))
    if isinstance(obj.get("format"), str):
        raise ValueError(f"checkpoint format {obj['format']!r} is not {CHECKPOINT_FORMAT!r}")
    for key in ("model", "state_dict", "model_ema", "state_dict_ema"):
        if isinstance(obj.get(key), Mapping):
            return dict(obj[key]), {k: v for k, v in obj.items() if k != key and isinstance(v, (int, float, str))}
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}, {}


def strip_prefix(sd: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The keys under `prefix` (e.g. a detector's `backbone.`), without it; raises when none is."""
    out = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    if not out:
        raise ValueError(f"no checkpoint key starts with prefix {prefix!r} (first keys: {list(sd)[:5]})")
    return out


def _rename(sd: Mapping[str, torch.Tensor], rules: list[tuple[str, str | Callable[[re.Match], str]]]) -> dict:
    out = {}
    for key, value in sd.items():
        for pattern, repl in rules:
            key = re.sub(pattern, repl, key)
        out[key] = value
    return out


def _next_stage(m: re.Match) -> str:
    return f"stages.{int(m.group(1)) + 1}.downsample."


# Official / mmpretrain put each stage's downsampling at the end of stage N; ours (timm's) at the start of N+1.
_OFFICIAL_RULES = [
    (r"^patch_embed\.seq\.0\.", "patch_embed.conv1."),
    (r"^patch_embed\.seq\.2\.", "patch_embed.conv2."),
    (r"^layers\.(\d+)\.downsample\.", _next_stage),
    (r"^layers\.", "stages."),
    (r"\.c\.(weight)$", r".conv.\1"),
    (r"^norm_head\.", "head.norm."),
    (r"^head\.(weight|bias)$", r"head.fc.\1"),
]
_MMPRETRAIN_RULES = [
    (r"^backbone\.", ""),
    (r"^patch_embed\.seq\.0\.", "patch_embed.conv1."),
    (r"^patch_embed\.seq\.2\.", "patch_embed.conv2."),
    (r"^stages\.(\d+)\.downsample\.", _next_stage),
    (r"\.conv2d\.", ".conv."),
    (r"\.bn2d\.", ".bn."),
    (r"^norm3\.", "head.norm."),
    (r"^head\.fc\.", "head.fc."),
]


def convert_state_dict(sd: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], str]:
    """Map a TinyViT state dict of any known layout onto our (timm's) names. Returns (state_dict, format)."""
    keys = set(sd)
    if _PROBE["timm"] in keys:
        return dict(sd), "timm"
    if _PROBE["official"] in keys:
        return _rename(sd, _OFFICIAL_RULES), "official"
    if _PROBE["mmpretrain"] in keys or "backbone." + _PROBE["mmpretrain"] in keys:
        return _rename(sd, _MMPRETRAIN_RULES), "mmpretrain"
    raise ValueError("not a TinyViT checkpoint (unknown format); tried ours ('format' key), timm "
                     f"({_PROBE['timm']}), official ({_PROBE['official']}), mmpretrain "
                     f"([backbone.]{_PROBE['mmpretrain']}); first keys: {sorted(keys)[:6]}")


def _structural_keys(model: nn.Module) -> tuple[str, ...]:
    """Patterns for the keys a backbone-mode TinyViT (`out_indices`) does not share with a classification
    checkpoint: its own output norms (missing) and, without a head, the checkpoint's classifier (unexpected)."""
    if getattr(model, "out_indices", None) is None:
        return ()
    return tuple(f"norm{i}.*" for i in model.out_indices) + (("head.*",) if model.head is None else ())


def skip_classifier_or_refuse(sd: dict[str, torch.Tensor], own: Mapping[str, torch.Tensor], key: str,
                              report: LoadReport, where: str, model_label: str, classifier: str) -> None:
    """A key whose shape differs from the model's: a classifier (`classifier` prefix) of another class count is
    skipped and reported, anything else raises naming the key and both shapes."""
    if sd[key].shape == own[key].shape:
        return
    if key.startswith(classifier):
        report.skipped_keys.append(key)
        del sd[key]
        return
    raise ValueError(f"{where}: key {key!r} has shape {tuple(sd[key].shape)} in the checkpoint but "
                     f"{tuple(own[key].shape)} in {model_label}")


def refused_keys(missing: Sequence[str], unexpected: Sequence[str],
                 allowed: Sequence[str]) -> tuple[list[str], list[str]]:
    """The missing and unexpected keys that no `allowed` fnmatch pattern accepts (the partial-match rule)."""
    def ok(key: str) -> bool:
        return any(fnmatchcase(key, pattern) for pattern in allowed)
    return [k for k in missing if not ok(k)], [k for k in unexpected if not ok(k)]


def load_and_report(model: nn.Module, sd: Mapping[str, torch.Tensor], report: LoadReport, where: str, *,
                    strict: bool, allowed: Sequence[str] = ()) -> None:
    """`load_state_dict` by name, the missing/unexpected keys into `report`; with `strict`, a key outside the
    `allowed` fnmatch patterns raises (a partial match is an error, not a quiet load)."""
    result = model.load_state_dict(sd, strict=False)
    report.missing_keys = [k for k in result.missing_keys if k not in report.skipped_keys]
    report.unexpected_keys = list(result.unexpected_keys)
    if not strict:
        return
    missing, unexpected = refused_keys(report.missing_keys, report.unexpected_keys, allowed)
    if missing or unexpected:
        raise ValueError(f"{where}: partial match ({report.source_format} checkpoint): {len(missing)} missing "
                         f"{missing[:8]}, {len(unexpected)} unexpected {unexpected[:8]}; pass allow_keys=[patterns] "
                         f"to accept them, or strict=False")


def load_pretrained(model: nn.Module, checkpoint: str | Path | Mapping[str, Any], *, prefix: str | None = None,
                    strict: bool = True, allow_keys: Sequence[str] = (), allow_pickle: bool = False,
                    logger: Any = None, label: str | None = None) -> LoadReport:
    """Load TinyViT weights of any known format into `model`, by name.

    Attention-bias tables of other window sizes are resized (bicubic); a classifier of another class count
    (including none: `num_classes=0`) is skipped and reported; any other shape mismatch raises with the key and
    both shapes. With `strict` (default) a partial match raises naming the keys, unless every missing or
    unexpected key matches an fnmatch pattern of `allow_keys` (e.g. `("head.*",)` to initialise a classifier from
    a backbone-only checkpoint). A backbone-mode model is not a partial match for a classification checkpoint:
    its output norms and the checkpoint's classifier are allowed (`_structural_keys`). Every missing, unexpected
    and skipped key is in the returned `LoadReport` (records carry it). `label` names an in-memory checkpoint in
    errors (e.g. the file it was read from).
    """
    obj = read_checkpoint(checkpoint, allow_pickle) if isinstance(checkpoint, (str, Path)) else checkpoint
    where = str(checkpoint) if isinstance(checkpoint, (str, Path)) else (label or "state dict")
    sd, meta = unwrap_checkpoint(obj)
    ours = obj.get("format") == CHECKPOINT_FORMAT
    if prefix:
        sd = strip_prefix(sd, prefix)
    try:
        sd, fmt = convert_state_dict(sd)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None
    if ours:
        fmt = "ours"
    sd = {k: v for k, v in sd.items() if not k.endswith("attention_bias_idxs")}
    own = model.state_dict()
    allowed = (*allow_keys, *_structural_keys(model))
    report = LoadReport(fmt, allow_keys=list(allowed), meta=meta)
    no_classifier = getattr(model, "head", None) is not None and getattr(model, "num_classes", None) == 0
    for key in list(sd):
        if key.startswith("head.fc.") and no_classifier and key not in own:
            report.skipped_keys.append(key)  # a classifier of 0 classes: the pooled features are the output
            del sd[key]
            continue
        if key not in own or key.endswith("attention_biases"):
            continue  # unexpected keys are reported by load_state_dict; bias tables resize on load
        skip_classifier_or_refuse(sd, own, key, report, where, f"TinyViT {getattr(model, 'arch', '')!r}", "head.fc.")
    load_and_report(model, sd, report, where, strict=strict, allowed=allowed)
    if logger is not None:
        logger.info(str(report))
    else:
        from mmengine.logging import print_log
        print_log(f"{where}: {report}", logger="current")
    return report
