"""python -m transfer.finetune [CONFIG] --backbone SPEC --checkpoint PATH --dataset NAME --data-root ROOT [...]

End-to-end fine-tuning of a pretrained TinyViT / ViT on a torchvision data set (the D-MAE table's protocol) through
the distillation trainer's `finetune` objective (layer decay, AMP, EMA, progress logs with ETA, exact --resume under
the resume contract of docs/resume.md), then top-1 / top-5 on the test split: one result record (task 'finetune')
and a Tab. 5-style line.

The CONFIG (configs/finetune/*.py) holds the trainer's recipe keys (`distill_pretrain.config.DEFAULTS`: epochs,
optim, data.batch_size / aug, student.drop_path_rate, objective.label_smoothing, ema, amp, ...) and the harness keys
below; the flags override it (--lr is optim.lr at optim.base_batch images, scaled linearly to the actual batch;
--batch-size is data.batch_size; --resolution sets data.aug.img_size and the student's input size). The student,
the data sets, the class count and the objective come from the flags: without --checkpoint the same recipe runs
from random weights (objective 'scratch', pretrain 'none').
"""
from __future__ import annotations

import argparse
import copy
from pathlib import Path

from contracts.resume import ANYWAY_HELP, accepted_by
from contracts.runtime import keep_freed_memory

HARNESS = dict(backbone=None, checkpoint=None, pretrain=None, allow_keys=None, dataset=None, data_root=None,
               classes=None, max_train=None, max_test=None, resolution=None, batch_size=None, num_workers=None,
               lr=None, layer_decay=None, verify_md5=True, results_dir=None)


def trainer_defaults() -> dict:
    """The trainer's keys with the harness's defaults (objective finetune, label smoothing 0.1, no workers)."""
    from distill_pretrain.config import DEFAULTS
    out = copy.deepcopy(DEFAULTS)
    out.update(objective=dict(type="finetune", label_smoothing=0.1), log_interval=10)
    out["data"]["num_workers"] = 0
    return out


def main(argv: list[str] | None = None) -> list[dict]:
    from ..cli_common import add_common_arguments, cli_backbone, merge_config, write_and_print_records
    parser = argparse.ArgumentParser(prog="python -m transfer.finetune", description=__doc__.splitlines()[0])
    add_common_arguments(parser, feature_cache=False)
    parser.add_argument("--epochs", type=int, help="training epochs (the config's)")
    parser.add_argument("--lr", type=float, help="peak learning rate at optim.base_batch images (optim.lr)")
    parser.add_argument("--layer-decay", dest="layer_decay", type=float, help="layer-wise lr decay (optim.layer_decay)")
    parser.add_argument("--classes", type=int, nargs="+", help="keep only these labels (relabelled 0..k-1)")
    parser.add_argument("--max-train", dest="max_train", type=int, help="seeded subset of the training split")
    parser.add_argument("--max-test", dest="max_test", type=int, help="seeded subset of the test split")
    parser.add_argument("--work-dir", dest="work_dir",
                        help="trainer outputs (default work_dirs/finetune/<dataset>__<backbone>__<sha256[:12]>)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from WORK_DIR/resume.pth (exact resume; a state of another run is refused)")
    parser.add_argument("--resume-anyway", dest="resume_anyway", nargs="*", metavar="FIELD", help=ANYWAY_HELP)
    args = parser.parse_args(argv)
    if args.resume_anyway is not None and not args.resume:
        parser.error("--resume-anyway goes with --resume")
    keep_freed_memory()  # large CPU tensors reuse the heap (`contracts.runtime`)
    trainer_keys = trainer_defaults()
    cfg = merge_config(args, {**trainer_keys, **HARNESS})
    for key in ("backbone", "dataset", "data_root"):
        if not cfg.get(key):
            parser.error(f"--{key.replace('_', '-')} (or '{key}' in the config) is required")

    from distill_pretrain.data import EXTERNAL

    from ..features import resolve_checkpoint
    from ..linear_probe.datasets import canonical_name
    from .harness import build_data, finetune_record, record_pretrain, run_finetune, student_config

    name = canonical_name(cfg["dataset"])
    cfg["resolution"] = int(cfg["resolution"] or (cfg["data"].get("aug") or {}).get("img_size") or 224)
    data = build_data(name, cfg["data_root"], classes=cfg["classes"], max_train=cfg["max_train"],
                      max_test=cfg["max_test"], seed=cfg["seed"], verify_md5=cfg["verify_md5"])
    checkpoint = resolve_checkpoint(cfg["checkpoint"])
    backbone = cli_backbone(cfg)  # the probes' spec parsing and strict load: a misfit is refused here, by key
    block = record_pretrain(backbone.record_info(), checkpoint, cfg["pretrain"])

    run = {k: cfg[k] for k in trainer_keys}
    run["student"] = student_config(backbone, checkpoint, cfg["resolution"], cfg["allow_keys"] or (),
                                    drop_path_rate=(cfg["student"] or {}).get("drop_path_rate", 0.0))
    run["objective"] = {**(cfg["objective"] or {}), "type": "finetune" if checkpoint else "scratch"}
    run["data"] = dict(cfg["data"], aug={**(cfg["data"].get("aug") or {}), "img_size": cfg["resolution"]},
                       train=dict(type=EXTERNAL, name=name, split="train", length=len(data.train)),
                       val=dict(type=EXTERNAL, name=name, split="test", length=len(data.test)))
    for key, section in (("batch_size", "data"), ("num_workers", "data"), ("lr", "optim"), ("layer_decay", "optim")):
        if cfg[key] is not None:  # the flag (or top-level config key) sets the trainer's nested key
            run[section] = {**run[section], key: cfg[key]}
    work_dir = Path(cfg["work_dir"] or Path("work_dirs") / "finetune" / (
        f"{name}__{backbone.name}__{(block.get('checkpoint_sha256') or 'random')[:12]}"))
    # the harness writes the one `finetune` record; evaluation runs once, after training, on the test split
    pretrain_name = f"{block['pretrain']}-ft-{name}" if checkpoint else name  # the fine-tuned checkpoint's meta
    run.update(mode=None, num_classes=data.num_classes, pretrain_name=pretrain_name, record=False, eval_interval=0,
               labels_index_classes=True, work_dir=str(work_dir))
    trainer, result = run_finetune(run, work_dir, data, resume=args.resume, accept=accepted_by(args.resume_anyway))
    if result is None:
        print(f"stopped at step {trainer.step} of {trainer.schedule['total_steps']}: no record until the run "
              f"finishes (rerun with --resume --work-dir {work_dir})")
        return []
    record = finetune_record(trainer, result, block, name, data, cfg)
    print(f"fine-tuned checkpoint: {work_dir / 'checkpoint.pth'}")
    return write_and_print_records([record], cfg["results_dir"])


if __name__ == "__main__":
    from ..cli_common import run_cli
    run_cli(main)
