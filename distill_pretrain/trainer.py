"""The student training loop: one run described by a resolved config (`distill_pretrain.config`).

Each step calls only `objective(student, batch)` (a registered `distill_pretrain.objectives.Objective`) and
optimises the student's and the objective's trainable parameters: AdamW, cosine schedule with warm-up (per step),
LR = `optim.lr` × total batch / `optim.base_batch`, gradient clipping, AMP (float16 + GradScaler on CUDA, or
bfloat16 without one, also on the CPU), gradient accumulation, DDP, optional EMA. Resume is exact: student,
objective, optimizer, EMA, scaler, every rank's RNG and the position inside the epoch are saved, and the data
order and augmentation are pure functions of (seed, epoch, index); a resume state of another run is refused
(`distill_pretrain.resume`). The exported checkpoint holds the student only.

The loop does not wait for the device between log lines: loss, objective rates and gradient norm stay device
tensors until the next log line (or resume state, or the end), which reads every step since the last one in one
device→host copy into `history`. AdamW runs fused (`optim.fused`); `compile` compiles the student step.

Images come through a replay pipeline (`distill_pretrain.replay`, `data.pipeline`; in stored mode the store's
own, so the student sees the teacher's pixels): the loader's workers yield raw batches keyed by (epoch, index),
`Trainer.prepare` finishes them on the device (`Replay.finish`), leaves out unreadable samples (counted, logged)
and adds the stored targets; `Trainer.train_step` is one optimizer step on such a batch (what benchmarks drive).

The parts beside the loop: `run_log` (train.log, log.jsonl, TensorBoard, progress lines), `evaluation`
(`Trainer.evaluate`'s counts and records), `resume` (the resume state's identity and reader), `checkpoint`.
"""
from __future__ import annotations

import contextlib
import time
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch
import torch.distributed as dist
from mmengine.config import Config
from torch import nn
from torch.utils.data import DataLoader, Dataset

from contracts.checkpoint import atomic_torch_save, plain, save_checkpoint
from contracts.resume import describe
from contracts.runtime import cudnn_autotune

from .checkpoint import store_identity
from .config import default_pretrain_name, resolve_config
from .dist import DistInfo, select_device, to_device
from .evaluation import EvalDataset, eval_loader, evaluated_file, measure, write_distill_record
from .objectives import build_objective, objective_class
from .optim import build_optimizer, cosine_lr, schedule_from_cfg, set_lr
from .replay import drop_unreadable
from .resume import STATE_FILE, read_resume_state, restore_trainer, trainer_identity, trainer_state
from .run_log import Progress, RunLog, StepStats, read_rows
from .sampler import EpochBatchSampler, EpochCollate, EpochReplay
from .student import build_student, student_meta, student_name


