"""What differs between the dense tasks the harness drives: one `DenseTask` per task, registered by its package.

The harness (`transfer.openmmlab.cli`) does the rest the same way for every task: flags, config loading,
checks, hooks, the runner, the record.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any, Callable

from mmengine.config import Config

Metrics = dict[str, Any]


@dataclass(frozen=True)
class DenseTask:
    """One dense-prediction task on an OpenMMLab library.

    name: the record's task ('detection' | 'segmentation'); scope: the library's registry scope.
    model_word: what the library calls the whole model ('detector' | 'segmentor'), used in flags and messages.
    record_metrics: the runner's metrics (library names and units) → record metrics (schema names, fractions).
    format_metrics: record metrics → the table printed after an evaluation.
    use_data: points the config at `--data VALUES` (`data_metavar` names them); check_data: validates the data
    sets of the named dataloaders before any model is built (may re-point them; raises naming the file).
    prepare: the task's own config edits from its own flags; setting: the task's part of the record's setting.
    add_arguments: the task's own flags (train and test); record_split_after_train: 'test' evaluates the test
    split after training, 'val' records the last validation.
    """

    name: str
    scope: str
    model_word: str
    record_metrics: Callable[[Metrics], Metrics]
    format_metrics: Callable[[Metrics], str]
    use_data: Callable[[Config, list[str]], None]
    data_metavar: tuple[str, ...]
    check_data: Callable[[Config, tuple[str, ...], argparse.Namespace], None]
    setting: Callable[[Config], dict[str, Any]]
    record_split_after_train: str
    prepare: Callable[[Config, argparse.Namespace], None] = lambda cfg, args: None
    add_arguments: Callable[[argparse.ArgumentParser, str], None] = lambda parser, mode: None
    default_dataset: str = field(default="unknown")


_TASKS: dict[str, DenseTask] = {}


def register_task(task: DenseTask) -> DenseTask:
    """Make `task` known by its name (to `MetricHistoryHook(task=...)`); returns it."""
    _TASKS[task.name] = task
    return task


def get_task(name: str) -> DenseTask:
    """The registered task `name`; the message lists the known ones (import its package to register it)."""
    if name not in _TASKS:
        raise KeyError(f"dense task {name!r} is not registered; known: {sorted(_TASKS)} (custom_imports must "
                       "import transfer.detection / transfer.segmentation)")
    return _TASKS[name]
