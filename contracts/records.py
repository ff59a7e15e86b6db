"""Contract 3 — the result record: one JSON file per measured result, validated when it is written.

    {"task": "linear_probe", "dataset": "cifar100", "split": "test",
     "backbone": {"name": "tinyvit-21m", "source": "distill", "pretrain": "in21k-distill",
                  "checkpoint_sha256": "..."},
     "metrics": {"top1": 0.862, "ci95": 0.004},
     "setting": {...}, "config_sha256": "...", "git_commit": "...", "machine": "...", "date": "..."}

- `task` is a key of `TASKS`; each task fixes its metric names and their units (`UNITS`). Accuracies and
  APs are fractions in [0, 1] (tables print percent); a value that is undefined (mmdet's -1 for an empty area
  range) is `null`; diagnostics (`best_c`, `fit_s`, ...) are marked so tables keep them apart.
- `backbone` (for tasks that measure one; `None` for the others): `source` is one of `SOURCES`,
  `checkpoint_sha256` is required unless the source is `random`, `pretrain` names what the weights were
  pretrained on / with (`PRETRAIN_PATTERN`: `none` for random weights, `in1k`, `in21k`, `in21k-distill`, `mae`,
  `dmae`, `tinymim`, `fashion_mnist-seen-distill`, ... or `unknown` when a third-party file does not say).
  `checkpoint_sha256` is the sha256 of the weights file (64 hex digits). Extra keys are free (`checkpoint`,
  `load_report`, `init_seed`, ...).
- `write_record` refuses a record that breaks the schema with a `RecordError` naming the field; `read_records`
  refuses a bad file naming the file and the field. Documented for users in docs/records.md.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from .fileio import atomic_write_text
from .provenance import REPO_ROOT, config_sha256, git_commit, machine_description

DEFAULT_RESULTS_DIR = REPO_ROOT / "results" / "records"
SOURCES = ("random", "distill", "scratch", "finetune", "timm", "official", "mmpretrain", "torchvision", "checkpoint")
PRETRAIN_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")
REQUIRED = ("task", "dataset", "split", "backbone", "metrics", "setting", "config_sha256", "git_commit",
            "machine", "date")
# unit → check of one value
UNITS = {
    "fraction": lambda v: _real(v) and 0.0 <= v <= 1.0,
    "number": lambda v: _real(v) and math.isfinite(v),
    "count": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
    "fraction_map": lambda v: isinstance(v, Mapping) and all(
        _real(x) and (0.0 <= x <= 1.0 or math.isnan(x)) for x in v.values()),
    "series": lambda v: isinstance(v, list),
}
UNIT_HINTS = {"fraction": "a fraction in [0, 1] (records hold 0.862, not 86.2; tables print percent)",
              "number": "a finite number", "count": "a non-negative integer",
              "fraction_map": "a mapping of names to fractions in [0, 1] (NaN allowed)", "series": "a list"}


def _real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class RecordError(ValueError):
    """A record that breaks the schema; the message names the field."""


@dataclass(frozen=True)
class Metric:
    """A metric's unit (a key of `UNITS`; `number` with a suffix naming the physical unit: `_s`, `_img_s`, ...)
    and whether it is a diagnostic (kept out of the main tables)."""

    unit: str
    diagnostic: bool = False


def _m(unit: str, *names: str, diagnostic: bool = False) -> dict[str, Metric]:
    return {n: Metric(unit, diagnostic) for n in names}


COCO = ("ap", "ap50", "ap75", "ap_s", "ap_m", "ap_l")


@dataclass(frozen=True)
class TaskSchema:
    """What a task's records carry: metric names → `Metric`, and whether a backbone is measured."""

    metrics: Mapping[str, Metric]
    has_backbone: bool = True
    required: tuple[str, ...] = field(default=())


