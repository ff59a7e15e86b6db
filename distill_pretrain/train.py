"""Student training: pretraining distillation from the logit store, online distillation, training from scratch
and finetuning, in one trainer (paper §3.1, supp. §B).

    python -m distill_pretrain.train CONFIG [--cfg-options k=v ...] [--work-dir DIR] [--resume]
    torchrun --nproc_per_node N -m distill_pretrain.train CONFIG        # DDP: NCCL on GPU, gloo on CPU

Modes (`mode` in the config):
- `stored`: the paper's fast distillation. Each sample's augmentation is replayed from the store's seed
  (`augment.ReplayDataset` at the store's base seed and transform), the target is the Eq. 2 dense recovery of
  the stored top-K teacher probabilities, the loss is soft cross-entropy at temperature `loss.temperature`.
  Label-free unless `loss.gt_weight > 0` (supp. Tab. 2's "w/ GT").
- `online`: the teacher runs on every batch (the conventional baseline of supp. §D).
- `scratch`: ground-truth labels (Mixup/CutMix-aware, label smoothing), no teacher; with `student.init` it is
  the finetuning recipe (layer-wise LR decay, frozen BatchNorm statistics).

Optimisation: AdamW, cosine schedule with warm-up (per step), LR = `optim.lr` × total batch / `optim.base_batch`,
gradient clipping, no weight decay on 1-D parameters and attention biases, drop path, AMP on GPU, gradient
accumulation, optional EMA. Resume is exact: model, optimizer, EMA, scaler, every rank's RNG and the position
inside the epoch are saved, and the data order and augmentation are pure functions of (seed, epoch, index).

Outputs in the work dir: `checkpoint.pth` (contract 2, see `distill_pretrain.checkpoint`), `checkpoint_ema.pth`
with EMA, `resume.pth`, `log.jsonl`, `tb/` (TensorBoard scalars), and a `distill` result record per evaluation.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F
from mmengine.config import Config, DictAction
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from .checkpoint import atomic_torch_save, plain, rng_state, save_checkpoint, set_rng_state
from .optim import build_optimizer, cosine_lr, schedule_from_cfg, set_lr

MODES = ("stored", "online", "scratch")
RESUME_FORMAT = "tinyvit-bench/resume/v1"

# Every key the trainer reads, with its default; a config key outside these is refused (typo guard).
DEFAULTS: dict[str, Any] = dict(
    mode="stored", seed=0, epochs=1, num_classes=None,
    student=dict(type="TinyViT", arch="5m", img_size=224, window_sizes=None, drop_path_rate=0.0, init=None,
                 norm_eval=False),
    teacher=None,
    store=dict(path=None, expect=None, cycle_epochs=False),
    data=dict(train=None, val=None, batch_size=128, num_workers=4, aug=None, aug_seed=0),
    loss=dict(temperature=1.0, gt_weight=0.0, label_smoothing=0.1, online_topk=None),
    optim=dict(lr=1e-3, base_batch=1024, weight_decay=0.05, betas=(0.9, 0.999), eps=1e-8, warmup_epochs=0,
               warmup_lr=0.0, min_lr=0.0, clip_grad=5.0, accum_steps=1, layer_decay=None),
    ema=dict(decay=None), freeze_bn_stats=False, amp=True, amp_dtype="float16",
    labels_index_classes=True, log_interval=10, save_interval=0, eval_interval=1, eval_teacher_agreement=False,
    eval_before_train=False,
    max_steps_per_epoch=None, stop_after_steps=None, work_dir=None, record=True,
)
_SECTIONS = ("student", "store", "data", "loss", "optim", "ema")


def resolve_config(cfg: Config | Mapping[str, Any]) -> Config:
    """Fill defaults and check keys / values, raising with the offending key."""
    cfg = Config(dict(cfg.to_dict() if isinstance(cfg, Config) else cfg))
    allowed_top = set(DEFAULTS) | {"_base_", "custom_imports", "filename"}
    unknown = sorted(k for k in cfg.keys() if k not in allowed_top)
    if unknown:
        raise KeyError(f"config: unknown top-level keys {unknown}; known: {sorted(DEFAULTS)}")
    for key, value in DEFAULTS.items():
        if key not in cfg:
            cfg[key] = value
        elif key in _SECTIONS:
            section = dict(value)
            extra = set(cfg[key]) - set(section) - ({"type", "model_name", "arch", "pretrained_cfg_overlay"}
                                                    if key == "student" else set())
            if extra and key != "student":
                raise KeyError(f"config: unknown keys {sorted(extra)} in '{key}'; known: {sorted(section)}")
            section.update(cfg[key])
            cfg[key] = section
    if cfg.mode not in MODES:
        raise ValueError(f"config: mode={cfg.mode!r}; choose one of {MODES}")
    if cfg.mode == "stored" and not cfg.store.path:
        raise ValueError("config: mode='stored' needs store.path (a directory written by distill_pretrain.save_logits)")
    if cfg.mode == "online" and not cfg.teacher:
        raise ValueError("config: mode='online' needs a teacher (dict for distill_pretrain.teachers.build_teacher)")
    if cfg.data.train is None:
        raise ValueError("config: data.train is required (a dict for distill_pretrain.data.build_dataset)")
    if cfg.optim.accum_steps < 1:
        raise ValueError(f"config: optim.accum_steps must be ≥ 1, got {cfg.optim.accum_steps}")
    if cfg.loss.temperature <= 0:
        raise ValueError(f"config: loss.temperature must be > 0, got {cfg.loss.temperature}")
    return cfg


# ------------------------------------------------------------------------------------------- distributed
@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed() -> DistInfo:
    """Join the torchrun process group when WORLD_SIZE > 1 (NCCL on GPU, gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available()
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    return DistInfo(rank, world, local_rank, device)


# ------------------------------------------------------------------------------------------------ models
def build_student(student_cfg: Mapping[str, Any], num_classes: int) -> nn.Module:
    """A TinyViT (classification mode) or any timm model, randomly initialised, optionally loaded from `init`."""
    cfg = dict(student_cfg)
    kind = cfg.pop("type", "TinyViT")
    init = cfg.pop("init", None)
    if kind == "TinyViT":
        from backbones import TinyViT, load_pretrained
        cfg = {k: v for k, v in cfg.items() if v is not None or k == "window_sizes"}
        model = TinyViT(num_classes=num_classes, **cfg)
        if init:
            load_pretrained(model, init)
        return model
    if kind == "timm":
        import timm
        name = cfg.pop("model_name", None) or cfg.pop("arch", None)
        if not name:
            raise ValueError("config: student.type='timm' needs student.model_name (e.g. 'deit_tiny_patch16_224')")
        cfg.pop("norm_eval", None)
        if cfg.get("window_sizes") is None:
            cfg.pop("window_sizes", None)
        if "img_size" in cfg and not _timm_takes_img_size(name):
            cfg.pop("img_size")
        model = timm.create_model(name, pretrained=False, num_classes=num_classes, **cfg)
        if init:
            from backbones import read_checkpoint
            obj = read_checkpoint(init)
            sd = obj.get("state_dict", obj.get("model", obj))
            own = model.state_dict()
            sd = {k: v for k, v in sd.items() if k in own and own[k].shape == v.shape}
            model.load_state_dict(sd, strict=False)
        return model
    raise ValueError(f"config: student.type={kind!r}; use 'TinyViT' or 'timm'")


def _timm_takes_img_size(name: str) -> bool:
    return any(t in name for t in ("vit", "deit", "swin", "beit", "eva", "cait", "xcit"))


def student_meta(model: nn.Module, student_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """arch / img_size / window_sizes / num_classes for the checkpoint's meta."""
    if hasattr(model, "window_sizes"):
        return dict(arch=model.arch if isinstance(model.arch, str) else plain(model.arch),
                    img_size=int(model.img_size), window_sizes=[int(w) for w in model.window_sizes],
                    num_classes=int(model.num_classes))
    return dict(arch=student_cfg.get("model_name") or student_cfg.get("arch"),
                img_size=int(student_cfg.get("img_size") or 224), window_sizes=None,
                num_classes=int(getattr(model, "num_classes", 0)))


# -------------------------------------------------------------------------------------------------- data
class EpochBatchSampler(Sampler[list[int]]):
    """Per-epoch permutation from (seed, epoch); rank r takes its slice of every global batch; drop_last.

    `start_batch` skips the batches a resumed run already consumed, so the data position survives a restart
    without touching any global RNG.
    """

    def __init__(self, length: int, batch_size: int, rank: int, world_size: int, seed: int, shuffle: bool = True,
                 max_batches: int | None = None) -> None:
        self.length, self.batch_size, self.rank, self.world_size = length, batch_size, rank, world_size
        self.seed, self.shuffle = seed, shuffle
        self.num_batches = length // (batch_size * world_size)
        if max_batches:
            self.num_batches = min(self.num_batches, max_batches)
        if self.num_batches == 0:
            raise ValueError(f"data set of {length} samples is smaller than one global batch "
                             f"({batch_size} × {world_size} ranks)")
        self.epoch, self.start_batch = 0, 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = epoch, start_batch

    def __len__(self) -> int:
        return self.num_batches - self.start_batch

    def __iter__(self) -> Iterator[list[int]]:
        if self.shuffle:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.length, generator=gen).tolist()
        else:
            order = list(range(self.length))
        gb = self.batch_size * self.world_size
        for b in range(self.start_batch, self.num_batches):
            start = b * gb + self.rank * self.batch_size
            yield order[start:start + self.batch_size]


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


# -------------------------------------------------------------------------------------------------- loss
def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """mean over the batch of −Σ_c target_c · log softmax(logits / T)_c, × T² (Hinton's scaling; T=1: plain).

    `target` holds probabilities at T = 1 (a stored or online teacher distribution); at T ≠ 1 they are
    re-tempered (p^(1/T), renormalised), which equals softmax(teacher_logits / T).
    """
    logp = F.log_softmax(logits.float() / temperature, dim=-1)
    if temperature != 1.0:
        target = target.clamp_min(1e-12) ** (1.0 / temperature)
        target = target / target.sum(-1, keepdim=True)
    return -(target * logp).sum(-1).mean() * temperature ** 2


def label_targets(label: torch.Tensor, partner: torch.Tensor, lam: torch.Tensor, num_classes: int,
                  smoothing: float) -> torch.Tensor:
    """Mixup/CutMix-aware smoothed one-hot targets: lam·y(label) + (1 − lam)·y(partner)."""
    if (label < 0).any():
        raise ValueError("ground-truth loss needs labelled data, but the batch has unlabeled samples (label -1)")
    if int(label.max()) >= num_classes or int(partner.max()) >= num_classes:
        raise ValueError(f"label {int(max(label.max(), partner.max()))} ≥ the student's {num_classes} classes")
    off, on = smoothing / num_classes, 1.0 - smoothing + smoothing / num_classes
    y1 = torch.full((len(label), num_classes), off, device=label.device).scatter_(1, label[:, None], on)
    y2 = torch.full((len(label), num_classes), off, device=label.device).scatter_(1, partner[:, None], on)
    lam = lam.to(y1.device)[:, None]
    return lam * y1 + (1 - lam) * y2


# ----------------------------------------------------------------------------------------------- trainer
class Trainer:
    """One training run described by a resolved config (see `DEFAULTS` and the recipes in configs/distill/)."""

    def __init__(self, cfg: Config, work_dir: str | Path, dist_info: DistInfo | None = None,
                 config_sha256: str | None = None) -> None:
        from contracts.provenance import config_sha256 as _sha
        self.cfg = resolve_config(cfg)
        self.work_dir = Path(work_dir)
        self.dist = dist_info or DistInfo()
        self.device = self.dist.device
        self.config_sha256 = config_sha256 or _sha(self.cfg.to_dict())
        torch.manual_seed(self.cfg.seed + self.dist.rank)
        self.store = None
        self.teacher, self.teacher_identity = None, None
        self._build_data()
        self._build_models()
        self._build_optim()
        self.step = 0          # optimizer steps done
        self.epoch = 0         # epoch in progress
        self.batch_in_epoch = 0  # micro-batches of `epoch` consumed
        self.history: list[dict[str, float]] = []
        self._tb = None

    # ------------------------------------------------------------------------------------------ building
    def _build_data(self) -> None:
        from . import augment, data
        cfg = self.cfg
        train_set = data.build_dataset(cfg.data.train)
        if cfg.mode == "stored":
            from .store import LogitStore
            self.store = LogitStore.open(cfg.store.path, expect=cfg.store.expect)
            # the store's own transform and base seed; refuses a data set other than the one it was saved over
            self.train_set = augment.ReplayDataset.for_store(self.store, train_set)
        else:
            self.train_set = augment.ReplayDataset(train_set, augment.AugmentConfig.coerce(cfg.data.aug),
                                                   int(cfg.data.aug_seed))
        aug_cfg = self.aug_cfg = self.train_set.cfg
        bs = int(cfg.data.batch_size)
        self.sampler = EpochBatchSampler(len(self.train_set), bs, self.dist.rank, self.dist.world_size,
                                         seed=int(cfg.seed), max_batches=cfg.max_steps_per_epoch and
                                         cfg.max_steps_per_epoch * cfg.optim.accum_steps)
        self.batches_per_epoch = self.sampler.num_batches
        self.steps_per_epoch = self.batches_per_epoch // cfg.optim.accum_steps
        if self.steps_per_epoch == 0:
            raise ValueError(f"epoch of {self.batches_per_epoch} batches < optim.accum_steps={cfg.optim.accum_steps}")
        self.total_batch = bs * self.dist.world_size * cfg.optim.accum_steps
        self.val_set = None
        if cfg.data.val is not None:
            self.val_set = EvalDataset(data.build_dataset(cfg.data.val), aug_cfg)

    def _img_size(self) -> int:
        return int(self.aug_cfg.img_size)

    def _num_classes(self) -> int:
        cfg = self.cfg
        if cfg.num_classes:
            return int(cfg.num_classes)
        if self.store is not None:
            return int(self.store.num_classes)
        if self.teacher is not None:
            return int(self.teacher_num_classes)
        classes = getattr(self.train_set.dataset, "classes", None)
        if classes:
            return len(classes)
        raise ValueError("config: set num_classes (the data set does not list its classes)")

    def _build_models(self) -> None:
        cfg = self.cfg
        need_teacher = cfg.mode == "online" or (cfg.eval_teacher_agreement and cfg.teacher)
        if need_teacher:
            from .save_logits import TeacherRunner
            from .teachers import build_teacher
            teacher, identity = build_teacher(cfg.teacher)
            for p in teacher.parameters():
                p.requires_grad_(False)
            # Re-normalises the student's input to the teacher's mean/std, softmax (as save_logits does).
            self.teacher = TeacherRunner(teacher, identity, self.aug_cfg, self.device, bool(cfg.amp))
            self.teacher_identity = plain(identity)
            self.teacher_num_classes = int(identity["num_classes"])
        self.num_classes = self._num_classes()
        if self.store is not None and self.num_classes != self.store.num_classes:
            raise ValueError(f"config: num_classes={self.num_classes} but store {cfg.store.path} holds "
                             f"{self.store.num_classes}-class teacher targets")
        self.model = build_student(cfg.student, self.num_classes).to(self.device)
        self.ema = None
        if cfg.ema.decay:
            from timm.utils import ModelEmaV3
            self.ema = ModelEmaV3(self.model, decay=float(cfg.ema.decay))
        self.ddp_model: nn.Module = self.model
        if self.dist.world_size > 1:
            self.ddp_model = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    def _build_optim(self) -> None:
        o = self.cfg.optim
        self.schedule = schedule_from_cfg(o, self.steps_per_epoch, int(self.cfg.epochs), self.total_batch)
        self.optimizer = build_optimizer(self.model, self.schedule["base_lr"], o.weight_decay, tuple(o.betas),
                                         o.eps, o.layer_decay)
        self.use_amp = bool(self.cfg.amp) and self.device.type == "cuda"
        self.amp_dtype = getattr(torch, self.cfg.amp_dtype)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp and self.amp_dtype == torch.float16)

    # --------------------------------------------------------------------------------------- resume state
    def state_dict(self) -> dict[str, Any]:
        """Everything exact resume needs (plain types + tensors)."""
        rngs = [rng_state()]
        if self.dist.world_size > 1:
            rngs = [None] * self.dist.world_size
            dist.all_gather_object(rngs, rng_state())
        return {"format": RESUME_FORMAT, "config_sha256": self.config_sha256,
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict(), "ema": self.ema.module.state_dict() if self.ema else None,
                "rng": rngs, "step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                "world_size": self.dist.world_size, "history": self.history}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("format") != RESUME_FORMAT:
            raise ValueError(f"not a resume state ({state.get('format')!r} != {RESUME_FORMAT!r})")
        if state["world_size"] != self.dist.world_size:
            raise ValueError(f"resume state was written by {state['world_size']} ranks, this run has "
                             f"{self.dist.world_size}: the data position would not match")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None and state.get("ema") is not None:
            self.ema.module.load_state_dict(state["ema"])
        set_rng_state(state["rng"][self.dist.rank])
        self.step, self.epoch, self.batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        self.history = list(state.get("history", []))

    def save_resume(self) -> None:
        state = self.state_dict()  # collective under DDP: every rank calls it
        if self.dist.is_main:
            atomic_torch_save(state, self.work_dir / "resume.pth")

    def resume(self, path: str | Path | None = None) -> bool:
        """Load `resume.pth` (or `path`) if present; returns whether it did."""
        path = Path(path) if path else self.work_dir / "resume.pth"
        if not path.is_file():
            return False
        state = torch.load(path, map_location="cpu", weights_only=True)
        self.load_state_dict(state)
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
        meta.update(epoch=int(epoch), step=int(self.step), mode=self.cfg.mode, config_sha256=self.config_sha256,
                    git_commit=git_commit(), teacher=self._teacher_identity(), store=self._store_identity())
        return meta

    def _teacher_identity(self) -> dict[str, Any] | None:
        if self.store is not None:
            teacher = getattr(self.store, "manifest", {}).get("teacher")
            return plain(teacher) if teacher is not None else None
        return self.teacher_identity if self.cfg.mode == "online" else None

    def _store_identity(self) -> dict[str, Any] | None:
        if self.store is None:
            return None
        manifest = getattr(self.store, "manifest", {})
        keep = ("format", "num_classes", "topk", "k", "value_dtype", "transform_sha256", "dataset", "seed_policy")
        ident = {k: manifest[k] for k in keep if k in manifest}
        ident["path"] = str(self.cfg.store.path)
        return plain(ident)

    def save_checkpoints(self, epoch: int) -> None:
        if not self.dist.is_main:
            return
        meta = self.checkpoint_meta(epoch)
        save_checkpoint(self.work_dir / "checkpoint.pth", self.model.state_dict(), meta)
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
    def _loader(self, epoch: int, start_batch: int) -> DataLoader:
        from . import augment
        self.sampler.set_epoch(epoch, start_batch)
        self.train_set.set_epoch(self._store_epoch(epoch))
        workers = int(self.cfg.data.num_workers)
        # An explicit generator: creating the iterator must not draw from the global RNG (exact resume).
        gen = torch.Generator().manual_seed(int(self.cfg.seed) * 7919 + epoch)
        return DataLoader(self.train_set, batch_sampler=self.sampler, num_workers=workers,
                          collate_fn=augment.collate_replay, pin_memory=self.device.type == "cuda", generator=gen,
                          persistent_workers=False, prefetch_factor=4 if workers else None)

    def _store_epoch(self, epoch: int) -> int:
        if self.store is None:
            return epoch
        epochs = sorted(int(e) for e in self.store.epochs)
        if epoch in epochs:
            return epoch
        if self.cfg.store.cycle_epochs:
            return epochs[epoch % len(epochs)]
        raise ValueError(f"store {self.cfg.store.path} has no epoch {epoch} (present: {epochs}); save it with "
                         f"`python -m distill_pretrain.save_logits --epochs` or set store.cycle_epochs=True")

    def _targets(self, batch: Mapping[str, torch.Tensor], images: torch.Tensor,
                 epoch: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(dense teacher target or None, teacher top-1 or None) for a batch."""
        cfg = self.cfg
        if cfg.mode == "stored":
            from .store import recover_dense
            sparse = self.store.read(self._store_epoch(epoch), batch["index"].numpy())
            seeds = torch.as_tensor(sparse.seeds.astype("int64") if hasattr(sparse.seeds, "astype") else sparse.seeds)
            if not torch.equal(seeds.long(), batch["seed"]):
                bad = int((seeds.long() != batch["seed"]).nonzero()[0, 0])
                raise RuntimeError(f"store seed {int(seeds[bad])} != replayed seed {int(batch['seed'][bad])} for "
                                   f"index {int(batch['index'][bad])}: store and augmentation disagree")
            idx = torch.as_tensor(sparse.indices).long()
            val = torch.as_tensor(sparse.values).float()
            target = torch.as_tensor(recover_dense(idx, val, self.num_classes)).float().to(self.device)
            top1 = idx.gather(1, val.argmax(1, keepdim=True))[:, 0].to(self.device)
            return target, top1
        if cfg.mode == "online":
            probs = self.teacher.probs(images)
            k = cfg.loss.online_topk
            if k:
                from .store import recover_dense
                val, idx = probs.topk(int(k), dim=-1)
                probs = torch.as_tensor(recover_dense(idx, val, probs.shape[1])).float()
            return probs, probs.argmax(-1)
        return None, None

    def _loss(self, logits: torch.Tensor, batch: Mapping[str, torch.Tensor],
              target: torch.Tensor | None) -> torch.Tensor:
        cfg = self.cfg
        gt_w = float(cfg.loss.gt_weight) if cfg.mode != "scratch" else 1.0
        loss = logits.new_zeros((), dtype=torch.float32)
        if target is not None:
            loss = soft_cross_entropy(logits, target, float(cfg.loss.temperature))
        if gt_w > 0:
            partner = torch.where(batch["mix_index"] >= 0, batch["mix_label"], batch["label"])
            y = label_targets(batch["label"].to(self.device), partner.to(self.device), batch["mix_lam"],
                              self.num_classes, float(cfg.loss.label_smoothing))
            loss = loss + gt_w * soft_cross_entropy(logits, y)
        return loss

    def _set_train_mode(self) -> None:
        self.model.train()
        if self.cfg.freeze_bn_stats:
            for m in self.model.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()

    def train(self) -> list[dict[str, float]]:
        """Train until `epochs` (or `stop_after_steps` more steps); returns the per-step history."""
        cfg = self.cfg
        self.work_dir.mkdir(parents=True, exist_ok=True)
        accum = int(cfg.optim.accum_steps)
        total_steps = int(self.schedule["total_steps"])
        stop_at = total_steps
        if cfg.stop_after_steps is not None:
            stop_at = min(total_steps, self.step + int(cfg.stop_after_steps))
        self.log(f"mode={cfg.mode} student={student_meta(self.model, cfg.student)['arch']} classes={self.num_classes} "
                 f"samples={len(self.train_set)} world={self.dist.world_size} batch/rank={cfg.data.batch_size} "
                 f"accum={accum} total_batch={self.total_batch} lr={self.schedule['base_lr']:.3g} "
                 f"steps/epoch={self.steps_per_epoch} total_steps={total_steps} device={self.device} "
                 f"amp={self.use_amp}")
        if cfg.eval_before_train and self.step == 0 and self.val_set is not None:
            self.evaluate(-1)
        t_window, n_window, t_run, steps_run = time.perf_counter(), 0, time.perf_counter(), 0
        run_start_step = self.step
        stats = _Window()
        while self.step < stop_at:
            epoch = self.epoch
            t_step = time.perf_counter()  # checkpoint / eval time of the previous epoch is not a step's
            self._set_train_mode()
            for batch in self._loader(epoch, self.batch_in_epoch):
                micro = self.batch_in_epoch % accum
                lr = cosine_lr(self.step, **self.schedule)
                set_lr(self.optimizer, lr)
                images = batch["image"].to(self.device, non_blocking=True)
                target, teacher_top1 = self._targets(batch, images, epoch)
                sync = micro == accum - 1 or self.dist.world_size == 1
                ctx = self.ddp_model.no_sync() if not sync else _nullcontext()
                with ctx, torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.use_amp):
                    logits = self.ddp_model(images)
                    loss = self._loss(logits, batch, target)
                self.scaler.scale(loss / accum).backward()
                stats.add(loss.detach(), logits.detach(), batch, teacher_top1, bool(cfg.labels_index_classes))
                self.batch_in_epoch += 1
                n_window += images.shape[0] * self.dist.world_size
                if micro != accum - 1:
                    continue
                if cfg.optim.clip_grad:
                    self.scaler.unscale_(self.optimizer)
                    grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.optim.clip_grad))
                else:
                    grad_norm = float("nan")
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.optimizer.zero_grad(set_to_none=True)
                if self.ema is not None:
                    self.ema.update(self.model, step=self.step)
                self.step += 1
                steps_run += 1
                record = {"loss": stats.loss(), "lr": lr, "grad_norm": grad_norm, **stats.rates()}
                now = time.perf_counter()
                self.history.append({"step": self.step, **record, "step_s": now - t_step})
                t_step = now
                stats = _Window()
                if self.step % int(cfg.log_interval) == 0 or self.step == stop_at:
                    now = time.perf_counter()
                    ips = n_window / max(now - t_window, 1e-9)
                    eta = (now - t_run) / steps_run * (stop_at - self.step)
                    extras = " ".join(f"{k} {v:.3f}" for k, v in record.items() if k not in ("loss", "lr", "grad_norm"))
                    self.log(f"epoch {epoch} [{self.batch_in_epoch // accum}/{self.steps_per_epoch}] step "
                             f"{self.step}/{total_steps} loss {record['loss']:.4f} lr {lr:.3e} grad_norm "
                             f"{grad_norm:.3f} {extras} {ips:.1f} img/s eta {_fmt_eta(eta)}")
                    self._scalars({**{f"train/{k}": v for k, v in record.items()}, "train/img_per_s": ips}, self.step)
                    t_window, n_window = now, 0
                if cfg.save_interval and self.step % int(cfg.save_interval) == 0:
                    self.save_resume()
                if self.step >= stop_at:
                    break
            if self.batch_in_epoch >= self.steps_per_epoch * accum:
                self.epoch += 1
                self.batch_in_epoch = 0
                self.save_checkpoints(epoch)
                if self.val_set is not None and cfg.eval_interval and (self.epoch % int(cfg.eval_interval) == 0
                                                                        or self.step >= total_steps):
                    self.evaluate(epoch)
            self.save_resume()
        if self.batch_in_epoch:  # stopped inside an epoch: leave a checkpoint of where it is
            self.save_checkpoints(self.epoch)
        self.log(f"stopped at step {self.step}/{total_steps} after {steps_run} steps "
                 f"({(time.perf_counter() - t_run) / max(steps_run, 1):.3f} s/step); from step {run_start_step}")
        return self.history

    # ---------------------------------------------------------------------------------------- evaluation
    @torch.no_grad()
    def evaluate(self, epoch: int | None = None, batch_size: int | None = None) -> dict[str, float]:
        """top-1/top-5 against labels (when the classes match) and top-1 agreement with the teacher."""
        if self.val_set is None:
            raise ValueError("config: data.val is not set")
        model = self.ema.module if self.ema is not None else self.model
        model.eval()
        n = len(self.val_set)
        shard = list(range(self.dist.rank, n, self.dist.world_size))
        loader = DataLoader(torch.utils.data.Subset(self.val_set, shard), batch_size=batch_size or
                            int(self.cfg.data.batch_size), num_workers=int(self.cfg.data.num_workers))
        with_labels = bool(self.cfg.labels_index_classes)
        counts = torch.zeros(5, dtype=torch.float64)  # seen, top1, top5, agree top-1, teacher top-1 in top-5
        teacher_votes = torch.zeros(max(self.num_classes, 1), dtype=torch.float64)
        for images, labels in loader:
            images = images.to(self.device)
            with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.use_amp):
                logits = model(images).float()
            counts[0] += len(labels)
            labels = labels.to(self.device)
            top5 = logits.topk(min(5, logits.shape[1]), dim=-1).indices
            counts[1] += (top5[:, 0] == labels).sum().item()
            counts[2] += (top5 == labels[:, None]).any(1).sum().item()
            if self.teacher is not None:
                t_top1 = self.teacher.probs(images).argmax(-1)
                counts[3] += (t_top1 == top5[:, 0]).sum().item()
                counts[4] += (top5 == t_top1[:, None]).any(1).sum().item()
                votes = torch.bincount(t_top1.cpu(), minlength=len(teacher_votes))
                teacher_votes += votes[:len(teacher_votes)].double()
        if self.dist.world_size > 1:
            dist.all_reduce(counts)
        seen = max(counts[0].item(), 1)
        metrics = {"top1": counts[1].item() / seen, "top5": counts[2].item() / seen} if with_labels else {}
        if self.teacher is not None:
            if self.dist.world_size > 1:
                dist.all_reduce(teacher_votes)
            metrics["teacher_agreement_top1"] = counts[3].item() / seen
            metrics["teacher_top1_in_student_top5"] = counts[4].item() / seen
            # what a constant student predicting the teacher's most frequent class would score
            metrics["teacher_majority_baseline"] = teacher_votes.max().item() / seen
        self._set_train_mode()
        shown = " ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        self.log(f"eval epoch {epoch}: {shown} ({int(seen)} images)")
        self._scalars({f"val/{k}": v for k, v in metrics.items()}, self.step)
        if self.dist.is_main and self.cfg.record:
            self._write_record(metrics, epoch)
        return metrics

    def _write_record(self, metrics: Mapping[str, float], epoch: int | None) -> None:
        from backbones import file_sha256
        from contracts.records import make_record, write_record
        ckpt = self.work_dir / "checkpoint.pth"
        name = student_meta(self.model, self.cfg.student)["arch"]
        rec = make_record("distill", dataset=str(self.cfg.data.val.get("type", "val")), split="val",
                          metrics=metrics, config=self.cfg.to_dict(),
                          backbone={"name": f"tinyvit-{name}" if self.cfg.student.type == "TinyViT" else str(name),
                                    "checkpoint_sha256": file_sha256(ckpt) if ckpt.is_file() else None,
                                    "source": "distill"},
                          setting={"mode": self.cfg.mode, "epoch": epoch, "step": self.step,
                                   "img_size": self._img_size(), "total_batch": self.total_batch,
                                   "work_dir": str(self.work_dir)})
        write_record(rec, self.work_dir / "records")


class _Window:
    """Running sums over the micro-batches of one optimizer step."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.counts: dict[str, float] = {}
        self.n_loss, self.loss_sum = 0, 0.0

    def _add(self, key: str, hits: float, n: float) -> None:
        self.sums[key] = self.sums.get(key, 0.0) + hits
        self.counts[key] = self.counts.get(key, 0.0) + n

    def add(self, loss: torch.Tensor, logits: torch.Tensor, batch: Mapping[str, torch.Tensor],
            teacher_top1: torch.Tensor | None, with_labels: bool) -> None:
        self.loss_sum += float(loss)
        self.n_loss += 1
        pred = logits.argmax(-1).cpu()
        labelled = (batch["label"] >= 0) & with_labels
        if teacher_top1 is not None:
            t = teacher_top1.cpu()
            self._add("agree", float((pred == t).sum()), len(t))
            if labelled.any() and int(batch["label"][labelled].max()) < logits.shape[1]:
                self._add("teacher_acc", float((t[labelled] == batch["label"][labelled]).sum()), float(labelled.sum()))
        if labelled.any() and int(batch["label"][labelled].max()) < logits.shape[1]:
            self._add("acc", float((pred[labelled] == batch["label"][labelled]).sum()), float(labelled.sum()))

    def loss(self) -> float:
        return self.loss_sum / max(self.n_loss, 1)

    def rates(self) -> dict[str, float]:
        return {k: self.sums[k] / max(self.counts[k], 1) for k in self.sums}


class _nullcontext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


def _fmt_eta(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600:d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


# ---------------------------------------------------------------------------------------------- entry
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m distill_pretrain.train",
                                     description="Train a student: stored / online distillation, scratch, finetune.")
    parser.add_argument("config", help="MMEngine Python config (configs/distill/*.py)")
    parser.add_argument("--work-dir", help="output folder (default: work_dirs/<config name>)")
    parser.add_argument("--resume", nargs="?", const="auto", default=None,
                        help="resume from WORK_DIR/resume.pth (or the given resume file)")
    parser.add_argument("--eval", metavar="CKPT", help="only evaluate this checkpoint on data.val (1 or N processes)")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, default={},
                        help="override config keys, e.g. optim.lr=1e-4 data.batch_size=64")
    return parser.parse_args(argv)


def load_config(path: str | Path, options: Mapping[str, Any] | None = None) -> Config:
    """Read a config file (with `_base_`), apply `--cfg-options`, fill defaults."""
    cfg = Config.fromfile(str(path))
    if options:
        cfg.merge_from_dict(dict(options))
    return resolve_config(cfg)


def main(argv: Sequence[str] | None = None) -> Trainer:
    args = parse_args(argv)
    from contracts.provenance import config_sha256
    cfg = load_config(args.config, args.cfg_options)
    work_dir = Path(args.work_dir or cfg.work_dir or Path("work_dirs") / Path(args.config).stem)
    info = init_distributed()
    from mmengine.logging import MMLogger
    if info.is_main:
        work_dir.mkdir(parents=True, exist_ok=True)
        cfg.dump(str(work_dir / "config.py"))
    MMLogger.get_instance("distill_pretrain", log_file=str(work_dir / "train.log") if info.is_main else None)
    trainer = Trainer(cfg, work_dir, info, config_sha256(cfg.to_dict()))
    if args.eval:
        trainer.load_weights(args.eval)
        trainer.evaluate()
    elif args.resume:
        found = trainer.resume(None if args.resume == "auto" else args.resume)
        if not found and args.resume != "auto":
            raise FileNotFoundError(f"--resume {args.resume}: no such resume file")
    if not args.eval:
        trainer.train()
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    return trainer


if __name__ == "__main__":
    main()
