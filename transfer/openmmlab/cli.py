"""The train and test entry points of every dense task: one set of flags, one order of checks, one record.

    train: CONFIG [--work-dir DIR] [--resume [CKPT] [--resume-anyway [FIELD ...]]] [--amp] [--sync-bn] [--data ...]
           [--pretrained CKPT]
           [--pretrain NAME] [--results-dir DIR] [--no-validate-data] [--cfg-options k=v ...] [--launcher L]
    test:  CONFIG CHECKPOINT [the same, without --resume / --amp / --sync-bn] [--split-name NAME]

Order: config + flags → model keys, data sets and the backbone checkpoint are checked (each names the bad
key / file) → (train --resume) the checkpoint to resume from is checked against this run (`resume`) → the runner is
built → (test) the checkpoint is checked against the model → run → table + record.
"""
from __future__ import annotations

import argparse
import os
from typing import Any

from mmengine.config import Config, ConfigDict, DictAction

from contracts.fileio import remove_orphaned_temps
from contracts.resume import ANYWAY_HELP, accepted_by
from contracts.runtime import keep_freed_memory

from .config import (backbone_checkpoint, check_backbone_checkpoint, check_checkpoint_matches, check_model_keys,
                     load_config, use_harness_hooks)
from .hooks import MetricHistoryHook
from .records import BACKBONE_KEY, describe_backbone, trained_from, write_dense_record
from .resume import check_resume_file
from .task import DenseTask


def build_parser(task: DenseTask, mode: str, description: str) -> argparse.ArgumentParser:
    """The flags of `python -m transfer.<task>.<mode>` (mode 'train' | 'test')."""
    parser = argparse.ArgumentParser(description=description.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(description.splitlines()[1:]))
    parser.add_argument("config", help=f"MMEngine config (configs/{task.name}/*.py)")
    if mode == "test":
        parser.add_argument("checkpoint", help=f"{task.model_word} checkpoint (transfer.{task.name}.train or "
                                               f"{task.scope}'s tools/train.py)")
        parser.add_argument("--split-name", default="test", help="split name written into the record")
    else:
        parser.add_argument("--resume", nargs="?", const="auto", default=None,
                            help="resume from CKPT, or from the latest checkpoint in the work dir without a path; "
                                 "a checkpoint of another run is refused (docs/resume.md)")
        parser.add_argument("--resume-anyway", nargs="*", metavar="FIELD", help=ANYWAY_HELP)
        parser.add_argument("--amp", action="store_true", help="mixed precision (AmpOptimWrapper; CUDA only)")
        parser.add_argument("--sync-bn", action="store_true", help="convert BN to SyncBN (multi-GPU runs)")
    parser.add_argument("--work-dir", help="where logs and checkpoints go (default work_dirs/<config name>)")
    parser.add_argument("--data", nargs=len(task.data_metavar), metavar=task.data_metavar,
                        help="use this data set for every split instead of the config's")
    parser.add_argument("--pretrained", metavar="CKPT",
                        help="backbone checkpoint (any format backbones.load_pretrained reads); for test: the one "
                             f"the {task.model_word} was fine-tuned from, when its checkpoint does not say")
    parser.add_argument("--pretrain", metavar="NAME",
                        help="what the backbone checkpoint was pretrained on (in1k, in21k-distill, ...) for "
                             "third-party files that do not say; written into the record")
    parser.add_argument("--results-dir", help="where the result record goes (default results/records)")
    parser.add_argument("--no-validate-data", action="store_true",
                        help="skip the up-front check of every image and annotation")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, help="override config keys: key=value")
    parser.add_argument("--seed", type=int, help="random seed (MMEngine's randomness.seed; default: the config's, "
                                                 "else one MMEngine draws); recorded")
    parser.add_argument("--deterministic", action="store_true",
                        help="randomness.deterministic=True (cuDNN's deterministic algorithms)")
    parser.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none",
                        help="job launcher (torchrun → pytorch)")
    parser.add_argument("--local-rank", "--local_rank", type=int, default=0, help=argparse.SUPPRESS)
    task.add_arguments(parser, mode)
    return parser


def _parse(task: DenseTask, mode: str, description: str, argv: list[str] | None) -> argparse.Namespace:
    parser = build_parser(task, mode, description)
    args = parser.parse_args(argv)
    if getattr(args, "resume_anyway", None) is not None and not args.resume:
        parser.error("--resume-anyway goes with --resume")
    keep_freed_memory()  # large CPU tensors reuse the heap (`contracts.runtime`)
    os.environ.setdefault("LOCAL_RANK", str(args.local_rank))
    return args