TASKS: dict[str, TaskSchema] = {
    "linear_probe": TaskSchema({**_m("fraction", "top1", "ci95"), **_m("fraction", "val_top1", diagnostic=True),
                                **_m("number", "best_c", "best_lr", "fit_s", "lr", diagnostic=True),
                                **_m("count", "epochs", "steps", diagnostic=True)}, required=("top1",)),
    "few_shot": TaskSchema(_m("fraction", "top1", "ci95"), required=("top1", "ci95")),
    "finetune": TaskSchema({**_m("fraction", "top1", "top5", "ci95"), **_m("number", "loss", diagnostic=True)},
                           required=("top1",)),
    "detection": TaskSchema({**_m("fraction", *(f"{k}_{c}" for k in ("bbox", "segm") for c in COCO)),
                             **_m("series", "curve", diagnostic=True)}, required=("bbox_ap",)),
    "segmentation": TaskSchema({**_m("fraction", "miou", "macc", "aacc"),
                                **_m("fraction_map", "iou_per_class", diagnostic=True),
                                **_m("series", "curve", diagnostic=True)}, required=("miou",)),
    "distill": TaskSchema({**_m("fraction", "top1", "top5", "teacher_agreement_top1", "teacher_top1_in_student_top5",
                                "teacher_majority_baseline"), **_m("number", "loss", diagnostic=True)}),
    "throughput": TaskSchema(_m("number", "params_m", "macs_g", "ours_img_s", "ours_plain_img_s", "gain_optimize",
                                "timm_img_s", "speedup_vs_timm",
                                "timm_tuned_sdpa_img_s", "timm_tuned_matmul_img_s", "timm_tuned_img_s",
                                "speedup_vs_timm_tuned", "timm_best_img_s", "speedup_vs_timm_best",
                                "ours_compiled_img_s", "timm_compiled_img_s", "speedup_compiled", "ort_img_s",
                                "ort_over_ours", "ablation_base_img_s", "gain_channels_last", "gain_fuse_bn",
                                "gain_attention", "gain_onednn", "gain_pointwise_gemm", "gain_half_norm",
                                "gain_compile")),
    "inference_profile": TaskSchema({**_m("number", "ours_s", "timm_best_s", "profile_speedup", "ours_kernels_s",
                                          "timm_best_kernels_s", "bound_speedup_kernels", "bound_speedup_no_overhead"),
                                     **_m("fraction_map", "ours_split", "timm_best_split", diagnostic=True)}),
    "store": TaskSchema(_m("number", "bytes_per_sample", "official_bytes", "ratio_vs_official", "storage_GiB",
                           "kl_fp16_vs_compact", "kl_dense_vs_fp16", "read_per_s", "write_per_s", "read_vs_fp16",
                           "first_read_check_s", "sha256_MB_s", "crc32_MB_s"),
                        has_backbone=False),
    "replay": TaskSchema(_m("number", "seeded_s_per_img", "plain_s_per_img", "seeded_over_plain"),
                         has_backbone=False),
    "distill_speed": TaskSchema(_m("number", "scratch_step_s", "stored_step_s", "online_step_s",
                                   "stored_over_scratch", "online_over_stored", "teacher_over_student_flops",
                                   "scratch_img_s", "stored_img_s", "online_img_s", "scratch_bound_img_s",
                                   "stored_bound_img_s", "online_bound_img_s", "scratch_of_bound", "stored_of_bound",
                                   "online_of_bound", "data_img_s", "teacher_img_s", "save_logits_img_s",
                                   "save_logits_of_teacher")),
    "vit_objective_speed": TaskSchema(_m("number", "mae_step_s", "dmae_step_s", "tinymim_step_s", "dmae_over_mae",
                                         "tinymim_over_mae", "mae_peak_mb", "dmae_peak_mb", "tinymim_peak_mb",
                                         "dmae_all_layers_peak_mb")),
    "probe_speed": TaskSchema(_m("number", "images_per_s"), required=("images_per_s",)),
    "probe_fit": TaskSchema({**_m("number", "fit_s"), **_m("fraction", "top1", diagnostic=True)},
                            has_backbone=False, required=("fit_s",)),
    "iteration_time": TaskSchema(_m("number", "tinyvit_21m_s_per_iter", "swin_t_s_per_iter",
                                    "ratio_tinyvit21m_over_swint", "train_s_per_iter", "infer_s_per_iter",
                                    "swin_t_train_s_per_iter", "swin_t_infer_s_per_iter", "train_speedup_vs_swin_t",
                                    "infer_speedup_vs_swin_t", "backbone_params_m", "swin_t_backbone_params_m")),
}


def backbone_block(name: str, source: str, *, pretrain: str | None = None, checkpoint_sha256: str | None = None,
                   **extra: Any) -> dict[str, Any]:
    """The `backbone` field: random weights get `pretrain='none'`; anything else must say its pretraining."""
    if pretrain is None and source == "random":
        pretrain = "none"
    return {"name": name, "source": source, "pretrain": pretrain, "checkpoint_sha256": checkpoint_sha256, **extra}


