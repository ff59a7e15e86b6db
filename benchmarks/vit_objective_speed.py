"""Step time and peak memory of the plain-ViT pretraining objectives, one run, same batch: `mae` alone vs `dmae`
(+ attention-map distillation) vs `tinymim` (relation distillation), ViT-Tiny student, ViT-Base teacher (random
weights: speed does not depend on them).

    python -m benchmarks.vit_objective_speed [--batch 64] [--img-size 224] [--steps 3] [--warmup 1] [--amp] [--quick]
                                             [--device cuda] [--records DIR] [--no-record] [--threads N]

A step = objective forward + backward + AdamW step (no data loading), median over the measured steps
(`benchmarks.common.timed_rounds`). Peak memory:
`torch.cuda.max_memory_allocated` on GPU; on CPU the growth of the process's peak RSS while that objective runs
(each objective in a fresh subprocess, so one's peak does not hide another's). `dmae_all_layers` taps the attention
maps of all 12 student and teacher blocks instead of the last one only: what keeping every map would cost.
Writes a `vit_objective_speed` record; ratios are within this run.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from typing import Sequence

import torch

from benchmarks.common import add_common_flags, forwarded_flags, save_record, start_run, timed_rounds
from contracts.records import backbone_block, make_record

TEACHER = "vit_base_patch16_224"
CASES = ("mae", "dmae", "tinymim", "dmae_all_layers")


def _objective(case: str, student: torch.nn.Module, img_size: int):
    from distill_pretrain.objectives import OBJECTIVES
    teacher = dict(name=TEACHER, img_size=img_size)
    if case == "mae":
        return OBJECTIVES.build(dict(type="mae", student=student, decoder_dim=256, decoder_depth=4, decoder_heads=8))
    if case.startswith("dmae"):
        layers = tuple(range(12)) if case == "dmae_all_layers" else (-1,)
        return OBJECTIVES.build(dict(type="dmae", student=student, teacher=teacher, student_layers=layers,
                                     teacher_layers=layers, decoder_dim=256, decoder_depth=4, decoder_heads=8))
    return OBJECTIVES.build(dict(type="tinymim", student=student, teacher=teacher))


def measure(case: str, batch: int, img_size: int, steps: int, warmup: int, amp: bool,
            device: torch.device) -> dict[str, float]:
    """Median step seconds and peak MB of one objective (run in this process)."""
    from backbones.vit import build_vit
    torch.manual_seed(0)
    student = build_vit("vit_tiny_patch16_224", img_size=img_size).to(device)
    objective = _objective(case, student, img_size).to(device)
    opt = torch.optim.AdamW([*student.parameters(), *objective.parameters()], lr=1e-4)
    images = torch.randn(batch, 3, img_size, img_size, device=device)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss = objective(student, {"image": images})["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    timings = timed_rounds({case: step}, steps, warmup=warmup, device=device, label=f"vit_objective_speed {case}")
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda"
            else (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024)
    return {"step_s": timings.median()[case], "peak_mb": peak}


def build_parser() -> argparse.ArgumentParser:
    """The command line of `python -m benchmarks.vit_objective_speed`."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.vit_objective_speed", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_flags(parser, quick="batch 2, 64 px, 1 measured step", device=True, warmup=1)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=3, help="measured steps (median reported)")
    parser.add_argument("--amp", action="store_true", help="bfloat16 autocast (GPU: use with --batch 256)")
    parser.add_argument("--one", choices=CASES, help=argparse.SUPPRESS)  # internal: measure one case, print JSON
    return parser


def main(argv: Sequence[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    if args.quick:
        args.batch, args.img_size, args.steps = 2, 64, 1
    device = start_run(args)
    if args.one:
        print(json.dumps(measure(args.one, args.batch, args.img_size, args.steps, args.warmup, args.amp, device)))
        return {}
    found = {}
    for case in CASES:
        cmd = [sys.executable, "-m", "benchmarks.vit_objective_speed", "--one", case, "--batch", str(args.batch),
               "--img-size", str(args.img_size), "--steps", str(args.steps), "--warmup", str(args.warmup),
               "--device", str(device), *forwarded_flags(args)]
        out = subprocess.run(cmd + (["--amp"] if args.amp else []), check=True, stdout=subprocess.PIPE, text=True)
        found[case] = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{case:16s} {found[case]['step_s']:8.2f} s/step   peak {found[case]['peak_mb']:8.0f} MB", flush=True)
    mae = found["mae"]["step_s"]
    metrics = {"mae_step_s": mae, "dmae_step_s": found["dmae"]["step_s"], "tinymim_step_s": found["tinymim"]["step_s"],
               "dmae_over_mae": found["dmae"]["step_s"] / mae, "tinymim_over_mae": found["tinymim"]["step_s"] / mae,
               **{f"{c}_peak_mb": found[c]["peak_mb"] for c in ("mae", "dmae", "tinymim", "dmae_all_layers")}}
    print(f"dmae / mae {metrics['dmae_over_mae']:.2f}x, tinymim / mae {metrics['tinymim_over_mae']:.2f}x", flush=True)
    record = make_record("vit_objective_speed", dataset="synthetic", split="none",
                         backbone=backbone_block("vit_tiny_patch16_224", "random"),
                         metrics=metrics,
                         setting={"batch": args.batch, "img_size": args.img_size, "teacher": TEACHER,
                                  "steps": args.steps, "amp": bool(args.amp)})
    save_record(record, args)
    return metrics


if __name__ == "__main__":
    main()
