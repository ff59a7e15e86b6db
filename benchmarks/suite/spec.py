"""A suite spec (an MMEngine Python config under configs/suites/) → its cells, every input checked up front.

    backbones = dict(LABEL=dict(spec='tinyvit-21m', checkpoint=NAME, pretrain=None, sha256=None,
                                window_sizes=None, allow_keys=None, allow_pickle=False))
    datasets = dict(LABEL=dict(type='cifar100', root='/data/cifar', classes=None, subset=None, record_name=None))
    tasks = dict(LABEL=dict(type='linear_probe', datasets=[...], backbones=[...], modes=['fast'], config=None,
                            options=dict(...), **flags of the type))      # benchmarks.suite.tasks.TASK_TYPES
    seeds = [0]                    # one cell per seed (default: the fixed seed 0)
    tables = ['tab5']              # benchmarks.table layouts printed at the end
    env = dict(OMP_NUM_THREADS='1')          # added to every cell's environment
    slurm = dict(max_retries=2, poll_s=10, default=dict(partition=None, time=60, cpus=1, gpus=0, mem='8G',
                 nodes=1, tasks=1), TYPE_OR_TASK_LABEL=dict(...))   # see benchmarks.suite.slurm

NAME (a backbone checkpoint) is a path, an official release name, a timm hub id or a URL (`contracts.weights`:
fetched once into a cache, sha256 computed and checked against `sha256` when given), `asset:<name>` (an offline
asset) or None (random initialisation from the cell's seed). A data set's `root` is a path or
`asset:fashion_mnist`; detection data sets give `ann_file` + `img_dir`, segmentation ones `root`, stages none.
A task's `datasets` / `backbones` name labels of the dicts above (`backbones` defaults to all of them).

A cell is (task, data set, backbone, the task's value on its axis — a probe mode, a shot count — seed); its
identity is what determines its numbers: the task's type and settings (a config file by its content), the data
set's type and selection, the backbone's spec and checkpoint sha256 (or random init), the seed. The cell's id is
readable labels plus a hash of that identity, so another checkpoint or setting is another cell.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from contracts.fileio import file_sha256

from .tasks import TASK_TYPES, TaskType

TOP_KEYS = {"backbones", "datasets", "tasks", "seeds", "tables", "env", "slurm"}
BACKBONE_KEYS = {"spec", "checkpoint", "pretrain", "sha256", "window_sizes", "allow_keys", "allow_pickle"}
DATASET_KEYS = {"type", "root", "classes", "subset", "record_name", "ann_file", "img_dir"}
DATA_ASSETS = ("fashion_mnist",)  # `root='asset:<name>'`


class SpecError(ValueError):
    """A spec that cannot run: every problem found, each naming the spec file and the key."""

    def __init__(self, path: str | Path, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__(f"{path}: {len(problems)} problem(s), nothing was run:\n  " + "\n  ".join(problems))


@dataclass(frozen=True)
class Cell:
    """One run of one CLI. `expect`: what its records must carry to count as this cell's (task, data set name when
    the CLI's naming is known, backbone checkpoint sha256 — None for random weights — and seed); `blocked`: why it
    cannot run (only in a dry run of a spec with problems)."""

    id: str
    task: str
    kind: str
    seed: int
    variant: Any
    identity: Mapping[str, Any]
    config: str | None
    settings: Mapping[str, Any]
    dataset: Mapping[str, Any] | None
    backbone: Mapping[str, Any] | None
    expect: Mapping[str, Any]
    blocked: str | None = None

    @property
    def type(self) -> TaskType:
        return TASK_TYPES[self.kind]


@dataclass
class Suite:
    """A loaded spec: its cells in spec order, and the settings that are not cells."""

    path: Path
    name: str
    cells: list[Cell]
    tables: list[str]
    env: dict[str, str]
    slurm: dict[str, Any]
    problems: list[str] = field(default_factory=list)


def load_suite(path: str | Path, cfg_options: Mapping[str, Any] | None = None, *, fetch: bool = True,
               strict: bool = True) -> Suite:
    """Read and check a spec and expand its cells. `fetch=False` reads weights from the cache only (a dry run);
    `strict=False` returns the problems with the cells instead of raising `SpecError` (the cells that cannot run
    are `blocked`)."""
    from mmengine.config import Config
    path = Path(path)
    if not path.is_file():
        raise SpecError(path, [f"no such spec file (looked at {path.resolve()})"])
    cfg = Config.fromfile(str(path))
    if cfg_options:
        cfg.merge_from_dict(dict(cfg_options))
    spec = cfg.to_dict()
    problems = [f"unknown top-level key {k!r}; known: {sorted(TOP_KEYS)}" for k in sorted(set(spec) - TOP_KEYS)]
    seeds = spec.get("seeds", [0])
    if not (isinstance(seeds, (list, tuple)) and seeds and all(isinstance(s, int) for s in seeds)):
        problems.append(f"seeds: a non-empty list of ints, got {seeds!r}")
        seeds = [0]
    tables = list(spec.get("tables") or [])
    backbones = {label: _Backbone(label, entry, fetch) for label, entry in (spec.get("backbones") or {}).items()}
    datasets = {label: _Dataset(label, entry) for label, entry in (spec.get("datasets") or {}).items()}
    cells: list[Cell] = []
    for label, task in (spec.get("tasks") or {}).items():
        task_cells, task_problems = _expand(label, task, seeds, backbones, datasets)
        cells += task_cells
        problems += task_problems
    if not cells and not problems:
        problems.append("tasks: no cell to run (no task, or tasks with empty data set / backbone lists)")
    problems += [p for backbone in backbones.values() for p in backbone.problems]
    problems += [p for dataset in datasets.values() for p in dataset.problems]
    problems += _duplicates(cells)
    if problems and strict:
        raise SpecError(path, problems)
    return Suite(path, path.stem, cells, tables, {k: str(v) for k, v in (spec.get("env") or {}).items()},
                 dict(spec.get("slurm") or {}), problems)


def check_suite(suite: Suite, *, strict: bool = True) -> list[str]:
    """The checks that need the libraries (timm, torchvision, the CLIs' data set tables, `benchmarks.table`):
    every backbone spec names a model, every data set type is one its CLI reads, every table layout exists.
    `load_suite` leaves them out so that a rerun with nothing to run stays fast; the runner makes them before
    any cell runs (a dry run always). Adds the problems to `suite.problems`; raises `SpecError` when `strict`."""
    from benchmarks.table import build_tables
    problems: list[str] = []
    checked: set[Any] = set()
    for cell in suite.cells:
        spec = cell.backbone.get("spec") if cell.backbone and cell.type.backbone_flags.get("spec") else None
        if spec is not None and ("spec", spec) not in checked:
            checked.add(("spec", spec))
            problem = _check_backbone_spec(spec)
            if problem:
                problems.append(f"backbones.{cell.backbone['label']}.spec: {problem}")
        if cell.dataset and (cell.kind, cell.dataset["label"]) not in checked:
            checked.add((cell.kind, cell.dataset["label"]))
            try:
                canonical_dataset(cell.kind, str(cell.dataset.get("type")))
            except ValueError as err:
                problems.append(f"datasets.{cell.dataset['label']}.type: {err} (task {cell.task})")
    try:
        build_tables([], suite.tables) if suite.tables else None
    except ValueError as err:
        problems.append(f"tables: {err}")
    suite.problems += problems
    if problems and strict:
        raise SpecError(suite.path, problems)
    return problems


class _Backbone:
    """A spec's backbone entry, its checkpoint resolved to a local file + sha256 once (problems collected)."""

    def __init__(self, label: str, entry: Any, fetch: bool) -> None:
        self.label, self.problems = label, []
        where = f"backbones.{label}"
        if not isinstance(entry, Mapping):
            entry = {"spec": entry}
        unknown = sorted(set(entry) - BACKBONE_KEYS)
        if unknown:
            self.problems.append(f"{where}: unknown key(s) {unknown}; known: {sorted(BACKBONE_KEYS)}")
        self.entry = {k: v for k, v in entry.items() if k in BACKBONE_KEYS}
        self.named = self.entry.get("checkpoint")
        self.path: str | None = None
        self.sha256: str | None = None
        self.blocked: str | None = None
        if self.named:
            try:
                self.path, self.sha256, pretrain = _resolve_checkpoint(str(self.named), self.entry.get("sha256"),
                                                                       fetch)
                self.entry.setdefault("pretrain", None)
                self.entry["pretrain"] = self.entry["pretrain"] or pretrain
            except (FileNotFoundError, ValueError) as err:
                self.blocked = f"{where}.checkpoint: {err}"
                self.problems.append(self.blocked)

    def resolved(self) -> dict[str, Any]:
        """The values the CLIs get (the checkpoint as its local file) plus the label and what named it."""
        out = {k: v for k, v in self.entry.items() if k != "sha256"}
        out.update(label=self.label, checkpoint=self.path, named=self.named, sha256=self.sha256)
        return out


def _resolve_checkpoint(name: str, pinned: str | None, fetch: bool) -> tuple[str, str, str | None]:
    if name.startswith("asset:"):  # contracts.assets' `<name>_weights()` accessors
        from contracts import assets
        accessor = getattr(assets, f"{name.split(':', 1)[1]}_weights", None)
        if accessor is None:
            raise ValueError(f"unknown asset checkpoint {name!r}; see contracts.assets")
        path = accessor()
        digest = file_sha256(path)
        if pinned and digest != pinned.lower():
            raise ValueError(f"{name} at {path}: sha256 {digest} is not the pinned {pinned}")
        return name, digest, None  # the CLIs resolve assets (and know their pretraining) themselves
    from contracts.weights import resolve_weights
    weights = resolve_weights(name, sha256=pinned, fetch=fetch)
    return os.path.abspath(weights.path), weights.sha256, weights.pretrain  # links kept (hub snapshots)


def _check_backbone_spec(spec: Any) -> str | None:
    """None when `spec` names a backbone `transfer.features.load_backbone` builds, else why not."""
    from transfer.features import TINYVIT_ARCHS, VIT_SIZES
    if not isinstance(spec, str) or not spec:
        return f"a backbone spec string is required, got {spec!r}"
    kind, _, name = spec.partition(":")
    if not name:
        if re.fullmatch(rf"tiny_?vit[-_]({'|'.join(TINYVIT_ARCHS)})", spec.lower()):
            return None
        if re.fullmatch(rf"vit-({'|'.join(VIT_SIZES)})(/patch\d+)?(@\d+)?", spec):
            return None
        return (f"unknown backbone {spec!r}; use tinyvit-{'|'.join(TINYVIT_ARCHS)}, "
                f"vit-{'|'.join(VIT_SIZES)}[/patchN][@SIZE], timm:<name> or torchvision:<name>")
    if kind == "timm":
        import timm
        return None if timm.is_model(name) else f"timm has no model {name!r}"
    if kind == "torchvision":
        import torchvision
        return None if name in torchvision.models.list_models() else f"torchvision has no model {name!r}"
    return f"unknown backbone kind {kind!r} in {spec!r}; use timm:<name> or torchvision:<name>"


class _Dataset:
    """A spec's data set entry with its root resolved (`asset:` names) and checked to exist."""

    def __init__(self, label: str, entry: Any) -> None:
        self.label, self.problems = label, []
        where = f"datasets.{label}"
        entry = dict(entry) if isinstance(entry, Mapping) else {}
        unknown = sorted(set(entry) - DATASET_KEYS)
        if unknown:
            self.problems.append(f"{where}: unknown key(s) {unknown}; known: {sorted(DATASET_KEYS)}")
        self.entry = {k: v for k, v in entry.items() if k in DATASET_KEYS}
        for key in ("root", "ann_file", "img_dir"):
            value = self.entry.get(key)
            if value is None:
                continue
            try:
                self.entry[key] = _data_path(str(value))
            except FileNotFoundError as err:
                self.problems.append(f"{where}.{key}: {err}")

    def resolved(self) -> dict[str, Any]:
        return {**self.entry, "label": self.label}


def _data_path(value: str) -> str:
    if value.startswith("asset:"):
        name = value.split(":", 1)[1]
        if name not in DATA_ASSETS:
            raise FileNotFoundError(f"unknown data asset {value!r}; known: {['asset:' + n for n in DATA_ASSETS]}")
        from contracts.assets import fashion_mnist_root
        return str(fashion_mnist_root())
    path = Path(os.path.abspath(Path(value).expanduser()))  # commands carry absolute paths: they run anywhere
    if not path.exists():
        raise FileNotFoundError(f"{value}: no such file or folder ({path})")
    return str(path)


def canonical_dataset(kind: str, name: str) -> str | None:
    """The name a task type's CLI gives data set type `name` in its records (None: the dense CLIs take it from the
    data files). Raises `ValueError` naming the known ones for a type the CLI does not read."""
    if kind == "few_shot":
        from transfer.few_shot.datasets import canonical_name
    elif kind in ("linear_probe", "finetune"):
        from transfer.linear_probe.datasets import canonical_name
    else:
        return None
    return canonical_name(name)


def _expand(label: str, task: Any, seeds: Sequence[int], backbones: Mapping[str, _Backbone],
            datasets: Mapping[str, _Dataset]) -> tuple[list[Cell], list[str]]:
    """The cells of one task entry, and the problems found in it."""
    where = f"tasks.{label}"
    if not isinstance(task, Mapping) or task.get("type") not in TASK_TYPES:
        got = task.get("type") if isinstance(task, Mapping) else task
        return [], [f"{where}.type: unknown task type {got!r}; known: {sorted(TASK_TYPES)}"]
    kind = TASK_TYPES[task["type"]]
    problems = [f"{where}: unknown key(s) {sorted(set(task) - kind.keys)} for type {kind.name!r}; known: "
                f"{sorted(kind.keys)}"] if set(task) - kind.keys else []
    config = os.path.abspath(Path(task["config"]).expanduser()) if task.get("config") else None
    config_sha = None
    if config:
        if Path(config).is_file():
            config_sha = file_sha256(config)
        else:
            problems.append(f"{where}.config: {task['config']}: no such file ({config})")
    elif kind.config_required:
        problems.append(f"{where}.config: a {kind.name} task needs its config file")
    variants: list[Any] = [None]
    if kind.axis:
        variants = list(task.get(kind.axis[0]) or [])
        if not variants:
            problems.append(f"{where}.{kind.axis[0]}: one value per cell is required (e.g. "
                            f"{['fast'] if kind.name == 'linear_probe' else [5, 20, 50]})")
    data_labels = _labels(where, "datasets", task.get("datasets"), datasets, kind.uses_dataset, problems,
                          every=False, optional=kind.config_required)
    model_labels = _labels(where, "backbones", task.get("backbones"), backbones, kind.uses_backbone, problems,
                           every=True, optional=False)
    settings = {k: v for k, v in task.items() if k in kind.flags or k == "options"}
    cells = []
    for data_label in data_labels:
        dataset = datasets[data_label].resolved() if data_label else None
        problems += [f"datasets.{data_label}: key {k!r} is not read by {kind.name} tasks ({where}); it reads "
                     f"{sorted(kind.dataset_flags)}" for k in sorted(set(dataset or {}) - set(kind.dataset_flags)
                                                                   - {"label", "type"})]
        record_dataset = None  # as the spec writes it; `cells.records_mismatch` compares canonical names
        if dataset and kind.record_task in ("linear_probe", "few_shot", "finetune"):
            record_dataset = dataset.get("record_name") or dataset.get("type")
        for model_label in model_labels:
            model = backbones[model_label] if model_label else None
            backbone = model.resolved() if model else None
            for variant in variants:
                for seed in seeds:
                    identity = _identity(kind, settings, config_sha, variant, dataset, backbone, seed)
                    cells.append(Cell(
                        id=_cell_id(label, data_label, model_label, variant, seed, identity), task=label,
                        kind=kind.name, seed=seed, variant=variant, identity=identity, config=config,
                        settings=settings, dataset=dataset, backbone=backbone,
                        expect={"task": kind.record_task, "dataset": record_dataset, "seed": seed,
                                "checkpoint_sha256": backbone["sha256"] if backbone else None},
                        blocked=model.blocked if model else None))
    return cells, problems


def _labels(where: str, key: str, value: Any, known: Mapping[str, Any], used: bool, problems: list[str], *,
            every: bool, optional: bool) -> list[str | None]:
    """The labels a task names under `key` (all known ones when `every` and not given); [None] for a type that
    reads none, or when none is given and they are `optional` (a dense task on its config's own data)."""
    if not used or (optional and value is None):
        if value and not used:
            problems.append(f"{where}.{key}: tasks of this type read no {key}")
        return [None]
    labels = list(known) if value is None and every else list(value or [])
    if not labels:
        problems.append(f"{where}.{key}: name at least one of {sorted(known)}")
    missing = [label for label in labels if label not in known]
    if missing:
        problems.append(f"{where}.{key}: unknown label(s) {missing}; the spec's {key}: {sorted(known)}")
    return [label for label in labels if label in known]


def _identity(kind: TaskType, settings: Mapping[str, Any], config_sha: str | None, variant: Any,
              dataset: Mapping[str, Any] | None, backbone: Mapping[str, Any] | None, seed: int) -> dict[str, Any]:
    data = None
    if dataset is not None:
        data = {k: v for k, v in dataset.items() if k not in ("root", "ann_file", "img_dir", "label")}
        for key in ("ann_file",):  # a dense data set is its annotations' content, wherever they lie
            if dataset.get(key) and Path(dataset[key]).is_file():
                data[f"{key}_sha256"] = file_sha256(dataset[key])
    model = None
    if backbone is not None:
        model = {k: backbone.get(k) for k in ("spec", "sha256", "pretrain", "window_sizes", "allow_keys")}
        if backbone.get("named") and not backbone.get("sha256"):  # not resolved (a dry run): told apart by name
            model["sha256"] = f"unresolved:{backbone['named']}"
        if not kind.backbone_flags.get("spec"):  # dense tasks: the config builds the model, the file is the backbone
            model.pop("spec")
    return {"type": kind.name, "settings": dict(settings), "config_sha256": config_sha, "variant": variant,
            "dataset": data, "backbone": model, "seed": seed}


def identity_key(identity: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


def _cell_id(task: str, data: str | None, model: str | None, variant: Any, seed: int,
             identity: Mapping[str, Any]) -> str:
    parts = [task, data, model, None if variant is None else (f"{variant}shot" if isinstance(variant, int)
                                                              else str(variant)), f"seed{seed}"]
    readable = "__".join(re.sub(r"[^A-Za-z0-9_.-]+", "-", str(p)) for p in parts if p is not None)
    return f"{readable}__{identity_key(identity)[:10]}"


def _duplicates(cells: Sequence[Cell]) -> list[str]:
    seen: dict[str, Cell] = {}
    problems = []
    for cell in cells:
        key = identity_key(cell.identity)
        if key in seen:
            problems.append(f"cells {seen[key].id} and {cell.id} are the same cell (same task, settings, data, "
                            f"backbone weights and seed): drop one of the duplicate labels")
        seen.setdefault(key, cell)
    return problems
