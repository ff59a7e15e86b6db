"""Student training: pretraining distillation from the logit store, online distillation, training from scratch,
finetuning, or any registered objective (paper §3.1, supp. §B).

    python -m distill_pretrain.train CONFIG [--cfg-options k=v ...] [--work-dir DIR] [--resume [FILE]]
        [--resume-anyway [FIELD ...]]
    python -m distill_pretrain.train CONFIG --eval CKPT                  # evaluate a checkpoint on data.val
    torchrun --nproc_per_node N -m distill_pretrain.train CONFIG        # DDP: NCCL on GPU, gloo on CPU

The objective (`objective=dict(type=...)`, or `mode=NAME` for short; `distill_pretrain.objectives`):
- `stored`: the paper's fast distillation. Each sample's augmentation is replayed from the store's seed
  (the store's base seed and transform), the target is the Eq. 2 dense recovery of the stored top-K teacher
  probabilities, the loss is soft cross-entropy at `objective.temperature`; label-free unless
  `objective.gt_weight > 0` (supp. Tab. 2's "w/ GT").
- `online`: the teacher runs on every batch (the conventional baseline of supp. §D).
- `scratch`: ground-truth labels (Mixup/CutMix-aware, label smoothing) from random weights.
- `finetune`: the same loss from `student.init` (required); the recipes add layer-wise LR decay and frozen
  BatchNorm statistics.

The parts: `config` (keys, defaults, validation), `dist` (device + torchrun set-up), `student`, `sampler`,
`objectives`, `trainer` (the loop), `run_log`, `evaluation`, `resume`, `optim`, `checkpoint`, `export`. The device
is the GPU when there is one (`device='auto'`), else the CPU; `amp_dtype='bfloat16'` needs no GradScaler and also
runs on the CPU.

Outputs in the work dir: `checkpoint.pth` (contract 2, see `contracts.checkpoint`; meta `objective` and
`pretrain`), `checkpoint_ema.pth` with EMA, `checkpoint_epoch{N}.pth` (the student after N epochs) every
`keep_interval` epochs, `resume.pth`, `config.py`, `log.jsonl`, `train.log` (both appended to across resumes),
`tb/` (TensorBoard scalars), and a validated `distill` result record per evaluation under `records/`.

`--resume` continues exactly where the resume state stopped, after checking it belongs to this run (the resume
contract, docs/resume.md): a bad file or a state of another run (another config, data set, store, init, world
size) is refused naming the file and each differing field before anything in the work dir changes;
`--resume-anyway [FIELD ...]` accepts deliberate changes (e.g. a new lr), logged and recorded.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

import torch.distributed as dist
from mmengine.config import DictAction

from contracts.resume import ANYWAY_HELP, accepted_by
from contracts.runtime import keep_freed_memory

from .config import load_config
from .dist import init_distributed
from .trainer import Trainer

__all__ = ["Trainer", "load_config", "main", "parse_args"]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m distill_pretrain.train",
                                     description="Train a student: stored / online distillation, scratch, finetune, "
                                                 "or any registered objective.")
    parser.add_argument("config", help="MMEngine Python config (configs/distill/*.py)")
    parser.add_argument("--work-dir", help="output folder (default: work_dirs/<config name>)")
    parser.add_argument("--resume", nargs="?", const="auto", default=None,
                        help="resume from WORK_DIR/resume.pth (or the given resume file)")
    parser.add_argument("--resume-anyway", nargs="*", metavar="FIELD", help=ANYWAY_HELP)
    parser.add_argument("--eval", metavar="CKPT", help="only evaluate this checkpoint on data.val (1 or N processes)")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, default={},
                        help="override config keys, e.g. optim.lr=1e-4 data.batch_size=64 device=cpu")
    args = parser.parse_args(argv)
    if args.resume_anyway is not None and not args.resume:
        parser.error("--resume-anyway goes with --resume")
    return args


def main(argv: Sequence[str] | None = None) -> Trainer:
    args = parse_args(argv)
    keep_freed_memory()  # large CPU tensors reuse the heap (`contracts.runtime`)
    from contracts.provenance import config_sha256
    cfg = load_config(args.config, args.cfg_options)
    work_dir = Path(args.work_dir or cfg.work_dir or Path("work_dirs") / Path(args.config).stem)
    info = init_distributed(cfg.device)
    trainer = Trainer(cfg, work_dir, info, config_sha256(cfg.to_dict()))
    if args.resume:  # read and checked before anything in the work dir changes
        found = trainer.resume(None if args.resume == "auto" else args.resume, accept=accepted_by(args.resume_anyway))
        if not found and args.resume != "auto":
            raise FileNotFoundError(f"--resume {args.resume}: no such resume file")
    if info.is_main:  # accepted: the logs open (appended to; temp files of killed writes removed), config copied
        trainer.run_log.open()
        cfg.dump(str(work_dir / "config.py"))
    if args.eval:
        trainer.load_weights(args.eval)
        trainer.evaluate(checkpoint=args.eval)
    else:
        trainer.train()
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    return trainer


if __name__ == "__main__":
    main()
