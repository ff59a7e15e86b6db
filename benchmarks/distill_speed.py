"""Speed of the distillation stages on one device, per replay pipeline (`pil`, `tensor`), same run, same batch:

* the student step in the three modes of `distill_pretrain.train` (`--modes`: a subset) — (a) scratch (ground
  truth, no teacher), (b) stored (fast distillation: replay + store read), (c) online (the teacher runs every
  step) — end to end (the wall time of the measured steps over their number, data loading included; the trainer
  reads its outputs every `--warmup` steps, as a run reads them at each log line) and its **compute-only bound**
  (the same step repeated on one batch already resident on the device, queued without reading anything back, one
  wait at the end; stored: the sparse target resident too; online: the teacher runs); eager or `--compile MODE`
  (the trainer's `compile` key), AdamW fused (`optim.fused='auto'`);
* the data pipeline alone (DataLoader + the pipeline's device stage, no model; `--data-only`: only this, the
  pipelines in interleaved rounds, median);
* the teacher's inference alone, and save_logits end to end (`distill_pretrain.save_logits`'s epoch loop, timed
  on the second of two epochs).

    python -m benchmarks.distill_speed [--device cuda|cpu] [--quick] [--img-size 224] [--batch 256] [--data-only]
        [--workers 14] [--amp-dtype float16|bfloat16] [--pipelines pil,tensor] [--teacher NAME]
        [--modes scratch,stored,online] [--compile default|reduce-overhead|max-autotune] [--image-folder DIR]
        [--records DIR] [--no-record] [--threads N]     # the flags every benchmark shares: `benchmarks.common`

Targets (paper §3.1 + issue 13): stored ≤ 1.05 × scratch step time; online ≥ 2 × stored with a teacher ≥ 10× the
student's FLOPs (supp. §D: 1.42× with Florence); end-to-end ≥ 80 % of the compute-only bound on a GPU;
save_logits ≥ 80 % of the teacher-only rate. The teacher is a timm model with random weights (default
`convnext_base`, ≈12× TinyViT-5M; its speed does not depend on its weights) loaded through `build_teacher` like any
teacher; the store for (b) is saved by it over the data (Fashion-MNIST, whose 28×28 images cost nothing to decode,
or with `--image-folder DIR` an ImageFolder of real photos, decoded from their JPEG files as an ImageNet-scale run
decodes them) through the pipeline being measured, and the trainer replays through that pipeline
(`data.pipeline`). Steps go through the trainer's public `prepare` / `train_step`.
AMP (`--amp-dtype`) on CUDA only. Writes one `distill_speed` record per pipeline (device, AMP dtype, workers,
pipeline, modes, compile mode and optimizer kernel in `setting`; the data set as the record's `dataset`).
"""
from __future__ import annotations

import argparse
import math
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from benchmarks.common import StreamRate, add_common_flags, interleave, save_record, start_run, timed_rounds
from contracts.assets import REPO_ROOT
from contracts.records import backbone_block, make_record
from contracts.runtime import cudnn_autotune
from distill_pretrain.config import COMPILE_MODES

TINY_CONFIG = REPO_ROOT / "configs" / "distill" / "tinyvit_5m_fmnist_tiny_cpu.py"
SAVE_CONFIG = REPO_ROOT / "configs" / "distill" / "save_logits_mobilenetv2_fmnist.py"
MODES = ("scratch", "stored", "online")


def forward_flops(model: torch.nn.Module, img_size: int) -> int:
    """FLOPs of one forward pass on one image (torch's flop counter). Counted with autograd on: under no_grad our
    TinyViT on CPU runs fused oneDNN ops the counter does not know (it counted 0.36 of 2.5 GFLOPs at 224)."""
    from torch.utils.flop_counter import FlopCounterMode
    model = model.eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.enable_grad():
        model(torch.randn(1, 3, img_size, img_size))
    return int(counter.get_total_flops())


def dataset_cfg(image_folder: str | None) -> dict[str, Any]:
    """The benchmark's data: Fashion-MNIST's training split, or an ImageFolder of real photos (JPEG decode
    included, as at ImageNet scale)."""
    if image_folder is None:
        return dict(type="FashionMNIST", split="train")
    if not Path(image_folder).is_dir():
        raise SystemExit(f"--image-folder {image_folder}: not a directory (expected class sub-folders of images)")
    return dict(type="ImageFolder", root=str(image_folder))


