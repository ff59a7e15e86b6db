"""One OpenMMLab harness for the dense tasks (detection on mmdet, segmentation on mmseg).

- `task`: `DenseTask`, what a task defines (data, metric names/units, table, its own flags); `register_task`.
- `cli`: `train_main` / `test_main`, the shared entry points (flags `--work-dir --resume [CKPT] --resume-anyway
  --amp --cfg-options --launcher --data --pretrained --pretrain ...`).
- `resume`: `--resume` under the project's resume contract (the run identity compared before the runner starts).
- `config`: `load_config`, `use_harness_hooks`, and the checks that name a bad key / path / checkpoint.
- `hooks`: `PlainCheckpointHook` (plain, atomic, resumable checkpoints), `MetricHistoryHook` (scope
  `tinyvit_bench`; configs select them through `custom_imports`, so mmdet's / mmseg's own tools/train.py and
  tools/test.py use them too).
- `records`: the backbone block (what a model was fine-tuned from) and `write_dense_record` (fractions).
"""
from .hooks import SCOPE, MetricHistoryHook, PlainCheckpointHook
from .task import DenseTask, get_task, register_task

__all__ = ["SCOPE", "MetricHistoryHook", "PlainCheckpointHook", "DenseTask", "get_task", "register_task"]