def validate_record(record: Mapping[str, Any]) -> None:
    """Raise `RecordError` naming the first field that breaks the schema (see the module doc)."""
    if not isinstance(record, Mapping):
        raise RecordError(f"record: must be a JSON object, got {type(record).__name__}")
    missing = [k for k in REQUIRED if k not in record]
    if missing:
        raise RecordError(f"record lacks {missing}")
    task = record["task"]
    if task not in TASKS:
        raise RecordError(f"task: unknown {task!r}; known: {sorted(TASKS)}")
    schema = TASKS[task]
    for key in ("dataset", "split"):
        if not isinstance(record[key], str) or not record[key]:
            raise RecordError(f"{key}: must be a non-empty string, got {record[key]!r}")
    _validate_backbone(record["backbone"], schema, task)
    metrics = record["metrics"]
    if not isinstance(metrics, Mapping):
        raise RecordError(f"metrics: must be a mapping, got {type(metrics).__name__}")
    for name, value in metrics.items():
        if name not in schema.metrics:
            raise RecordError(f"metrics.{name}: not a {task} metric; allowed: {sorted(schema.metrics)}")
        unit = schema.metrics[name].unit
        if value is not None and not UNITS[unit](value):
            raise RecordError(f"metrics.{name}: {value!r} is not {UNIT_HINTS[unit]}")
    if not any(value is not None for value in metrics.values()):
        raise RecordError(f"metrics: a {task} record must carry at least one measured value")
    lacking = [name for name in schema.required if metrics.get(name) is None]
    if lacking:
        raise RecordError(f"metrics: {task} record lacks {lacking}")
    if not isinstance(record["setting"], Mapping):
        raise RecordError("setting: must be a mapping")


def _validate_backbone(backbone: Any, schema: TaskSchema, task: str) -> None:
    if not schema.has_backbone:
        if backbone is not None:
            raise RecordError(f"backbone: a {task} record measures no backbone; pass None")
        return
    if not isinstance(backbone, Mapping) or not backbone.get("name"):
        raise RecordError(f"backbone: needs at least a 'name', got {backbone!r}")
    source = backbone.get("source")
    if source not in SOURCES:
        raise RecordError(f"backbone.source: {source!r} is not one of {SOURCES}")
    sha = backbone.get("checkpoint_sha256")
    if source != "random" and not sha:
        raise RecordError(f"backbone.checkpoint_sha256: required when backbone.source is {source!r}")
    if sha is not None and not (isinstance(sha, str) and SHA256_PATTERN.match(sha)):
        raise RecordError(f"backbone.checkpoint_sha256: {sha!r} is not a full sha256 (64 lower-case hex digits)")
    pretrain = backbone.get("pretrain")
    if not isinstance(pretrain, str) or not PRETRAIN_PATTERN.match(pretrain):
        raise RecordError(f"backbone.pretrain: {pretrain!r} must be a lower-case name such as 'in21k-distill', "
                          "'none' (random weights) or 'unknown'")
    if source == "random" and pretrain != "none":
        raise RecordError(f"backbone.pretrain: random weights have pretrain 'none', got {pretrain!r}")


def make_record(task: str, *, dataset: str, metrics: Mapping[str, Any], backbone: Mapping[str, Any] | None,
                split: str = "test", setting: Mapping[str, Any] | None = None, config: Any = None) -> dict:
    """A complete, validated record dict (see the module doc)."""
    record = {
        "task": task, "dataset": dataset, "split": split,
        "backbone": dict(backbone) if backbone is not None else None,
        "metrics": dict(metrics), "setting": dict(setting or {}),
        "config_sha256": config_sha256(config if config is not None else dict(setting or {})),
        "git_commit": git_commit(), "machine": machine_description(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    validate_record(record)
    return record


def write_record(record: Mapping[str, Any], results_dir: str | Path | None = None) -> Path:
    """Validate, then write atomically as `<task>__<dataset>__<backbone>__<hash>.json`; returns the path.

    The hash covers task, dataset, split, backbone and setting, so re-measuring the same thing replaces it.
    """
    validate_record(record)
    results_dir = Path(results_dir) if results_dir is not None else DEFAULT_RESULTS_DIR
    backbone_name = (record["backbone"] or {}).get("name", "none")
    ident = json.dumps([record["task"], record["dataset"], record["split"], record["backbone"],
                        record["setting"]], sort_keys=True, default=str)
    name = "__".join(str(x).replace("/", "-").replace(" ", "") for x in (
        record["task"], record["dataset"], backbone_name)) + f"__{hashlib.sha1(ident.encode()).hexdigest()[:10]}.json"
    return atomic_write_text(results_dir / name, json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")


def read_records(results_dir: str | Path | None = None, tasks: Iterable[str] | None = None) -> list[dict]:
    """All records under a directory (recursively), optionally only some tasks; a bad file raises with its name."""
    results_dir = Path(results_dir) if results_dir is not None else DEFAULT_RESULTS_DIR
    wanted = set(tasks) if tasks is not None else None
    records = []
    for path in sorted(results_dir.rglob("*.json")):
        try:
            rec = json.loads(path.read_text())
            validate_record(rec)
        except json.JSONDecodeError as err:
            raise RecordError(f"{path}: not valid JSON ({err})") from err
        except RecordError as err:
            raise RecordError(f"{path}: {err}") from err
        if wanted is None or rec["task"] in wanted:
            rec["_path"] = str(path)
            records.append(rec)
    return records