def sized_dataset(data: dict[str, Any]) -> Any:
    """`build_dataset(data)`, refused up front when it holds fewer images than its ``limit`` (what the run reads)."""
    from distill_pretrain.data import build_dataset
    dataset = build_dataset(data)
    if len(dataset) < data["limit"]:
        raise SystemExit(f"{data}: {len(dataset)} images, fewer than the {data['limit']} this run reads "
                         "(batch × (warmup + steps))")
    return dataset


def random_teacher(name: str, folder: Path) -> dict[str, Any]:
    """A timm model with random weights saved to `folder`, as a `build_teacher` config."""
    import timm
    path = folder / f"{name}_random.pth"
    torch.save(timm.create_model(name, pretrained=False, num_classes=1000).state_dict(), path)
    return dict(type="timm", name=name, weights=str(path))


def teacher_rate(teacher_cfg: dict[str, Any], aug: dict[str, Any], batch: int, device: torch.device, amp: bool,
                 repeats: int, warmup: int) -> float:
    """The teacher's inference img/s (top-K softmax as save_logits computes it) on a resident batch."""
    from distill_pretrain.augment import AugmentConfig
    from distill_pretrain.save_logits import TeacherRunner
    from distill_pretrain.teachers import build_teacher
    teacher, identity = build_teacher(teacher_cfg)
    cfg = AugmentConfig.coerce(aug)
    runner = TeacherRunner(teacher, identity, cfg, device, amp)
    x = torch.randn(batch, 3, cfg.img_size, cfg.img_size, device=device)
    timings = timed_rounds({"teacher": lambda: runner.probs(x).topk(10, dim=-1)}, repeats, warmup=warmup,
                           device=device)
    return batch / timings.median()["teacher"]


def data_rate(pipeline: str, store: Path, batch: int, workers: int, device: torch.device, warmup: int) -> float:
    """img/s of the replay pipeline alone over a store's data and transform (`loader_rate`)."""
    from distill_pretrain.data import build_dataset
    from distill_pretrain.replay import replay_for_store
    from distill_pretrain.store import LogitStore
    st = LogitStore.open(store)
    replay = replay_for_store(st, build_dataset(st.manifest["extra"]["dataset_cfg"]), pipeline)
    return loader_rate(replay, batch, workers, device, warmup)


def loader_rate(replay: Any, batch: int, workers: int, device: torch.device, warmup: int) -> float:
    """img/s of a replay pipeline alone: DataLoader (workers) + the pipeline's device stage, no model; timed from
    the end of batch ``warmup``."""
    from torch.utils.data import DataLoader
    n = len(replay.dataset) // batch
    loader = DataLoader(replay.dataset, batch_sampler=[range(b * batch, (b + 1) * batch) for b in range(n)],
                        num_workers=workers, collate_fn=replay.collate, pin_memory=device.type == "cuda",
                        prefetch_factor=4 if workers else None)
    stream = StreamRate(warmup, device)
    for out in loader:
        replay.finish(out, device)
        stream.update(batch)
    stream.stop()
    return stream.rate()


def compute_bound(trainer: Any, steps: int, warmup: int) -> float:
    """Seconds per optimizer step (`Trainer.train_step`) on one prepared batch already resident on the device
    (stored: its sparse targets too; online: the teacher runs every step): ``steps`` steps queued without reading
    their outputs, timed from a synchronised start to the end of the last one."""
    batch = trainer.prepare(next(iter(trainer.loader())))
    trainer.step_module.train()
    last: dict[str, Any] = {}
    timings = timed_rounds({"step": lambda: last.update(trainer.train_step(batch, read=False))}, 1, warmup=warmup,
                           calls=steps, device=trainer.device)
    if not math.isfinite(float(last["loss"])):
        raise RuntimeError(f"compute-only bound: the loss is {float(last['loss'])}")
    return timings.best()["step"]


