"""The student trainer's config: every key it reads with its default, resolution and validation.

The objective (what the student learns from) is a registered `distill_pretrain.objectives.Objective`:
`objective=dict(type='stored'|'online'|'scratch'|'finetune'|..., **its arguments)`. `mode=NAME` is the short
form of `objective.type=NAME` and wins over it, so `--cfg-options mode=scratch` switches a recipe's objective.

`pretrain_name` goes into the checkpoint's meta (and from there into every result record made with it); when unset
it is derived from the objective and the training set (`<dataset>-distill` for stored/online, `<dataset>` for
scratch, `<dataset>-<objective>` otherwise, `<init's pretrain>-ft-<dataset>` for finetune), `<dataset>` being
`data.train.type` in lower case (`fashionmnist`, `imagefolder`): recipes on real data sets set it (`in21k-distill`,
`in1k`, `in21k-distill-ft-in1k`, ...).

`data.pipeline`: the replay pipeline (`distill_pretrain.replay.PIPELINES`: 'pil' | 'tensor'); None = the store's
own in stored mode, 'pil' otherwise. A store made by another pipeline is refused unless
`store.approximate_replay=True` (same augmentation parameters, not the teacher's pixels). `data.on_error`
('stop' | 'skip', None = `data.train`'s own, default 'stop'): an unreadable training image stops the run naming
the file, or is left out of its batch and counted in the logs.

`device`: `'auto'` (CUDA when available, else the CPU), `'cpu'`, `'cuda'` or `'cuda:N'`. `amp` with
`amp_dtype='float16'` (GradScaler) runs on CUDA only; `'bfloat16'` (no GradScaler) also on the CPU.

`cudnn_benchmark`: on a CUDA device, cuDNN autotuning (`contracts.runtime.cudnn_autotune`; on by default, as in
timm's `train.py` and MMEngine's `env_cfg`: the student's shapes are fixed); logged with the device.

`optim.fused`: AdamW's fused kernel (`True`), its multi-tensor `foreach` one (`False`), or `'auto'` (fused when the
parameters are all on CUDA, where GradScaler then skips its `found_inf` read, or all on the CPU).
`compile`: `None`/`False` (eager) or a `torch.compile` mode (`COMPILE_MODES`: `'default'`, `'reduce-overhead'` =
CUDA graphs, `'max-autotune'`, ...) for the student step (student + objective forward, loss included; under DDP
the DDP-wrapped module, as PyTorch advises).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

from mmengine.config import Config

# Every key the trainer reads, with its default; a config key outside these is refused (typo guard).
DEFAULTS: dict[str, Any] = dict(
    mode=None, objective=None, seed=0, epochs=1, num_classes=None, pretrain_name=None, device="auto",
    student=dict(type="TinyViT", arch="5m", img_size=224, window_sizes=None, drop_path_rate=0.0, init=None,
                 norm_eval=False),
    teacher=None,
    store=dict(path=None, expect=None, cycle_epochs=False, approximate_replay=False),
    data=dict(train=None, val=None, batch_size=128, num_workers=4, prefetch_factor=4, aug=None, aug_seed=0,
              pipeline=None, on_error=None),
    optim=dict(lr=1e-3, base_batch=1024, weight_decay=0.05, betas=(0.9, 0.999), eps=1e-8, warmup_epochs=0,
               warmup_lr=0.0, min_lr=0.0, clip_grad=5.0, accum_steps=1, layer_decay=None, fused="auto"),
    ema=dict(decay=None), freeze_bn_stats=False, amp=True, amp_dtype="float16", compile=None, cudnn_benchmark=True,
    labels_index_classes=True, log_interval=10, save_interval=0, keep_interval=0, eval_interval=1,
    eval_teacher_agreement=False,
    eval_before_train=False,
    max_steps_per_epoch=None, stop_after_steps=None, work_dir=None, record=True,
)
SECTIONS = ("student", "store", "data", "optim", "ema")
AMP_DTYPES = ("float16", "bfloat16")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
FUSED = ("auto", True, False)
_MOVED = {"loss": "the loss arguments moved into the objective: objective=dict(type=..., temperature=..., "
                  "gt_weight=..., label_smoothing=...)"}
_PRETRAIN = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


def resolve_config(cfg: Config | Mapping[str, Any]) -> Config:
    """Fill defaults and check keys / values, raising with the offending key."""
    from .data import ON_ERROR
    from .objectives import check_objective_cfg
    from .replay import PIPELINES
    cfg = Config(dict(cfg.to_dict() if isinstance(cfg, Config) else cfg))
    for key, hint in _MOVED.items():
        if key in cfg:
            raise KeyError(f"config: '{key}' is no longer a key; {hint}")
    allowed_top = set(DEFAULTS) | {"_base_", "custom_imports", "filename"}
    unknown = sorted(k for k in cfg.keys() if k not in allowed_top)
    if unknown:
        raise KeyError(f"config: unknown top-level keys {unknown}; known: {sorted(DEFAULTS)}")
    for key, value in DEFAULTS.items():
        if key not in cfg:
            cfg[key] = value
        elif key in SECTIONS:
            section = dict(value)
            extra = set(cfg[key]) - set(section)
            if extra and key != "student":  # student: the rest goes to the model's constructor
                raise KeyError(f"config: unknown keys {sorted(extra)} in '{key}'; known: {sorted(section)}")
            section.update(cfg[key])
            cfg[key] = section
    objective = dict(cfg.objective or {})
    if cfg.mode is not None:
        objective["type"] = cfg.mode
    if "type" not in objective:
        raise ValueError("config: no objective; set objective=dict(type='stored'|'online'|'scratch'|'finetune', "
                         "...) or mode=NAME")
    cls = check_objective_cfg(objective)
    cfg.objective, cfg.mode = objective, objective["type"]
    if cls.needs_store and not cfg.store.path:
        raise ValueError(f"config: objective '{cfg.mode}' needs store.path (a directory written by "
                         "distill_pretrain.save_logits)")
    if cls.needs_teacher and not cfg.teacher:
        raise ValueError(f"config: objective '{cfg.mode}' needs a teacher (a dict for "
                         "distill_pretrain.teachers.build_teacher)")
    if cls.needs_init and not cfg.student.init:
        raise ValueError(f"config: objective '{cfg.mode}' needs student.init (the checkpoint to start from)")
    if cfg.mode == "scratch" and cfg.student.init:
        raise ValueError("config: objective 'scratch' trains from random weights but student.init is set; "
                         "use mode='finetune' to start from a checkpoint")
    if cfg.data.train is None:
        raise ValueError("config: data.train is required (a dict for distill_pretrain.data.build_dataset)")
    if cfg.optim.accum_steps < 1:
        raise ValueError(f"config: optim.accum_steps must be ≥ 1, got {cfg.optim.accum_steps}")
    if cfg.data.pipeline is not None and cfg.data.pipeline not in PIPELINES:
        raise ValueError(f"config: data.pipeline={cfg.data.pipeline!r}; choose one of {PIPELINES} (or None)")
    if cfg.data.on_error is not None and cfg.data.on_error not in ON_ERROR:
        raise ValueError(f"config: data.on_error={cfg.data.on_error!r}; choose one of {ON_ERROR} (or None)")
    if cfg.amp_dtype not in AMP_DTYPES:
        raise ValueError(f"config: amp_dtype={cfg.amp_dtype!r}; choose one of {AMP_DTYPES}")
    if cfg.compile not in (None, False, *COMPILE_MODES):
        raise ValueError(f"config: compile={cfg.compile!r}; choose None/False (eager) or one of {COMPILE_MODES}")
    if cfg.optim.fused not in FUSED:
        raise ValueError(f"config: optim.fused={cfg.optim.fused!r}; choose one of {FUSED}")
    if cfg.pretrain_name is not None and not _PRETRAIN.match(str(cfg.pretrain_name)):
        raise ValueError(f"config: pretrain_name={cfg.pretrain_name!r} must match {_PRETRAIN.pattern}")
    return cfg


def load_config(path: str | Path, options: Mapping[str, Any] | None = None) -> Config:
    """Read a config file (with `_base_`), apply `--cfg-options`, fill defaults."""
    cfg = Config.fromfile(str(path))
    if options:
        cfg.merge_from_dict(dict(options))
    return resolve_config(cfg)


def dataset_tag(train_cfg: Mapping[str, Any]) -> str:
    """The training set's short name for a derived `pretrain_name`: its type in lower case."""
    raw = str(train_cfg.get("type") or "data").lower()
    return re.sub(r"[^a-z0-9_.-]", "", raw) or "data"


def default_pretrain_name(cfg: Config, init_pretrain: str | None = None) -> str:
    """`cfg.pretrain_name`, or the name derived from the objective and the training set (see the module doc)."""
    if cfg.pretrain_name:
        return str(cfg.pretrain_name)
    data = dataset_tag(cfg.data.train)
    if cfg.mode in ("stored", "online"):
        return f"{data}-distill"
    if cfg.mode == "scratch":
        return data
    if cfg.mode == "finetune":
        return f"{init_pretrain or 'unknown'}-ft-{data}"
    return f"{data}-{cfg.mode}"
