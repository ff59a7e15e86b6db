"""The student training loop: one run described by a resolved config (`distill_pretrain.config`).

Each step calls only `objective(student, batch)` (a registered `distill_pretrain.objectives.Objective`) and
optimises the student's and the objective's trainable parameters: AdamW, cosine schedule with warm-up (per step),
LR = `optim.lr` × total batch / `optim.base_batch`, gradient clipping, AMP (float16 + GradScaler on CUDA, or
bfloat16 without one, also on the CPU), gradient accumulation, DDP, optional EMA. Resume is exact: student,
objective, optimizer, EMA, scaler, every rank's RNG and the position inside the epoch are saved, and the data
order and augmentation are pure functions of (seed, epoch, index). The exported checkpoint holds the student only.

The loop does not wait for the device between log lines: loss, objective rates and gradient norm stay device
tensors until the next log line (or resume state, or the end), which reads every step since the last one in one
device→host copy into `history`. AdamW runs fused (`optim.fused`); `compile` compiles the student step.

Images come through a replay pipeline (`distill_pretrain.replay`, `data.pipeline`; in stored mode the store's
own, so the student sees the teacher's pixels): the loader's workers yield raw batches keyed by (epoch, index),
`Trainer.prepare` finishes them on the device (`Replay.finish`), leaves out unreadable samples (counted, logged)
and adds the stored targets; `Trainer.train_step` is one optimizer step on such a batch (what benchmarks drive).
"""
from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.distributed as dist
from mmengine.config import Config
from torch import nn
from torch.utils.data import DataLoader, Dataset

from contracts.runtime import cudnn_autotune

from .checkpoint import atomic_torch_save, plain, rng_state, save_checkpoint, set_rng_state
from .config import default_pretrain_name, resolve_config
from .dist import DistInfo, select_device, to_device
from .objectives import build_objective, objective_class
from .optim import build_optimizer, cosine_lr, schedule_from_cfg, set_lr
from .replay import drop_unreadable
from .sampler import EpochBatchSampler, EpochCollate, EpochReplay
from .student import build_student, student_meta, student_name

RESUME_FORMAT = "tinyvit-bench/resume/v2"


def open_run_log(work_dir: str | Path, main: bool = True) -> None:
    """Make `work_dir/train.log` (main rank; others log to the console only) the log of the run about to start:
    one MMEngine logger per work dir, so a second run in the same process does not write into the first's file."""
    from mmengine.logging import MMLogger
    work_dir = Path(work_dir)
    MMLogger.get_instance(f"distill_pretrain:{work_dir.resolve()}",
                          log_file=str(work_dir / "train.log") if main else None)