def measure_mode(mode: str, pipeline: str, *, store: Path, teacher: dict[str, Any], img_size: int, batch: int,
                 steps: int, warmup: int, workers: int, device: torch.device, amp_dtype: str, work_dir: Path,
                 data: dict[str, Any], bound: bool, compile_mode: str | None = None,
                 cudnn_benchmark: bool = True) -> dict[str, Any]:
    """End-to-end seconds per step of one fresh Trainer (the measured steps' wall time: the trainer reads its
    outputs, and so waits for the device, at step ``warmup`` and every ``warmup`` steps after), its optimizer
    (``optim``) and, if ``bound``, its compute-only step time."""
    from distill_pretrain.config import load_config
    from distill_pretrain.store import LogitStore
    from distill_pretrain.trainer import Trainer
    options = {"mode": mode, "store.path": str(store), "store.cycle_epochs": True, "num_classes": 1000,
               "student.img_size": img_size, "data.batch_size": batch,
               "data.num_workers": workers, "data.pipeline": pipeline, "data.val": None, "epochs": 100,
               "stop_after_steps": warmup + steps, "eval_teacher_agreement": False, "log_interval": max(warmup, 1),
               "record": False, "device": str(device), "amp": device.type == "cuda", "amp_dtype": amp_dtype,
               "compile": compile_mode, "cudnn_benchmark": cudnn_benchmark}
    cfg = load_config(TINY_CONFIG, options)
    cfg.teacher = teacher
    cfg.data.train = data
    # scratch / online: the same augmentation as the store's, only the targets differ
    cfg.data.aug = LogitStore.open(store).manifest["transform"]
    trainer = Trainer(cfg, work_dir / f"{pipeline}_{mode}")
    history = trainer.train()
    out = {"step_s": sum(h["step_s"] for h in history[warmup:]) / steps, "optim": trainer.optim_description}
    if bound:  # after the run: the device, its kernels' autotuning and the AMP scale are as warm as in training
        out["bound_step_s"] = compute_bound(trainer, steps, warmup)
    return out


def save_store(pipeline: str, path: Path, teacher_cfg: dict[str, Any], *, img_size: int, batch: int, workers: int,
               data: dict[str, Any], device: torch.device) -> float:
    """Save two epochs of a store through ``pipeline`` with `distill_pretrain.save_logits`'s own parts; returns the
    steady-state img/s of the second (the first warms up): data pipeline + teacher + top-K + chunk writes, from its
    second batch to its end (setup and the loader's worker start-up excluded: on a real data set an epoch is
    millions of images)."""
    from distill_pretrain import save_logits
    from distill_pretrain.augment import AugmentConfig
    from distill_pretrain.replay import build_replay
    from distill_pretrain.teachers import build_teacher
    cfg = save_logits.load_config(str(SAVE_CONFIG), [
        f"store.path={path}", "epochs=2", f"batch_size={batch}", "store.topk=10",
        f"augment.img_size={img_size}", "augment.mixup_alpha=0.0", "augment.cutmix_alpha=0.0",
        f"pipeline={pipeline}", f"store.chunk_size={data['limit']}", "teacher.type=timm",
        f"teacher.name={teacher_cfg['name']}", f"teacher.weights={teacher_cfg['weights']}"])
    cfg.dataset = data
    teacher, identity = build_teacher(cfg.teacher)
    dataset = sized_dataset(data)
    aug = AugmentConfig.coerce(cfg.augment)
    store = save_logits.open_store(cfg, dataset, identity, aug, rank=0)
    runner = save_logits.TeacherRunner(teacher, identity, aug, device, device.type == "cuda")
    replay = build_replay(pipeline, dataset, aug, cfg.base_seed)
    for epoch in (0, 1):
        stream = StreamRate(1, device)  # the epoch's progress sink: timed from the end of its first batch
        save_logits.save_epoch(store, replay, runner, epoch, 0, 1, batch, workers, stream)
        stream.stop()
        store.finalize_epoch(epoch)
    return stream.rate()