def prepare_config(task: DenseTask, args: argparse.Namespace, splits: tuple[str, ...]) -> Config:
    """Config + flags, then the checks that must fail before any model or runner is built."""
    import backbones  # noqa: F401 - registers TinyViT and the layer-decay constructor

    cfg = load_config(args.config, args.cfg_options, args.work_dir)
    cfg.launcher = args.launcher
    randomness = dict(cfg.get("randomness") or {})
    if args.seed is not None:
        randomness["seed"] = args.seed
    if args.deterministic:
        randomness["deterministic"] = True
    if randomness:
        cfg.randomness = ConfigDict(randomness)
    if args.pretrained:
        cfg.model.backbone.init_cfg = ConfigDict(type="Pretrained", checkpoint=args.pretrained)
    if args.data:
        task.use_data(cfg, args.data)
    if getattr(args, "amp", False):
        import torch
        if not torch.cuda.is_available():
            raise SystemExit("--amp needs a GPU (MMEngine's AmpOptimWrapper runs on CUDA/NPU/MLU only)")
        cfg.optim_wrapper.type = "AmpOptimWrapper"
        cfg.optim_wrapper.setdefault("loss_scale", "dynamic")
    if getattr(args, "sync_bn", False):
        cfg.sync_bn = "torch"
    if getattr(args, "resume", None):
        cfg.resume, cfg.load_from = True, None if args.resume == "auto" else args.resume
    task.prepare(cfg, args)
    use_harness_hooks(cfg, task.name)
    check_model_keys(cfg, task.scope)
    if not args.no_validate_data:
        task.check_data(cfg, splits, args)
    return cfg


def _unwrapped(model: Any) -> Any:
    from mmengine.model import is_model_wrapper
    return model.module if is_model_wrapper(model) else model


def _print_and_record(task: DenseTask, runner: Any, cfg: Config, metrics: dict[str, Any], *, split: str,
                      backbone: dict[str, Any], checkpoint: str | None, results_dir: str | None, seed: int | None,
                      curve: list | None = None) -> None:
    if runner.rank != 0:
        return
    print(task.format_metrics(metrics), flush=True)
    path = write_dense_record(task, cfg, metrics, split=split, backbone=backbone, checkpoint=checkpoint,
                              results_dir=results_dir, seed=seed, curve=curve)
    print(f"[{task.name}] record: {path}", flush=True)


def train_main(task: DenseTask, argv: list[str] | None, description: str) -> dict[str, Any]:
    """Train; then evaluate and record (`task.record_split_after_train`). Returns the record metrics."""
    from mmengine.runner import Runner

    args = _parse(task, "train", description, argv)
    cfg = prepare_config(task, args, ("train_dataloader", "val_dataloader", "test_dataloader"))
    check_backbone_checkpoint(cfg, task.scope)
    backbone = describe_backbone(cfg, args.pretrain)
    cfg[BACKBONE_KEY] = backbone  # travels in every checkpoint's meta: what the test record names
    resuming = ""
    if args.resume:  # checked before the runner touches the work dir
        resuming = check_resume_file(cfg, accepted_by(args.resume_anyway))
    if int(os.environ.get("RANK", "0")) == 0:  # temp files of the harness's atomic writes a kill interrupted
        for folder in ("", "checked_data"):
            remove_orphaned_temps(os.path.join(cfg.work_dir, folder))
    runner = Runner.from_cfg(cfg)
    if resuming:
        runner.logger.info(resuming)
    runner.train()
    history = next(h for h in runner.hooks if isinstance(h, MetricHistoryHook))
    if task.record_split_after_train == "test":
        if getattr(args, "no_test", False) or cfg.get("test_dataloader") is None:
            return {}
        metrics, split = task.record_metrics(runner.test()), "test"
    else:
        if runner.val_loop is None:
            return {}
        metrics, split = history.last or task.record_metrics(runner.val()), "val"
    last = os.path.join(runner.work_dir, "last_checkpoint")
    checkpoint = open(last).read().strip() if os.path.exists(last) else None
    _print_and_record(task, runner, cfg, metrics, split=split, backbone=backbone, checkpoint=checkpoint,
                      results_dir=args.results_dir, seed=runner.seed, curve=history.history)
    return metrics


def test_main(task: DenseTask, argv: list[str] | None, description: str) -> dict[str, Any]:
    """Evaluate a whole-model checkpoint on the test split and record it. Returns the record metrics.

    The record's backbone is the one the model was fine-tuned from: `--pretrained` when given, else what the
    checkpoint's meta says (written by `train_main`, or the config stored by the library's tools/train.py).
    """
    from mmengine.runner import Runner

    args = _parse(task, "test", description, argv)
    if not os.path.isfile(args.checkpoint):
        raise FileNotFoundError(f"{task.model_word} checkpoint {args.checkpoint} does not exist")
    cfg = prepare_config(task, args, ("test_dataloader",))
    cfg.load_from = args.checkpoint
    runner = Runner.from_cfg(cfg)
    meta = check_checkpoint_matches(_unwrapped(runner.model), args.checkpoint, task.model_word)
    if args.pretrained:
        check_backbone_checkpoint(cfg, task.scope)
        backbone = describe_backbone(cfg, args.pretrain)
    else:
        backbone = trained_from(meta, args.pretrain)
    if backbone is None:
        path = backbone_checkpoint(cfg)
        if path is not None and not os.path.isfile(path):
            raise FileNotFoundError(
                f"cannot tell which backbone checkpoint {args.checkpoint} was fine-tuned from: its meta does not say "
                f"and model.backbone.init_cfg.checkpoint {path} does not exist; pass --pretrained CKPT")
        backbone = describe_backbone(cfg, args.pretrain)
    metrics = task.record_metrics(runner.test())
    _print_and_record(task, runner, cfg, metrics, split=args.split_name, backbone=backbone,
                      checkpoint=args.checkpoint, results_dir=args.results_dir, seed=meta.get("seed"))
    return metrics
