"""Config loading for the dense harness, and the checks that name a bad key, path or checkpoint before training."""
from __future__ import annotations

import inspect
import os.path as osp
from pathlib import Path
from typing import Any, Iterator

import torch
from mmengine.config import Config, ConfigDict

from .hooks import SCOPE

PLAIN_CHECKPOINT_HOOK = f"{SCOPE}.PlainCheckpointHook"
HISTORY_HOOK = f"{SCOPE}.MetricHistoryHook"
STOCK_CHECKPOINT_HOOKS = ("CheckpointHook", "mmengine.CheckpointHook")
MODEL_PARTS = ("backbone", "neck", "decode_head", "auxiliary_head")


def load_config(config: str | Path, cfg_options: dict | None = None, work_dir: str | None = None) -> Config:
    """Read CONFIG, apply --cfg-options, and set work_dir (default ./work_dirs/<config name>)."""
    if not Path(config).is_file():
        raise FileNotFoundError(f"config file {config} does not exist")
    cfg = Config.fromfile(str(config))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get("work_dir") is None:
        cfg.work_dir = osp.join("work_dirs", Path(config).stem)
    cfg.setdefault("config_name", Path(config).stem)
    return cfg


def leaf_datasets(dataset: dict) -> Iterator[dict]:
    """The dataset configs inside a dataset config (through Repeat/ClassBalanced/Concat wrappers)."""
    if "datasets" in dataset:
        for inner in dataset["datasets"]:
            yield from leaf_datasets(inner)
    elif "dataset" in dataset:
        yield from leaf_datasets(dataset["dataset"])
    else:
        yield dataset


def use_harness_hooks(cfg: Config, task: str) -> None:
    """The stock checkpoint hook becomes the plain one (same arguments); the metric history hook is added once."""
    hooks = cfg.setdefault("default_hooks", ConfigDict())
    checkpoint = hooks.get("checkpoint")
    if checkpoint is None:
        hooks.checkpoint = ConfigDict(type=PLAIN_CHECKPOINT_HOOK)
    elif checkpoint.get("type") in STOCK_CHECKPOINT_HOOKS:
        checkpoint.type = PLAIN_CHECKPOINT_HOOK
    custom = list(cfg.get("custom_hooks") or [])
    if not any(str(h.get("type")).endswith("MetricHistoryHook") for h in custom):
        custom.append(ConfigDict(type=HISTORY_HOOK, task=task))
    cfg.custom_hooks = custom


def _parts(model: dict) -> Iterator[tuple[str, dict]]:
    for key in MODEL_PARTS:
        part = model.get(key)
        for i, item in enumerate(part if isinstance(part, list) else [part] if part else []):
            yield (f"model.{key}" + (f".{i}" if isinstance(part, list) else ""), item)


def _accepted_keys(cls: type) -> set[str] | None:
    """The keyword arguments a class takes: its own, and its bases' while `**kwargs` passes them up the MRO; None
    when the chain ends in `**kwargs` that goes nowhere we can read."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" not in klass.__dict__ or klass is object:
            continue
        params = inspect.signature(klass.__dict__["__init__"]).parameters.values()
        names |= {p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return names - {"self"}
    return None


def check_model_keys(cfg: Config, scope: str) -> None:
    """Every backbone / neck / head type is registered and every key of it is an argument of its class.

    Raises `KeyError` naming the config key (e.g. `model.backbone.archh`) and the accepted ones.
    """
    from mmengine.registry import MODELS

    with MODELS.switch_scope_and_registry(scope) as registry:
        for where, part in _parts(cfg.model):
            kind = part.get("type")
            cls = registry.get(kind) if isinstance(kind, str) else kind
            if cls is None:
                raise KeyError(f"{where}.type: {kind!r} is not registered in {scope}'s MODELS")
            accepted = _accepted_keys(cls)
            unknown = sorted(set(part) - (accepted or set()) - {"type", "_delete_"}) if accepted is not None else []
            if unknown:
                raise KeyError(f"{where}.{unknown[0]}: {cls.__name__} has no argument {unknown[0]!r} "
                               f"(unknown: {unknown}; known: {sorted(accepted)})")


def backbone_checkpoint(cfg: Config) -> str | None:
    """The local file `model.backbone.init_cfg` loads (None when the backbone starts from random weights)."""
    init_cfg = cfg.model.get("backbone", {}).get("init_cfg")
    if isinstance(init_cfg, dict) and init_cfg.get("type") == "Pretrained":
        return str(init_cfg.get("checkpoint", ""))
    return None


def check_backbone_checkpoint(cfg: Config, scope: str) -> None:
    """The backbone checkpoint exists and loads into the configured backbone (built alone, on CPU), or this raises
    naming `model.backbone.init_cfg.checkpoint` and the cause (missing file, wrong format, mismatched shapes)."""
    path = backbone_checkpoint(cfg)
    if path is None:
        return
    if "://" in path or not Path(path).is_file():
        raise FileNotFoundError(
            f"backbone checkpoint {path!r} (model.backbone.init_cfg.checkpoint) does not exist: pass "
            "--pretrained PATH (or --cfg-options model.backbone.init_cfg.checkpoint=PATH), or "
            "--cfg-options model.backbone.init_cfg=None to train the backbone from scratch")
    from mmengine.registry import MODELS

    with MODELS.switch_scope_and_registry(scope) as registry:
        backbone = registry.build(cfg.model.backbone)
    try:
        backbone.init_weights()
    except (ValueError, KeyError, RuntimeError, OSError) as err:
        raise ValueError(f"model.backbone.init_cfg.checkpoint {path}: does not fit the configured "
                         f"{type(backbone).__name__}: {err}") from None


def check_checkpoint_matches(model: torch.nn.Module, path: str, what: str) -> dict[str, Any]:
    """Read a whole-model checkpoint (weights_only) and check that its weights are the model's: same names and
    shapes. Raises `ValueError` naming the file and the first differences; returns the checkpoint's `meta`."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{what} checkpoint {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises several kinds; the cause is named
        raise ValueError(f"{what} checkpoint {path}: cannot be read ({type(err).__name__}: "
                         f"{str(err).splitlines()[0][:200]})") from None
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f"{what} checkpoint {path}: not a state dict")
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or shapes:
        detail = "; ".join(f"{label} {keys[:3]}{' …' if len(keys) > 3 else ''} ({len(keys)})" for label, keys in
                           (("missing", missing), ("unexpected", unexpected), ("shape differs", shapes)) if keys)
        raise ValueError(f"{what} checkpoint {path} does not match the configured {type(model).__name__}: {detail}")
    return obj.get("meta") or {}
