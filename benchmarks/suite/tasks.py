"""The task types a suite spec may name: which existing CLI runs a cell, which spec keys become which flags, and
what the cell leaves behind (result records, or for a pretraining stage a product file).

| type | command | one cell per | product |
|---|---|---|---|
| linear_probe | `python -m transfer.linear_probe` | mode (`modes`) | `linear_probe` records |
| few_shot | `python -m transfer.few_shot` | shot count (`shots`) | `few_shot` records |
| finetune | `python -m transfer.finetune` | — | a `finetune` record |
| detection | `python -m transfer.detection.train` | — | a `detection` record |
| segmentation | `python -m transfer.segmentation.train` | — | a `segmentation` record |
| distill | `python -m distill_pretrain.train` | — | `checkpoint.pth` in the cell's work dir |
| save_logits | `python -m distill_pretrain.save_logits` | — | the store (`store/manifest.json`) |

Every cell of every type also gets the seed (`--seed`, or the stage's seed key), the cell's records folder and
its own work folder. The runner adds nothing else: the numbers come from the CLIs alone.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

# data set keys every task type reads (others are per type, `TaskType.dataset_flags`)
PROBE_DATASET_FLAGS = {"type": "--dataset", "root": "--data-root", "classes": "--classes", "subset": "--subset",
                       "record_name": "--record-dataset"}
PROBE_BACKBONE_FLAGS = {"spec": "--backbone", "checkpoint": "--checkpoint", "pretrain": "--pretrain",
                        "window_sizes": "--window-sizes", "allow_keys": "--allow-keys",
                        "allow_pickle": "--allow-pickle"}
DENSE_BACKBONE_FLAGS = {"checkpoint": "--pretrained", "pretrain": "--pretrain"}


@dataclass(frozen=True)
class TaskType:
    """One kind of cell. `flags`: task key → CLI flag (the value, or each item of a list, follows it); `axis`:
    (task key listing one value per cell, its flag); `record_task`: the task its records carry (None: a stage,
    whose product is `product` under the cell's work folder); `stage_options`: how a stage is told its seed and
    outputs (config keys set with --cfg-options)."""

    name: str
    module: str
    record_task: str | None
    flags: Mapping[str, str]
    dataset_flags: Mapping[str, str] = field(default_factory=dict)
    backbone_flags: Mapping[str, str] = field(default_factory=dict)
    axis: tuple[str, str] | None = None
    config_required: bool = False
    product: str | None = None
    seed_option: str | None = None  # a stage's seed: this config key (else --seed)
    cache: bool = False  # takes --cache-dir (the shared feature cache)

    @property
    def uses_backbone(self) -> bool:
        return bool(self.backbone_flags)

    @property
    def uses_dataset(self) -> bool:
        return bool(self.dataset_flags)

    @property
    def keys(self) -> set[str]:
        """Every key a task of this type may set."""
        return {"type", "datasets", "backbones", "config", "options", *self.flags,
                *([self.axis[0]] if self.axis else [])}


TASK_TYPES: dict[str, TaskType] = {t.name: t for t in (
    TaskType("linear_probe", "transfer.linear_probe", "linear_probe",
             {"resolution": "--resolution", "max_train": "--max-train", "max_test": "--max-test",
              "batch_size": "--batch-size", "num_workers": "--num-workers", "epochs": "--epochs",
              "head_epochs": "--head-epochs"},
             PROBE_DATASET_FLAGS, PROBE_BACKBONE_FLAGS, axis=("modes", "--mode"), cache=True),
    TaskType("few_shot", "transfer.few_shot", "few_shot",
             {"resolution": "--resolution", "n_way": "--n-way", "n_query": "--n-query", "n_episodes": "--n-episodes",
              "max_images": "--max-images", "batch_size": "--batch-size", "num_workers": "--num-workers"},
             PROBE_DATASET_FLAGS, PROBE_BACKBONE_FLAGS, axis=("shots", "--shots"), cache=True),
    TaskType("finetune", "transfer.finetune", "finetune",
             {"resolution": "--resolution", "epochs": "--epochs", "lr": "--lr", "layer_decay": "--layer-decay",
              "batch_size": "--batch-size", "num_workers": "--num-workers", "max_train": "--max-train",
              "max_test": "--max-test"},
             {"type": "--dataset", "root": "--data-root", "classes": "--classes"},
             {k: v for k, v in PROBE_BACKBONE_FLAGS.items() if k not in ("window_sizes", "allow_pickle")}),
    TaskType("detection", "transfer.detection.train", "detection", {},
             {"ann_file": "--data", "img_dir": ""},  # --data ANN IMG_DIR: the folder follows the json
             DENSE_BACKBONE_FLAGS, config_required=True),
    TaskType("segmentation", "transfer.segmentation.train", "segmentation", {},
             {"root": "--data"}, DENSE_BACKBONE_FLAGS, config_required=True),
    TaskType("distill", "distill_pretrain.train", None, {}, config_required=True, product="checkpoint.pth",
             seed_option="seed"),
    TaskType("save_logits", "distill_pretrain.save_logits", None, {}, config_required=True,
             product="store/manifest.json", seed_option="base_seed"),
)}


def option_args(options: Mapping[str, Any], prefix: str = "") -> list[str]:
    """A dict of config overrides → `key=value` strings for --cfg-options (nested dicts as dotted keys; lists and
    tuples in MMEngine's DictAction syntax)."""
    out = []
    for key, value in options.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out += option_args(value, f"{name}.")
        else:
            out.append(f"{name}={_literal(value)}")
    return out


def _literal(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        inner = ",".join(_literal(v) for v in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner}{',' if len(value) == 1 else ''})"
    return str(value)


def _values(flag: str, value: Any) -> list[str]:
    if value is None or value is False:
        return []
    if value is True:
        return [flag]
    items = [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]
    return [flag, *items] if flag else items


def cell_arguments(kind: TaskType, *, config: str | None, settings: Mapping[str, Any], variant: Any,
                   dataset: Mapping[str, Any] | None, backbone: Mapping[str, Any] | None, seed: int,
                   records: Path, work: Path, shared: Path) -> list[str]:
    """The CLI arguments of one cell (after `python -m <module>`). `shared`: the folder of what cells share (the
    feature cache, few-shot episodes); `work`: the cell's own folder (the trainers resume from it: `--resume`
    starts afresh when a killed attempt left nothing)."""
    args = [config] if config else []
    for key, flag in kind.backbone_flags.items():
        args += _values(flag, (backbone or {}).get(key))
    for key, flag in kind.dataset_flags.items():
        args += _values(flag, (dataset or {}).get(key))
    if kind.axis:
        args += _values(kind.axis[1], variant)
    for key, flag in kind.flags.items():
        args += _values(flag, settings.get(key))
    options = dict(settings.get("options") or {})
    if kind.backbone_flags is DENSE_BACKBONE_FLAGS and backbone is not None and not backbone.get("checkpoint"):
        options["model.backbone.init_cfg"] = None  # random weights, not the config's pretrained file
    if kind.record_task is None:  # a stage: seed and outputs through its config keys
        options[kind.seed_option] = seed
        if kind.name == "save_logits":
            options["store.path"] = str(work / "store")
        else:
            args += ["--work-dir", str(work), "--resume"]
    else:
        args += ["--seed", str(seed), "--results-dir", str(records)]
        if kind.cache:
            args += ["--cache-dir", str(shared / "features")]
        if kind.name == "few_shot":
            args += ["--episodes-dir", str(shared / "episodes")]
        if kind.name in ("finetune", "detection", "segmentation"):
            args += ["--work-dir", str(work)]
        if kind.name == "finetune":
            args += ["--resume"]
    if options:
        args += ["--cfg-options", *option_args(options)]
    return args