def data_only(pipelines: Sequence[str], *, data: dict[str, Any], img_size: int, batch: int, batches: int,
              workers: int, device: torch.device, warmup: int, rounds: int) -> dict[str, float]:
    """Median img/s of each pipeline alone over interleaved rounds (pil, tensor, pil, tensor, ...): save_logits'
    augmentation without Mixup/CutMix (the store's of the full run), no store, no model."""
    from mmengine.config import Config
    from distill_pretrain.replay import build_replay
    aug = {**Config.fromfile(str(SAVE_CONFIG)).augment, "img_size": img_size, "mixup_alpha": 0.0, "cutmix_alpha": 0.0}
    dataset = sized_dataset({**data, "limit": batch * (warmup + batches)})
    replays = {p: build_replay(p, dataset, aug) for p in pipelines}
    rates = interleave({p: (lambda _round, p=p: loader_rate(replays[p], batch, workers, device, warmup))
                        for p in pipelines}, rounds, label="distill_speed data only", unit="img/s")
    return {p: statistics.median(v) for p, v in rates.items()}


def build_parser() -> argparse.ArgumentParser:
    """The command line of `python -m benchmarks.distill_speed`."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.distill_speed", description=__doc__.splitlines()[0])
    add_common_flags(parser, quick="64 px, batch 8, 4 measured steps", device=True, rounds=5, warmup="3, quick 1")
    parser.add_argument("--img-size", type=int, default=None,
                        help="default 224 on GPU, 128 on CPU (TinyViT's default windows need a multiple of 32)")
    parser.add_argument("--batch", type=int, default=None, help="per-step batch (default 256 on GPU, 16 on CPU)")
    parser.add_argument("--steps", type=int, default=None, help="measured steps per mode (default 30, quick 4)")
    parser.add_argument("--teacher", default="convnext_base", help="timm model name (random weights)")
    parser.add_argument("--workers", type=int, default=None, help="data-loader workers (default 8 GPU / 0 CPU)")
    parser.add_argument("--amp-dtype", choices=("float16", "bfloat16"), default="float16", help="AMP on CUDA")
    parser.add_argument("--pipelines", default="pil,tensor", help="replay pipelines to compare (comma-separated)")
    parser.add_argument("--modes", default=",".join(MODES), help="student modes to run (comma-separated subset of "
                        f"{','.join(MODES)}; a ratio needs both of its modes)")
    parser.add_argument("--compile", default=None, choices=COMPILE_MODES,
                        help="torch.compile the student step in this mode (the trainer's `compile` key); default eager")
    parser.add_argument("--cudnn-benchmark", action=argparse.BooleanOptionalAction, default=True,
                        help="CUDA: cuDNN autotuning for the whole run, teacher and student alike (default on)")
    parser.add_argument("--data-only", action="store_true", help="only the data pipeline alone (data_img_s), the "
                        "pipelines in --rounds interleaved rounds (median reported)")
    parser.add_argument("--image-folder", default=None, metavar="DIR", help="an ImageFolder of real photos (class "
                        "sub-folders) instead of Fashion-MNIST: JPEG decode included, as at ImageNet scale; it must "
                        "hold batch × (warmup + steps) images")
    return parser


@dataclass(frozen=True)
class Run:
    """The resolved settings of one benchmark run (the flags with their per-device defaults filled in)."""

    device: torch.device
    img: int
    batch: int
    steps: int
    warmup: int
    workers: int
    pipelines: list[str]
    modes: list[str]
    data: dict[str, Any]
    setting: dict[str, Any]  # what every record's `setting` starts from


def resolve_run(args: argparse.Namespace, parser: argparse.ArgumentParser, device: torch.device) -> Run:
    gpu = device.type == "cuda"
    autotune = cudnn_autotune(device, args.cudnn_benchmark)  # None on the CPU
    modes = [m for m in args.modes.split(",") if m]
    if not modes or set(modes) - set(MODES):
        parser.error(f"--modes {args.modes!r}: choose from {','.join(MODES)}")
    img = args.img_size or (64 if args.quick else 224 if gpu else 128)
    batch = args.batch or (8 if args.quick else 256 if gpu else 16)
    steps = args.steps or (4 if args.quick else 30)
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 3)
    workers = args.workers if args.workers is not None else (8 if gpu else 0)
    setting = {"img_size": img, "batch": batch, "steps": steps, "warmup": warmup, "teacher": args.teacher,
               "workers": workers, "device": device.type, "amp_dtype": args.amp_dtype if gpu else "none",
               "quick": args.quick, "compile": args.compile or "off"}
    if autotune is not None:
        setting["cudnn_benchmark"] = autotune
    return Run(device, img, batch, steps, warmup, workers, [p for p in args.pipelines.split(",") if p], modes,
               dataset_cfg(args.image_folder), setting)


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    parser = build_parser()
    args = parser.parse_args(argv)
    run = resolve_run(args, parser, start_run(args))
    autotune = run.setting.get("cudnn_benchmark")
    print(f"distill_speed on {run.device} (AMP {run.setting['amp_dtype']}), {run.img}px, batch {run.batch}, "
          f"{run.workers} workers, pipelines {run.pipelines}, modes {run.modes}, compile {args.compile or 'off'}"
          f"{'' if autotune is None else f', cudnn_benchmark {autotune}'}", flush=True)
    records = data_only_records(run, args) if args.data_only else stage_records(run, args)
    if not args.data_only:
        print(summary_table(records), flush=True)
    return records


def data_only_records(run: Run, args: argparse.Namespace) -> list[dict[str, Any]]:
    """`--data-only`: the pipelines alone in interleaved rounds, one record each."""
    rates = data_only(run.pipelines, data=run.data, img_size=run.img, batch=run.batch, batches=run.steps,
                      workers=run.workers, device=run.device, warmup=max(run.warmup, 1), rounds=args.rounds)
    records = [make_record("distill_speed", dataset=run.data["type"], split="train", metrics={"data_img_s": v},
                           backbone=backbone_block("tinyvit-5m", "random"),
                           setting={**run.setting, "pipeline": p, "rounds": args.rounds}) for p, v in rates.items()]
    for record in records:
        print(f"[{record['setting']['pipeline']}] data pipeline alone {record['metrics']['data_img_s']:.1f} img/s "
              f"(median of {args.rounds})", flush=True)
        save_record(record, args)
    return records


def stage_records(run: Run, args: argparse.Namespace) -> list[dict[str, Any]]:
    """The teacher alone, then per pipeline save_logits and the student step in each mode: one record each."""
    from backbones import TinyViT
    from distill_pretrain.teachers import build_teacher
    run_data = {**run.data, "limit": run.batch * (run.warmup + run.steps)}  # what save_logits and every mode read
    records, bound = [], {}
    with tempfile.TemporaryDirectory(prefix="distill_speed_") as tmp:
        tmp = Path(tmp)
        teacher_cfg = random_teacher(args.teacher, tmp)
        teacher, _ = build_teacher(teacher_cfg)
        flops = forward_flops(teacher, run.img) / forward_flops(TinyViT("5m", img_size=run.img, num_classes=1000),
                                                                run.img)
        del teacher
        print(f"teacher {args.teacher} / student TinyViT-5M forward FLOPs at {run.img}px: {flops:.1f}×"
              + ("" if flops >= 10 else " — WARNING: goal ≥ 10×"), flush=True)
        aug = dict(img_size=run.img, mixup_alpha=0.0, cutmix_alpha=0.0)
        teacher_ips = teacher_rate(teacher_cfg, aug, run.batch, run.device, run.device.type == "cuda", run.steps,
                                   run.warmup)
        print(f"teacher alone: {teacher_ips:.1f} img/s", flush=True)
        for pipeline in run.pipelines:
            store = tmp / f"store_{pipeline}"
            save_ips = save_store(pipeline, store, teacher_cfg, img_size=run.img, batch=run.batch,
                                  workers=run.workers, data=run_data, device=run.device)
            metrics = {"teacher_img_s": teacher_ips, "save_logits_img_s": save_ips,
                       "save_logits_of_teacher": save_ips / teacher_ips, "teacher_over_student_flops": flops,
                       "data_img_s": data_rate(pipeline, store, run.batch, run.workers, run.device, 1)}
            print(f"[{pipeline}] save_logits {save_ips:.1f} img/s ({metrics['save_logits_of_teacher']:.1%} of the "
                  f"teacher alone); data pipeline alone {metrics['data_img_s']:.1f} img/s", flush=True)
            optim = None
            for mode in run.modes:  # the compute-only bound does not depend on the pipeline: measured once
                got = measure_mode(mode, pipeline, store=store, teacher=teacher_cfg, img_size=run.img,
                                   batch=run.batch, steps=run.steps, warmup=run.warmup, workers=run.workers,
                                   device=run.device, amp_dtype=args.amp_dtype, work_dir=tmp / "runs",
                                   data=run_data, bound=mode not in bound, compile_mode=args.compile,
                                   cudnn_benchmark=args.cudnn_benchmark)
                optim = got["optim"]
                bound.setdefault(mode, got.get("bound_step_s"))
                metrics.update(mode_metrics(mode, run.batch, got["step_s"], bound[mode]))
                print(f"[{pipeline}] {mode:8s} {metrics[f'{mode}_img_s']:.1f} img/s end to end, bound "
                      f"{metrics[f'{mode}_bound_img_s']:.1f} img/s ({metrics[f'{mode}_of_bound']:.1%})", flush=True)
            metrics.update(mode_ratios(pipeline, metrics))
            record = make_record("distill_speed", dataset=run.data["type"], split="train", metrics=metrics,
                                 backbone=backbone_block("tinyvit-5m", "random"),
                                 setting={**run.setting, "pipeline": pipeline, "modes": run.modes, "optim": optim})
            save_record(record, args)
            records.append(record)
    return records


def mode_metrics(mode: str, batch: int, step_s: float, bound_step_s: float) -> dict[str, float]:
    return {f"{mode}_bound_img_s": batch / bound_step_s, f"{mode}_step_s": step_s, f"{mode}_img_s": batch / step_s,
            f"{mode}_of_bound": bound_step_s / step_s}


def mode_ratios(pipeline: str, metrics: dict[str, float]) -> dict[str, float]:
    """The paper's two ratios where both of their modes ran: stored / scratch, online / stored (step time)."""
    ratios = {}
    if "stored_step_s" in metrics and "scratch_step_s" in metrics:
        ratios["stored_over_scratch"] = metrics["stored_step_s"] / metrics["scratch_step_s"]
        print(f"[{pipeline}] stored / scratch = {ratios['stored_over_scratch']:.3f} (goal ≤ 1.05)", flush=True)
    if "online_step_s" in metrics and "stored_step_s" in metrics:
        ratios["online_over_stored"] = metrics["online_step_s"] / metrics["stored_step_s"]
        print(f"[{pipeline}] online / stored = {ratios['online_over_stored']:.3f} (goal ≥ 2; paper supp. §D 1.42×)",
              flush=True)
    return ratios