class TrainStep(nn.Module):
    """The student and its objective as one module, so DDP reduces the gradients of both."""

    def __init__(self, student: nn.Module, objective: nn.Module) -> None:
        super().__init__()
        self.student, self.objective = student, objective

    def forward(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        return self.objective(self.student, batch)


class Trainer:
    """One training run described by a config (see `distill_pretrain.config.DEFAULTS` and configs/distill/).

    Without `dist_info` it runs in one process on `cfg.device` (`'auto'`: the GPU when there is one).
    `datasets` ({'train': ..., 'val': ...}, either or both) are data sets a caller built (a transfer harness),
    used instead of building `data.train` / `data.val` from the config; each yields (PIL image, label) like
    `distill_pretrain.data` (an `ImageSamples` also gets its decode-error handling). The config then describes
    them with `data.train=dict(type='external', ...)` (see `distill_pretrain.data.EXTERNAL`).
    """

    def __init__(self, cfg: Config | Mapping[str, Any], work_dir: str | Path, dist_info: DistInfo | None = None,
                 config_sha256: str | None = None, datasets: Mapping[str, Dataset] | None = None) -> None:
        from contracts.provenance import config_sha256 as _sha
        self.cfg = resolve_config(cfg)
        self.work_dir = Path(work_dir)
        self.dist = dist_info or DistInfo(device=select_device(self.cfg.device))
        self.device = self.dist.device
        self.cudnn_benchmark = cudnn_autotune(self.device, bool(self.cfg.cudnn_benchmark))  # None off CUDA
        self.config_sha256 = config_sha256 or _sha(self.cfg.to_dict())
        self.objective_cls = objective_class(self.cfg.mode)
        torch.manual_seed(self.cfg.seed + self.dist.rank)
        self.store = None
        self.teacher, self.teacher_identity = None, None
        self.datasets = dict(datasets or {})
        if set(self.datasets) - {"train", "val"}:
            raise ValueError(f"Trainer(datasets=...): keys {sorted(set(self.datasets) - {'train', 'val'})}; use "
                             "'train' and/or 'val'")
        self._build_data()
        self._build_models()
        self._build_optim()
        self.step = 0          # optimizer steps done
        self.epoch = 0         # epoch in progress
        self.batch_in_epoch = 0  # micro-batches of `epoch` consumed
        self.history: list[dict[str, float]] = []
        self._pending: list[dict[str, Any]] = []  # steps whose device values `_read_pending` has not read yet
        self.run_log = RunLog(self.work_dir, self.dist.is_main)
        self.accepted_changes: list[dict[str, Any]] = []  # changes accepted at resumes, kept in every resume state
        self.resumed_from: tuple[Path, str] | None = None  # (resume file, accepted changes) of this attempt
        self._train_loader: DataLoader | None = None
        self._val_loader: DataLoader | None = None

    # ------------------------------------------------------------------------------------------ building
    def _build_data(self) -> None:
        from . import augment, data
        from .replay import build_replay, replay_for_store
        cfg = self.cfg
        train_cfg = dict(cfg.data.train)
        if cfg.data.on_error is not None:
            train_cfg["on_error"] = cfg.data.on_error
        train_set = self.datasets["train"] if "train" in self.datasets else data.build_dataset(train_cfg)
        data_epochs = None
        if self.objective_cls.needs_store:
            from .store import LogitStore
            self.store = LogitStore.open(cfg.store.path, expect=cfg.store.expect)
            # the store's own transform, base seed and (by default) pipeline; refuses a data set other than the one
            # it was saved over, and another pipeline unless store.approximate_replay
            self.replay = replay_for_store(self.store, train_set, cfg.data.pipeline,
                                           approximate=bool(cfg.store.approximate_replay))
            data_epochs = [self._store_epoch(e) for e in range(int(cfg.epochs))]  # a missing epoch fails now
            if hasattr(self.store, "require_epochs"):  # the store's own check (checksums) of what this run reads
                self.store.require_epochs(sorted(set(data_epochs)))
        else:
            self.replay = build_replay(cfg.data.pipeline or augment.PIPELINE, train_set,
                                       augment.AugmentConfig.coerce(cfg.data.aug), int(cfg.data.aug_seed))
        self.train_set = EpochReplay(self.replay.dataset, data_epochs)
        self.aug_cfg = self.replay.dataset.cfg
        accum = int(cfg.optim.accum_steps)
        self.sampler = EpochBatchSampler(len(self.train_set), int(cfg.data.batch_size), self.dist.rank,
                                         self.dist.world_size, seed=int(cfg.seed),
                                         max_batches=cfg.max_steps_per_epoch and cfg.max_steps_per_epoch * accum,
                                         multiple_of=accum)
        self.batches_per_epoch = self.sampler.num_batches
        self.steps_per_epoch = self.batches_per_epoch // accum
        self.total_batch = int(cfg.data.batch_size) * self.dist.world_size * accum
        self.val_set = None
        if "val" in self.datasets:
            self.val_set = EvalDataset(self.datasets["val"], self.aug_cfg)
        elif cfg.data.val is not None:
            self.val_set = EvalDataset(data.build_dataset(cfg.data.val), self.aug_cfg)

    def _store_epoch(self, epoch: int) -> int:
        epochs = self.store.epochs
        if epoch in epochs:
            return epoch
        if self.cfg.store.cycle_epochs and epochs:
            return epochs[epoch % len(epochs)]
        raise ValueError(f"store {self.cfg.store.path} has no epoch {epoch} of the {self.cfg.epochs} this run "
                         f"trains (present: {epochs}); save it with `python -m distill_pretrain.save_logits "
                         "--epochs` or set store.cycle_epochs=True")

    def _num_classes(self) -> int:
        cfg = self.cfg
        if cfg.num_classes is not None:  # 0: no classifier (pooled features only)
            return int(cfg.num_classes)
        if self.store is not None:
            return int(self.store.num_classes)
        if self.teacher is not None:
            return int(self.teacher_identity["num_classes"])
        classes = getattr(self.replay.dataset.dataset, "classes", None)
        if classes:
            return len(classes)
        raise ValueError("config: set num_classes (the data set does not list its classes)")

    def _build_models(self) -> None:
        cfg = self.cfg
        if self.objective_cls.needs_teacher or (cfg.eval_teacher_agreement and cfg.teacher):
            from .teachers import TeacherProbs, build_teacher
            model, identity = build_teacher(cfg.teacher)
            self.teacher = TeacherProbs(model, identity, self.aug_cfg.mean, self.aug_cfg.std).to(self.device)
            self.teacher_identity = plain(identity)
        self.num_classes = self._num_classes()
        if self.store is not None and self.num_classes != self.store.num_classes:
            raise ValueError(f"config: num_classes={self.num_classes} but store {cfg.store.path} holds "
                             f"{self.store.num_classes}-class teacher targets")
        self.model = build_student(cfg.student, self.num_classes).to(self.device)
        self.objective = build_objective(cfg.objective, self.model).to(self.device)
        if self.objective.needs_teacher:
            self.objective.set_teacher(self.teacher)
        init_pretrain = None
        if cfg.student.init:
            from backbones import read_checkpoint
            init_pretrain = (read_checkpoint(cfg.student.init).get("meta") or {}).get("pretrain")
        self.pretrain_name = default_pretrain_name(cfg, init_pretrain)
        self.ema = None
        if cfg.ema.decay:
            from timm.utils import ModelEmaV3
            self.ema = ModelEmaV3(self.model, decay=float(cfg.ema.decay))
        self.step_module = TrainStep(self.model, self.objective)
        self.ddp_step: nn.Module = self.step_module
        if self.dist.world_size > 1:
            self.ddp_step = nn.parallel.DistributedDataParallel(
                self.step_module, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=self.objective.find_unused_parameters)
        # compile the DDP-wrapped module (PyTorch's advice: DDPOptimizer splits the graph at its buckets); the
        # uncompiled one stays for no_sync, evaluation and checkpoints (they share the parameters)
        self.forward_step = torch.compile(self.ddp_step, mode=cfg.compile) if cfg.compile else self.ddp_step
        # CUDA graphs (reduce-overhead, max-autotune on CUDA) overwrite a graph's outputs at its next replay
        self._cuda_graphs = bool(cfg.compile) and cfg.compile != "default" and "no-cudagraphs" not in cfg.compile \
            and self.device.type == "cuda"

    def _build_optim(self) -> None:
        o = self.cfg.optim
        self.schedule = schedule_from_cfg(o, self.steps_per_epoch, int(self.cfg.epochs), self.total_batch)
        self.optimizer = build_optimizer(self.model, self.schedule["base_lr"], o.weight_decay, tuple(o.betas),
                                         o.eps, o.layer_decay, extra=self.objective, fused=o.fused)
        self.amp_dtype = getattr(torch, self.cfg.amp_dtype)
        # float16 autocast needs CUDA (and a GradScaler); bfloat16 runs on the CPU too and needs no scaler
        self.use_amp = bool(self.cfg.amp) and (self.device.type == "cuda" or self.amp_dtype == torch.bfloat16)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp and self.amp_dtype == torch.float16)

    @property
    def optim_description(self) -> str:
        """`AdamW(fused)` or `AdamW(foreach)`, for the logs and benchmark records."""
        return f"AdamW({'fused' if self.optimizer.defaults.get('fused') else 'foreach'})"

    @property
    def amp_description(self) -> str:
        """`float16+GradScaler`, `bfloat16` or `off (...)`, for the logs."""
        if self.use_amp:
            return f"{self.cfg.amp_dtype}{'+GradScaler' if self.scaler.is_enabled() else ''}"
        return "off" if not self.cfg.amp else f"off ({self.cfg.amp_dtype} autocast needs CUDA; bfloat16 runs on cpu)"

    # --------------------------------------------------------------------------------------- resume state
    @cached_property
    def run_identity(self) -> dict[str, Any]:
        """What this run's result depends on, compared field by field on resume (`distill_pretrain.resume`)."""
        return trainer_identity(self)

    def state_dict(self) -> dict[str, Any]:
        """Everything exact resume needs (plain types + tensors), and the identity of the run it belongs to."""
        self._read_pending()
        return trainer_state(self)

    def load_state_dict(self, state: Mapping[str, Any], accept: bool | Iterable[str] = False,
                        source: str | Path = "resume state") -> str:
        """Continue from `state` if it belongs to this run (`distill_pretrain.resume.restore_trainer`: another
        run's raises `ResumeError` naming `source` and every differing field, unless `accept`ed); returns the
        accepted changes, described."""
        changes = restore_trainer(self, state, accept, source)
        self._pending = []
        return describe(changes)

    def save_resume(self) -> None:
        state = self.state_dict()  # collective under DDP: every rank calls it
        if self.dist.is_main:
            atomic_torch_save(state, self.work_dir / STATE_FILE)

    def resume(self, path: str | Path | None = None, accept: bool | Iterable[str] = False) -> bool:
        """Continue from `resume.pth` (or `path`) if the file is there; returns whether it was. The file is read and
        its run compared before anything in the work dir changes: a bad file or another run's state raises
        `ResumeError` naming the file and the cause or every differing field (`accept`: see `load_state_dict`)."""
        path = Path(path) if path else self.work_dir / STATE_FILE
        if not path.is_file():
            return False
        changes = self.load_state_dict(read_resume_state(path), accept, source=path)
        self.resumed_from = (path, changes)
        return True

    # ---------------------------------------------------------------------------------------- checkpoint
    def load_weights(self, path: str | Path) -> None:
        """Load a student checkpoint (any format `backbones.load_pretrained` reads) for evaluation."""
        from backbones import load_pretrained
        if hasattr(self.model, "get_layer_depth"):
            load_pretrained(self.model, path, strict=True)
        else:
            from backbones import load_checkpoint
            self.model.load_state_dict(load_checkpoint(path)["state_dict"])

    def checkpoint_meta(self, epoch: int) -> dict[str, Any]:
        from contracts.provenance import git_commit
        meta = student_meta(self.model, self.cfg.student)
        meta.update(epoch=int(epoch), step=int(self.step), objective=self.cfg.mode, pretrain=self.pretrain_name,
                    config_sha256=self.config_sha256, git_commit=git_commit(), teacher=self._teacher_identity(),
                    store=self._store_identity())
        if self.accepted_changes:  # the run was resumed with changes someone accepted (--resume-anyway)
            meta["accepted_resume_changes"] = self.accepted_changes
        return meta

    def _teacher_identity(self) -> dict[str, Any] | None:
        if self.store is not None:
            teacher = self.store.manifest.get("teacher")
            return plain(teacher) if teacher is not None else None
        return self.teacher_identity if self.objective.needs_teacher else None

    def _store_identity(self) -> dict[str, Any] | None:
        if self.store is None:
            return None
        return {**store_identity(self.store.manifest), "path": str(self.cfg.store.path)}

    def save_checkpoints(self, epoch: int, keep: bool = False) -> None:
        """`checkpoint.pth` (the student) and, with EMA, `checkpoint_ema.pth` (its EMA); with `keep`, also the student
        as `checkpoint_epoch{epoch + 1}.pth`, which later epochs do not overwrite; main rank only."""
        if not self.dist.is_main:
            return
        meta = self.checkpoint_meta(epoch)
        save_checkpoint(self.work_dir / "checkpoint.pth", self.model.state_dict(), meta)
        if keep:
            save_checkpoint(self.work_dir / f"checkpoint_epoch{epoch + 1}.pth", self.model.state_dict(), meta)
        if self.ema is not None:
            save_checkpoint(self.work_dir / "checkpoint_ema.pth", self.ema.module.state_dict(), {**meta, "ema": True})

    # ------------------------------------------------------------------------------------------- logging
    def log(self, msg: str) -> None:
        """A line of `train.log` (main rank); the first one opens the run's logs (`RunLog.open`)."""
        self.run_log.info(msg)

    def _scalars(self, values: Mapping[str, float], step: int) -> None:
        self.run_log.scalars(values, step)

    # ------------------------------------------------------------------------------------------ training
    def loader(self) -> DataLoader:
        """The run's loader, iterating from the current position (`epoch`, `batch_in_epoch`) to the last epoch:
        one iterator crosses epoch boundaries, workers persist and prefetch, batches are pinned for the GPU. Its
        batches are raw (the replay pipeline's collate); `prepare` finishes them."""
        self.sampler.set_epoch(self.epoch, self.batch_in_epoch, int(self.cfg.epochs))
        if self._train_loader is None:
            workers = int(self.cfg.data.num_workers)
            # An explicit generator: creating the iterator must not draw from the global RNG (exact resume).
            gen = torch.Generator().manual_seed(int(self.cfg.seed) * 7919)
            self._train_loader = DataLoader(
                self.train_set, batch_sampler=self.sampler, num_workers=workers,
                collate_fn=EpochCollate(self.replay.collate), pin_memory=self.device.type == "cuda", generator=gen,
                persistent_workers=workers > 0, prefetch_factor=int(self.cfg.data.prefetch_factor) if workers else None)
        return self._train_loader

    def prepare(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        """A loader batch → what the objective takes: the replay pipeline's device stage (`Replay.finish`: final
        images on the device), the samples with unreadable images left out (their number in ``skipped``; only a
        data set with on_error='skip' yields them), and the stored teacher targets (the store's seeds checked)."""
        batch, skipped = drop_unreadable(self.replay.finish(batch, self.device))
        batch["skipped"] = skipped
        batch["labels_index_classes"] = bool(self.cfg.labels_index_classes)
        if self.store is not None and len(batch["index"]):
            data_epoch = self.train_set.data_epochs[int(batch["epoch"][0])]
            sparse = self.store.read(data_epoch, batch["index"].numpy())
            seeds = torch.as_tensor(sparse.seeds.astype("int64"))
            if not torch.equal(seeds, batch["seed"]):
                bad = int((seeds != batch["seed"]).nonzero()[0, 0])
                raise RuntimeError(f"store {self.cfg.store.path} epoch {data_epoch}: seed {int(seeds[bad])} != "
                                   f"replayed seed {int(batch['seed'][bad])} for index {int(batch['index'][bad])}: "
                                   "store and augmentation disagree")
            batch["teacher_index"] = to_device(torch.as_tensor(sparse.indices).long(), self.device)
            batch["teacher_value"] = to_device(torch.as_tensor(sparse.values).float(), self.device)
        return batch

    def train_step(self, batch: Mapping[str, Any], read: bool = True) -> dict[str, Any]:
        """One optimizer step on one prepared batch (`prepare`), without accumulation: forward + backward under
        AMP, gradient clipping, optimizer and scaler step, EMA update. Leaves the data position, the step count and
        the learning rate as they are (the training loop owns those); returns the objective's outputs and
        ``grad_norm``: as floats (one device→host copy), or with ``read=False`` as they are (device tensors: no
        wait for the device, so a caller can queue many steps)."""
        out = self._backward(batch, accum=1, sync=True)
        grad_norm = self._optimizer_step()
        if not read:
            return {**{k: v.detach() if torch.is_tensor(v) else v for k, v in out.items()}, "grad_norm": grad_norm}
        return read_rows([{**{k: (v, 1) for k, v in out.items()}, "grad_norm": (grad_norm, 1)}])[0]

    def _backward(self, batch: Mapping[str, Any], accum: int, sync: bool, first: bool = True) -> dict[str, Any]:
        """Forward and (scaled, divided by ``accum``) backward of one micro-batch; DDP reduces only when ``sync``;
        ``first``: the first micro-batch of an optimizer step."""
        ctx = self.ddp_step.no_sync() if not sync else contextlib.nullcontext()
        if self._cuda_graphs and first:  # earlier graph outputs are dead; not within an accumulation (the .grads)
            torch.compiler.cudagraph_mark_step_begin()
        with ctx, torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.use_amp):
            out = self.forward_step(batch)
        if self._cuda_graphs:  # kept past this step (logs): copies, as the next replay overwrites the outputs
            out = {k: v.clone() if torch.is_tensor(v) else v for k, v in out.items()}
        self.scaler.scale(out["loss"] / accum).backward()
        return out

    def _optimizer_step(self) -> torch.Tensor | float:
        """Clip, step, zero the gradients and update the EMA; returns the gradient norm (a device tensor, not read;
        nan without clipping)."""
        grad_norm: torch.Tensor | float = float("nan")
        if self.cfg.optim.clip_grad:
            self.scaler.unscale_(self.optimizer)
            grad_norm = torch.nn.utils.clip_grad_norm_(self._params(), self.cfg.optim.clip_grad).detach()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update(self.model, step=self.step)
        return grad_norm

    def _read_pending(self) -> None:
        """Read the device values of the steps not read yet (one device→host copy) into `history`."""
        if self._pending:
            self.history += read_rows(self._pending)
            self._pending = []

    def _set_train_mode(self) -> None:
        self.step_module.train()
        if self.cfg.freeze_bn_stats:
            for m in self.model.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()

    def _params(self) -> list[nn.Parameter]:
        return [p for p in self.step_module.parameters() if p.requires_grad]

    def train(self) -> list[dict[str, float]]:
        """Train until `epochs` (or `stop_after_steps` more steps); returns the per-step history."""
        cfg, accum = self.cfg, int(self.cfg.optim.accum_steps)
        total_steps = int(self.schedule["total_steps"])
        stop_at = total_steps if cfg.stop_after_steps is None else min(total_steps,
                                                                       self.step + int(cfg.stop_after_steps))
        self.log(self._run_line(total_steps))
        if self.resumed_from is not None:
            self.run_log.mark_resume(self.resumed_from[0], self.epoch, self.batch_in_epoch, self.step,
                                     self.resumed_from[1])
        if cfg.eval_before_train and self.step == 0 and self.val_set is not None:
            self.evaluate(-1)
        progress, stats, saved = Progress(self.step, stop_at), StepStats(), False
        self._set_train_mode()
        for batch in (self.loader() if self.step < stop_at else ()):
            epoch, micro, saved = self.epoch, self.batch_in_epoch % accum, False
            lr = cosine_lr(self.step, **self.schedule)
            set_lr(self.optimizer, lr)
            batch = self.prepare(batch)
            progress.add_batch(batch, self.dist.world_size)
            if len(batch["index"]):
                stats.add(self._backward(batch, accum, sync=micro == accum - 1 or self.dist.world_size == 1,
                                         first=micro == 0))
            elif self.dist.world_size > 1:  # the other ranks' gradient all-reduce would wait for this one
                raise RuntimeError(f"epoch {epoch}: every image of a micro-batch was unreadable: {batch['errors']}")
            self.batch_in_epoch += 1
            if micro == accum - 1:
                grad_norm = self._optimizer_step()
                self.step += 1
                self._pending.append({"step": self.step, **stats.row(lr, grad_norm, progress.skipped),
                                      "step_s": progress.step_done()})
                stats = StepStats()
                if self.step % int(cfg.log_interval) == 0 or self.step == stop_at:
                    self._log_step(epoch, lr, total_steps, progress)
                if cfg.save_interval and self.step % int(cfg.save_interval) == 0:
                    self.save_resume()
                    saved = True
            if self.batch_in_epoch >= self.batches_per_epoch:
                self._end_epoch(epoch, total_steps)
                saved = True
                progress.restart()
            if self.step >= stop_at:
                break
        if not saved:
            self.save_resume()
        self._read_pending()
        if self.batch_in_epoch:  # stopped inside an epoch: leave a checkpoint of where it is
            self.save_checkpoints(self.epoch)
        self.log(progress.summary(self.step, total_steps))
        self.run_log.flush()
        return self.history

    def _run_line(self, total_steps: int) -> str:
        """The first line of an attempt: what runs, how, where."""
        cfg = self.cfg
        return (f"objective={cfg.mode} student={student_name(self.model, cfg.student)} classes={self.num_classes} "
                f"samples={len(self.train_set)} world={self.dist.world_size} batch/rank={cfg.data.batch_size} "
                f"accum={cfg.optim.accum_steps} total_batch={self.total_batch} lr={self.schedule['base_lr']:.3g} "
                f"steps/epoch={self.steps_per_epoch} total_steps={total_steps} device={self.device}"
                f"{'' if self.cudnn_benchmark is None else f' cudnn_benchmark={self.cudnn_benchmark}'} "
                f"amp={self.amp_description} optim={self.optim_description} compile={cfg.compile or 'off'} "
                f"workers={cfg.data.num_workers} pipeline={self.replay.pipeline} pretrain={self.pretrain_name}")

    def _log_step(self, epoch: int, lr: float, total_steps: int, progress: Progress) -> None:
        """Read the steps since the last line (the wait for the device is the last step's time) and log the last."""
        waited = -time.perf_counter()
        self._read_pending()
        waited += time.perf_counter()
        self.history[-1]["step_s"] += waited
        progress.add_wait(waited)
        record = {k: v for k, v in self.history[-1].items() if k not in ("step", "step_s")}
        line, ips = progress.line(epoch, self.batch_in_epoch // int(self.cfg.optim.accum_steps),
                                  self.steps_per_epoch, self.step, total_steps, record, lr)
        self.log(line)
        self._scalars({**{f"train/{k}": v for k, v in record.items()}, "train/img_per_s": ips}, self.step)

    def _end_epoch(self, epoch: int, total_steps: int) -> None:
        """After the last batch of `epoch`: checkpoints (kept every `keep_interval` epochs), evaluation (every
        `eval_interval` epochs and after the last step), resume state."""
        cfg = self.cfg
        self.epoch += 1
        self.batch_in_epoch = 0
        keep = bool(cfg.keep_interval) and self.epoch % int(cfg.keep_interval) == 0
        self.save_checkpoints(epoch, keep=keep)
        if self.val_set is not None and cfg.eval_interval and (self.epoch % int(cfg.eval_interval) == 0
                                                                or self.step >= total_steps):
            self.evaluate(epoch)
        self.save_resume()
        self._set_train_mode()

    # ---------------------------------------------------------------------------------------- evaluation
    def evaluate(self, epoch: int | None = None, checkpoint: str | Path | None = None) -> dict[str, float]:
        """top-1/top-5 against labels (when the classes match) and top-1 agreement with the teacher
        (`distill_pretrain.evaluation.measure`), logged and (main rank, `record`) written as a `distill` record.

        Evaluates the EMA when there is one (its record names `checkpoint_ema.pth`), else the student; with
        `checkpoint` (weights loaded by `load_weights`), the student, recorded under that file.
        """
        if self.val_set is None:
            raise ValueError("config: data.val is not set")
        cfg = self.cfg
        use_ema = self.ema is not None and checkpoint is None
        if self._val_loader is None:
            self._val_loader = eval_loader(self.val_set, self.dist, int(cfg.data.batch_size),
                                           int(cfg.data.num_workers), int(cfg.seed))
        metrics, seen = measure(self.ema.module if use_ema else self.model, self._val_loader, self.device,
                                teacher=self.teacher, num_classes=self.num_classes,
                                world_size=self.dist.world_size, amp_dtype=self.amp_dtype, use_amp=self.use_amp,
                                labels_index_classes=bool(cfg.labels_index_classes))
        self._set_train_mode()
        shown = " ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        self.log(f"eval epoch {epoch}{' (EMA)' if use_ema else ''}: {shown} ({seen} images, device={self.device} "
                 f"amp={self.amp_description})")
        self._scalars({f"val/{k}": v for k, v in metrics.items()}, self.step)
        if self.dist.is_main and cfg.record and metrics:  # nothing measured (no labels, no teacher): no record
            weights = evaluated_file(self.work_dir, use_ema, checkpoint, self.step, cfg.student.init)
            write_distill_record(cfg, metrics, weights, student_name(self.model, cfg.student),
                                 {"epoch": epoch, "step": self.step, "ema": use_ema,
                                  "img_size": int(self.aug_cfg.img_size), "total_batch": self.total_batch,
                                  "device": str(self.device), "amp": self.amp_description,
                                  "pipeline": self.replay.pipeline, "work_dir": str(self.work_dir)},
                                 self.work_dir / "records")
        return metrics