class TrainStep(nn.Module):
    """The student and its objective as one module, so DDP reduces the gradients of both."""

    def __init__(self, student: nn.Module, objective: nn.Module) -> None:
        super().__init__()
        self.student, self.objective = student, objective

    def forward(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        return self.objective(self.student, batch)


class EvalDataset(Dataset):
    """(image, label) of a labelled data set through the deterministic eval transform (resize, centre crop)."""

    def __init__(self, dataset: Dataset, train_aug: Any) -> None:
        from .augment import AugmentConfig
        self.dataset = dataset
        self.transform = AugmentConfig.coerce({**train_aug.to_dict(), "mode": "eval"}).build_transform()

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image, label = self.dataset[i]
        if hasattr(image, "convert"):
            image = image.convert("RGB")
        return self.transform(image), -1 if label is None else int(label)


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
        self._tb = None
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
    def state_dict(self) -> dict[str, Any]:
        """Everything exact resume needs (plain types + tensors)."""
        self._read_pending()
        rngs = [rng_state()]
        if self.dist.world_size > 1:
            rngs = [None] * self.dist.world_size
            dist.all_gather_object(rngs, rng_state())
        return {"format": RESUME_FORMAT, "config_sha256": self.config_sha256,
                "model": self.model.state_dict(), "objective": self.objective.state_dict(),
                "optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict(),
                "ema": self.ema.module.state_dict() if self.ema else None,
                "rng": rngs, "step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                "world_size": self.dist.world_size, "history": self.history}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("format") != RESUME_FORMAT:
            raise ValueError(f"not a resume state ({state.get('format')!r} != {RESUME_FORMAT!r})")
        if state["world_size"] != self.dist.world_size:
            raise ValueError(f"resume state was written by {state['world_size']} ranks, this run has "
                             f"{self.dist.world_size}: the data position would not match")
        self.model.load_state_dict(state["model"])
        self.objective.load_state_dict(state["objective"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None and state.get("ema") is not None:
            self.ema.module.load_state_dict(state["ema"])
        set_rng_state(state["rng"][self.dist.rank])
        self.step, self.epoch, self.batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        self.history = list(state.get("history", []))
        self._pending = []

    def save_resume(self) -> None:
        state = self.state_dict()  # collective under DDP: every rank calls it
        if self.dist.is_main:
            atomic_torch_save(state, self.work_dir / "resume.pth")

    def resume(self, path: str | Path | None = None) -> bool:
        """Load `resume.pth` (or `path`) if present; returns whether it did."""
        path = Path(path) if path else self.work_dir / "resume.pth"
        if not path.is_file():
            return False
        self.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        self.log(f"resumed from {path}: epoch {self.epoch}, batch {self.batch_in_epoch}, step {self.step}")
        return True

    # ---------------------------------------------------------------------------------------- checkpoint
    def load_weights(self, path: str | Path) -> None:
        """Load a student checkpoint (any format `backbones.load_pretrained` reads) for evaluation."""
        from backbones import load_pretrained
        if hasattr(self.model, "get_layer_depth"):
            load_pretrained(self.model, path, strict=True)
        else:
            from .checkpoint import load_checkpoint
            self.model.load_state_dict(load_checkpoint(path)["state_dict"])

    def checkpoint_meta(self, epoch: int) -> dict[str, Any]:
        from contracts.provenance import git_commit
        meta = student_meta(self.model, self.cfg.student)
        meta.update(epoch=int(epoch), step=int(self.step), objective=self.cfg.mode, pretrain=self.pretrain_name,
                    config_sha256=self.config_sha256, git_commit=git_commit(), teacher=self._teacher_identity(),
                    store=self._store_identity())
        return meta

    def _teacher_identity(self) -> dict[str, Any] | None:
        if self.store is not None:
            teacher = self.store.manifest.get("teacher")
            return plain(teacher) if teacher is not None else None
        return self.teacher_identity if self.objective.needs_teacher else None

    def _store_identity(self) -> dict[str, Any] | None:
        if self.store is None:
            return None
        manifest = self.store.manifest
        keep = ("format", "num_classes", "topk", "value_format", "index_dtype", "value_dtype", "transform_hash",
                "base_seed", "seed_policy", "chunk_size", "dataset", "pipeline")
        ident = {k: manifest[k] for k in keep if k in manifest}
        ident["path"] = str(self.cfg.store.path)
        return plain(ident)

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
        if self.dist.is_main:
            from mmengine.logging import print_log
            print_log(msg, logger="current")

    def _scalars(self, values: Mapping[str, float], step: int) -> None:
        if not self.dist.is_main:
            return
        with open(self.work_dir / "log.jsonl", "a") as f:
            f.write(json.dumps({"step": step, **values}) + "\n")
        if self._tb is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self._tb = SummaryWriter(str(self.work_dir / "tb"))
            except ImportError:
                self._tb = False
        if self._tb:
            for k, v in values.items():
                self._tb.add_scalar(k, v, step)

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
        return _read_rows([{**{k: (v, 1) for k, v in out.items()}, "grad_norm": (grad_norm, 1)}])[0]

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
            self.history += _read_rows(self._pending)
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
        cfg = self.cfg
        self.work_dir.mkdir(parents=True, exist_ok=True)
        accum = int(cfg.optim.accum_steps)
        total_steps = int(self.schedule["total_steps"])
        stop_at = total_steps
        if cfg.stop_after_steps is not None:
            stop_at = min(total_steps, self.step + int(cfg.stop_after_steps))
        self.log(f"objective={cfg.mode} student={student_name(self.model, cfg.student)} classes={self.num_classes} "
                 f"samples={len(self.train_set)} world={self.dist.world_size} batch/rank={cfg.data.batch_size} "
                 f"accum={accum} total_batch={self.total_batch} lr={self.schedule['base_lr']:.3g} "
                 f"steps/epoch={self.steps_per_epoch} total_steps={total_steps} device={self.device}"
                 f"{'' if self.cudnn_benchmark is None else f' cudnn_benchmark={self.cudnn_benchmark}'} "
                 f"amp={self.amp_description} optim={self.optim_description} compile={cfg.compile or 'off'} "
                 f"workers={cfg.data.num_workers} pipeline={self.replay.pipeline} pretrain={self.pretrain_name}")
        if cfg.eval_before_train and self.step == 0 and self.val_set is not None:
            self.evaluate(-1)
        t_window, n_window, t_run, steps_run = time.perf_counter(), 0, time.perf_counter(), 0
        run_start_step, saved = self.step, False
        skipped, errors = 0, []  # samples with unreadable images left out (data.on_error='skip'), first messages
        stats = _Window()
        t_step = time.perf_counter()
        self._set_train_mode()
        for batch in (self.loader() if self.step < stop_at else ()):
            epoch, micro, saved = self.epoch, self.batch_in_epoch % accum, False
            lr = cosine_lr(self.step, **self.schedule)
            set_lr(self.optimizer, lr)
            batch = self.prepare(batch)
            skipped += batch["skipped"]
            if batch["skipped"] and len(errors) < 5:
                errors += batch["errors"][:5 - len(errors)]
            if len(batch["index"]):
                stats.add(self._backward(batch, accum, sync=micro == accum - 1 or self.dist.world_size == 1,
                                         first=micro == 0))
            elif self.dist.world_size > 1:  # the other ranks' gradient all-reduce would wait for this one
                raise RuntimeError(f"epoch {epoch}: every image of a micro-batch was unreadable: {batch['errors']}")
            self.batch_in_epoch += 1
            n_window += batch["image"].shape[0] * self.dist.world_size
            if micro == accum - 1:
                grad_norm = self._optimizer_step()
                self.step += 1
                steps_run += 1
                now = time.perf_counter()
                self._pending.append({"step": self.step, **stats.row(lr, grad_norm, skipped), "step_s": now - t_step})
                stats = _Window()
                if self.step % int(cfg.log_interval) == 0 or self.step == stop_at:
                    self._read_pending()  # waits for the device: the wait is this step's time
                    waited = time.perf_counter() - now
                    now += waited
                    self.history[-1]["step_s"] += waited
                    record = {k: v for k, v in self.history[-1].items() if k not in ("step", "step_s")}
                    ips = n_window / max(now - t_window, 1e-9)
                    eta = (now - t_run) / steps_run * (stop_at - self.step)
                    extras = " ".join(f"{k} {v:.3f}" for k, v in record.items()
                                      if k not in ("loss", "lr", "grad_norm", "skipped"))
                    self.log(f"epoch {epoch} [{self.batch_in_epoch // accum}/{self.steps_per_epoch}] step "
                             f"{self.step}/{total_steps} loss {record['loss']:.4f} lr {lr:.3e} grad_norm "
                             f"{record['grad_norm']:.3f} {extras} {ips:.1f} img/s eta {_fmt_eta(eta)}"
                             + (f" | {skipped} unreadable images skipped" if skipped else ""))
                    self._scalars({**{f"train/{k}": v for k, v in record.items()}, "train/img_per_s": ips}, self.step)
                    t_window, n_window = now, 0
                t_step = now
                if cfg.save_interval and self.step % int(cfg.save_interval) == 0:
                    self.save_resume()
                    saved = True
            if self.batch_in_epoch >= self.batches_per_epoch:
                self.epoch += 1
                self.batch_in_epoch = 0
                keep = bool(cfg.keep_interval) and self.epoch % int(cfg.keep_interval) == 0
                self.save_checkpoints(epoch, keep=keep)
                if self.val_set is not None and cfg.eval_interval and (self.epoch % int(cfg.eval_interval) == 0
                                                                        or self.step >= total_steps):
                    self.evaluate(epoch)
                self.save_resume()
                saved = True
                self._set_train_mode()
                t_step = time.perf_counter()  # checkpoint / eval time is not the next step's
            if self.step >= stop_at:
                break
        if not saved:
            self.save_resume()
        self._read_pending()
        if self.batch_in_epoch:  # stopped inside an epoch: leave a checkpoint of where it is
            self.save_checkpoints(self.epoch)
        self.log(f"stopped at step {self.step}/{total_steps} after {steps_run} steps "
                 f"({(time.perf_counter() - t_run) / max(steps_run, 1):.3f} s/step); from step {run_start_step}"
                 + (f"; skipped {skipped} samples with unreadable images: {'; '.join(errors)}" if skipped else ""))
        return self.history

    # ---------------------------------------------------------------------------------------- evaluation
    @torch.no_grad()
    def evaluate(self, epoch: int | None = None, checkpoint: str | Path | None = None) -> dict[str, float]:
        """top-1/top-5 against labels (when the classes match) and top-1 agreement with the teacher.

        Evaluates the EMA when there is one (its record names `checkpoint_ema.pth`), else the student; with
        `checkpoint` (weights loaded by `load_weights`), the student, recorded under that file.
        """
        if self.val_set is None:
            raise ValueError("config: data.val is not set")
        use_ema = self.ema is not None and checkpoint is None
        model = self.ema.module if use_ema else self.model
        model.eval()
        counts = torch.zeros(5, dtype=torch.float64)  # seen, top1, top5, agree top-1, teacher top-1 in top-5
        teacher_votes = torch.zeros(max(self.num_classes, 1), dtype=torch.float64)
        for images, labels in self._eval_loader():
            images = images.to(self.device, non_blocking=True)
            with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.use_amp):
                logits = model(images).float()
                t_top1 = self.teacher(images).argmax(-1) if self.teacher is not None else None
            counts[0] += len(labels)
            labels = labels.to(self.device)
            top5 = logits.topk(min(5, logits.shape[1]), dim=-1).indices
            counts[1] += (top5[:, 0] == labels).sum().item()
            counts[2] += (top5 == labels[:, None]).any(1).sum().item()
            if t_top1 is not None:
                counts[3] += (t_top1 == top5[:, 0]).sum().item()
                counts[4] += (top5 == t_top1[:, None]).any(1).sum().item()
                votes = torch.bincount(t_top1.cpu(), minlength=len(teacher_votes))
                teacher_votes += votes[:len(teacher_votes)].double()
        if self.dist.world_size > 1:
            dist.all_reduce(counts)
        seen = max(counts[0].item(), 1)
        metrics = ({"top1": counts[1].item() / seen, "top5": counts[2].item() / seen}
                   if self.cfg.labels_index_classes else {})
        if self.teacher is not None:
            if self.dist.world_size > 1:
                dist.all_reduce(teacher_votes)
            metrics["teacher_agreement_top1"] = counts[3].item() / seen
            metrics["teacher_top1_in_student_top5"] = counts[4].item() / seen
            # what a constant student predicting the teacher's most frequent class would score
            metrics["teacher_majority_baseline"] = teacher_votes.max().item() / seen
        self._set_train_mode()
        shown = " ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        self.log(f"eval epoch {epoch}{' (EMA)' if use_ema else ''}: {shown} ({int(seen)} images, device={self.device} "
                 f"amp={self.amp_description})")
        self._scalars({f"val/{k}": v for k, v in metrics.items()}, self.step)
        if self.dist.is_main and self.cfg.record and metrics:  # nothing measured (no labels, no teacher): no record
            self._write_record(metrics, epoch, self._evaluated_file(use_ema, checkpoint), use_ema)
        return metrics

    def _eval_loader(self) -> DataLoader:
        if self._val_loader is None:
            shard = list(range(self.dist.rank, len(self.val_set), self.dist.world_size))
            workers = int(self.cfg.data.num_workers)
            # an own generator: evaluating must not draw from the global RNG the training steps use
            self._val_loader = DataLoader(torch.utils.data.Subset(self.val_set, shard),
                                          batch_size=int(self.cfg.data.batch_size), num_workers=workers,
                                          pin_memory=self.device.type == "cuda", persistent_workers=workers > 0,
                                          generator=torch.Generator().manual_seed(int(self.cfg.seed)))
        return self._val_loader

    def _evaluated_file(self, use_ema: bool, checkpoint: str | Path | None) -> Path | None:
        """The file holding the weights just evaluated (None: random weights, nothing trained or loaded yet)."""
        if checkpoint is not None:
            return Path(checkpoint)
        path = self.work_dir / ("checkpoint_ema.pth" if use_ema else "checkpoint.pth")
        if path.is_file() and self.step > 0:
            return path
        return Path(self.cfg.student.init) if self.cfg.student.init else None

    def _write_record(self, metrics: Mapping[str, float], epoch: int | None, weights: Path | None,
                      ema: bool) -> None:
        from backbones.provenance import describe_checkpoint
        from contracts.records import make_record, write_record
        backbone = describe_checkpoint(weights, student_name(self.model, self.cfg.student))
        rec = make_record("distill", dataset=str(self.cfg.data.val.get("type", "val")), split="val",
                          metrics=metrics, config=self.cfg.to_dict(), backbone=backbone,
                          # setting.mode: the objective's name (benchmarks.table groups distill records by it)
                          setting={"mode": self.cfg.mode, "epoch": epoch, "step": self.step, "ema": ema,
                                   "img_size": int(self.aug_cfg.img_size), "total_batch": self.total_batch,
                                   "device": str(self.device), "amp": self.amp_description,
                                   "pipeline": self.replay.pipeline,
                                   "work_dir": str(self.work_dir)})
        write_record(rec, self.work_dir / "records")


class _Window:
    """The objective's outputs over the micro-batches of one optimizer step, summed on the device (not read)."""

    def __init__(self) -> None:
        self.sums: dict[str, Any] = {}
        self.counts: dict[str, int] = {}

    def add(self, out: Mapping[str, Any]) -> None:
        for key, value in out.items():
            value = value.detach().float() if isinstance(value, torch.Tensor) else float(value)
            self.sums[key] = self.sums[key] + value if key in self.sums else value
            self.counts[key] = self.counts.get(key, 0) + 1

    def row(self, lr: float, grad_norm: torch.Tensor | float, skipped: int) -> dict[str, Any]:
        """The step's history row in `_read_rows`' form: means as (sum, count), read later."""
        rates = {k: (self.sums[k], self.counts[k]) for k in self.sums if k != "loss"}
        return {"loss": (self.sums.get("loss", 0.0), max(self.counts.get("loss", 0), 1)), "lr": lr,
                "grad_norm": (grad_norm, 1), **rates, "skipped": skipped}


def _read_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows with every (value, count) pair → float(value) / count, all device tensors read in one copy."""
    tensors = [v[0] for row in rows for v in row.values() if isinstance(v, tuple) and torch.is_tensor(v[0])]
    read = iter(torch.stack([t.float().reshape(()).to(tensors[0].device) for t in tensors]).tolist()
                if tensors else [])

    def mean(value: Any, count: int) -> float:
        return (next(read) if torch.is_tensor(value) else float(value)) / count

    return [{k: mean(*v) if isinstance(v, tuple) else v for k, v in row.items()} for row in rows]


def _fmt_eta(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600:d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