def summary_table(records: Sequence[dict[str, Any]]) -> str:
    """The figures of every pipeline side by side (one column per record)."""
    rows = [("teacher alone img/s", "teacher_img_s", "{:.1f}"), ("save_logits img/s", "save_logits_img_s", "{:.1f}"),
            ("save_logits / teacher", "save_logits_of_teacher", "{:.1%}"), ("data pipeline img/s", "data_img_s",
                                                                            "{:.1f}")]
    for mode in MODES:
        rows += [(f"{mode} img/s end to end", f"{mode}_img_s", "{:.1f}"),
                 (f"{mode} compute-only bound img/s", f"{mode}_bound_img_s", "{:.1f}"),
                 (f"{mode} end to end / bound", f"{mode}_of_bound", "{:.1%}")]
    rows += [("stored / scratch step time", "stored_over_scratch", "{:.3f}"),
             ("online / stored step time", "online_over_stored", "{:.3f}"),
             ("teacher / student FLOPs", "teacher_over_student_flops", "{:.1f}")]
    width = max(len(r[0]) for r in rows) + 2
    lines = ["".ljust(width) + "".join(r["setting"]["pipeline"].rjust(12) for r in records)]
    for label, key, fmt in rows:
        lines.append(label.ljust(width) + "".join((fmt.format(r["metrics"][key]) if key in r["metrics"] else "—")
                                                  .rjust(12) for r in records))
    return "\n".join(lines)


if __name__ == "__main__":
    main()
