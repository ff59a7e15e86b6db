"""Save-logits stage: run the teacher once over seeded augmentations and write the sparse logit store.

    python -m distill_pretrain.save_logits configs/distill/save_logits_mobilenetv2_fmnist.py [--epochs 0:2]
    torchrun --nproc_per_node 8 -m distill_pretrain.save_logits CONFIG --epochs 45:90     # many processes

Config keys: ``dataset`` (see `build_dataset`), ``augment`` (`AugmentConfig`), ``teacher`` (`build_teacher`),
``store`` = dict(path, topk, value_format='fp16'|'compact', chunk_size), ``base_seed``, ``epochs`` (total planned),
``batch_size``, ``num_workers``, ``amp`` (GPU only), ``pipeline`` = 'pil' (default) | 'tensor' (the replay pipeline,
see `distill_pretrain.replay`; recorded in the store, whose readers must replay with the same one). Unreadable
images stop the run naming the file, or with ``dataset.on_error='skip'`` are counted and reported (their records
hold the teacher's output on a grey stand-in; readers drop them). Each rank writes the chunks it owns
(chunk % world_size) and batches never cross a chunk, so for the same ``batch_size`` and ``store.chunk_size`` the
store's bytes do not depend on the number of processes or workers (same hardware, per-process thread count and
library versions). The teacher's fp16 outputs do depend on the batch composition, so ``batch_size`` is recorded in
the manifest and a resume with another batch size is refused. Killed at any point, rerunning the same command
removes the temp files the killed run left, continues from the last finalized chunk and yields a byte-identical
store. Epoch ranges saved into separate stores on other machines are combined with `LogitStore.merge`.
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from contracts.runtime import keep_freed_memory

from .augment import AugmentConfig
from .data import build_dataset
from .dist import init_distributed
from .replay import Replay, build_replay, teacher_view
from .store import LogitStore
from .teachers import build_teacher


def parse_epochs(text: str | None, total: int) -> range:
    """'a:b' → range(a, b); 'a' → range(a, a+1); None → range(0, total)."""
    if text is None:
        return range(total)
    try:
        if ":" in text:
            a, b = text.split(":", 1)
            r = range(int(a or 0), int(b) if b else total)
        else:
            r = range(int(text), int(text) + 1)
    except ValueError:
        raise SystemExit(f"--epochs must look like 'A:B' or 'A', got {text!r}") from None
    if len(r) == 0 or r.start < 0:
        raise SystemExit(f"--epochs {text!r} selects no epochs")
    return r


def load_config(path: str, options: Sequence[str] | None = None):
    """MMEngine config + `--cfg-options key=value` overrides, with the required keys checked."""
    from mmengine.config import Config, DictAction
    cfg = Config.fromfile(path)
    if options:
        parser = argparse.ArgumentParser()
        parser.add_argument("--o", nargs="+", action=DictAction)
        cfg.merge_from_dict(parser.parse_args(["--o", *options]).o)
    for key in ("dataset", "teacher", "store"):
        if key not in cfg:
            raise SystemExit(f"{path}: config lacks {key!r}")
    for key in ("path", "topk"):
        if key not in cfg.store:
            raise SystemExit(f"{path}: config 'store' lacks {key!r}")
    return cfg


class TeacherRunner:
    """Teacher forward on augmented batches: re-normalises to the teacher's mean/std, softmax, top-K."""

    def __init__(self, model: torch.nn.Module, identity: dict[str, Any], aug: AugmentConfig, device: torch.device,
                 amp: bool):
        self.model = model.to(device).eval()
        self.device = device
        self.amp = amp and device.type == "cuda"
        a_mean, a_std = torch.tensor(aug.mean), torch.tensor(aug.std)
        t_mean, t_std = torch.tensor(identity["mean"]), torch.tensor(identity["std"])
        self.renorm = None
        if not (torch.equal(a_mean, t_mean) and torch.equal(a_std, t_std)):
            # x_teacher = (x * a_std + a_mean - t_mean) / t_std = x * scale + shift
            self.renorm = ((a_std / t_std).view(1, 3, 1, 1).to(device),
                           ((a_mean - t_mean) / t_std).view(1, 3, 1, 1).to(device))

    @torch.no_grad()
    def probs(self, images: torch.Tensor) -> torch.Tensor:
        x = images.to(self.device, non_blocking=True)
        if self.renorm is not None:
            x = x * self.renorm[0] + self.renorm[1]
        with torch.autocast(self.device.type, enabled=self.amp):
            logits = self.model(x)
        return logits.float().softmax(-1)

    def topk(self, images: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(indices, values) of the top-K probabilities, left on the device: the caller copies them back once per
        chunk without waiting (`_ChunkRecords`), so the teacher runs ahead of the host."""
        values, indices = self.probs(images).topk(k, dim=-1, sorted=True)
        return indices, values


def _barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def open_store(cfg, dataset, identity: dict[str, Any], aug: AugmentConfig, rank: int) -> LogitStore:
    """Create (rank 0) or open the store named by the config, refusing a mismatching existing one."""
    spec = dict(path=cfg.store.path, teacher=identity, num_classes=identity["num_classes"], topk=cfg.store.topk,
                dataset=dataset.identity, transform=aug.to_dict(), base_seed=cfg.get("base_seed", 0),
                value_format=cfg.store.get("value_format", "fp16"), chunk_size=cfg.store.get("chunk_size", 1024),
                batch_size=cfg.get("batch_size", 64),
                pipeline=cfg.get("pipeline", "pil"),
                extra=dict(dataset_cfg=cfg.dataset.to_dict(), teacher_cfg=cfg.teacher.to_dict(),
                           epochs=cfg.get("epochs", 1)))
    store = None
    if rank == 0:
        store = LogitStore.create(**spec)  # also removes the temp files a killed run left
    _barrier()
    if rank != 0:  # the manifest exists: this only checks every field and opens it (temps are rank 0's to remove)
        store = LogitStore.create(**spec, remove_temps=False)
    return store


def save_epoch(store: LogitStore, replay: Replay, runner: TeacherRunner, epoch: int, rank: int, world: int,
               batch_size: int, num_workers: int, progress) -> tuple[int, list[str]]:
    """Write this rank's pending chunks of one epoch; returns the number of samples processed and the messages of
    the unreadable images among them (skipped)."""
    chunks = store.pending_chunks(epoch, rank, world)
    if not chunks:
        return 0, []
    replay.dataset.set_epoch(epoch)
    plan = []  # (chunk, batch indices, last batch of chunk)
    for c in chunks:
        idx = list(store.chunk_range(c))
        for s in range(0, len(idx), batch_size):
            plan.append((c, idx[s:s + batch_size], s + batch_size >= len(idx)))
    loader = DataLoader(replay.dataset, batch_sampler=[p[1] for p in plan], num_workers=num_workers,
                        collate_fn=replay.collate, persistent_workers=False,
                        pin_memory=runner.device.type == "cuda")
    seeds, indices, values, done, skipped = [], [], [], 0, []
    pending = None  # the last finished chunk, its records on their way to the host
    for (chunk, batch_idx, last), batch in zip(plan, loader):
        if batch["index"].tolist() != batch_idx:
            raise RuntimeError(f"loader returned indices {batch['index'].tolist()[:4]}.., expected {batch_idx[:4]}..")
        skipped += batch["errors"]
        idx, val = runner.topk(teacher_view(replay.finish(batch, runner.device)), store.topk)
        seeds.append(batch["seed"].numpy().astype(np.uint32))
        indices.append(idx)
        values.append(val)
        done += len(batch_idx)
        progress.update(len(batch_idx))
        if last:
            # written once the next chunk's batches are queued: the device never waits for the host's write
            if pending is not None:
                pending.write(store, epoch)
            pending = _ChunkRecords(chunk, np.concatenate(seeds), torch.cat(indices), torch.cat(values))
            seeds, indices, values = [], [], []
    if pending is not None:
        pending.write(store, epoch)
    return done, skipped


class _ChunkRecords:
    """One chunk's seeds and top-K records, copied from the device to the host without waiting (pinned,
    non-blocking), written to the store once they have arrived."""

    def __init__(self, chunk: int, seeds: np.ndarray, indices: torch.Tensor, values: torch.Tensor) -> None:
        self.chunk, self.seeds, self.arrived = chunk, seeds, None
        if indices.device.type != "cuda":
            self.indices, self.values = indices.cpu(), values.cpu()
            return
        self.indices, self.values = (torch.empty(t.shape, dtype=t.dtype, pin_memory=True).copy_(t, non_blocking=True)
                                     for t in (indices, values))
        self.arrived = torch.cuda.Event()
        self.arrived.record()

    def write(self, store: LogitStore, epoch: int) -> None:
        if self.arrived is not None:
            self.arrived.synchronize()
        store.write_chunk(epoch, self.chunk, self.seeds, self.indices.numpy(), self.values.numpy())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m distill_pretrain.save_logits", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="MMEngine config (configs/distill/save_logits_*.py)")
    parser.add_argument("--epochs", help="epoch range A:B (end exclusive) or one epoch A; default all planned")
    parser.add_argument("--cfg-options", nargs="+", default=None, metavar="KEY=VALUE",
                        help="override config keys, e.g. store.path=/tmp/s store.topk=5")
    args = parser.parse_args(argv)
    keep_freed_memory()  # large CPU tensors reuse the heap (`contracts.runtime`)
    cfg = load_config(args.config, args.cfg_options)
    epochs = parse_epochs(args.epochs, cfg.get("epochs", 1))

    info = init_distributed()
    rank, world, device = info.rank, info.world_size, info.device
    from tqdm import tqdm
    teacher, identity = build_teacher(cfg.teacher)
    dataset = build_dataset(cfg.dataset)
    aug = AugmentConfig.coerce(cfg.get("augment"))
    store = open_store(cfg, dataset, identity, aug, rank)
    runner = TeacherRunner(teacher, identity, aug, device, cfg.get("amp", True))
    replay = build_replay(store.manifest["pipeline"], dataset, aug, store.manifest["base_seed"])
    todo = sum(len(store.chunk_range(c)) for e in epochs for c in store.pending_chunks(e, rank, world))
    if rank == 0:
        print(f"save_logits: {store} | epochs {epochs.start}:{epochs.stop} | world {world} | device {device} | "
              f"pipeline {replay.pipeline} | {todo} samples to do on rank 0", flush=True)
    progress = tqdm(total=todo, unit="img", disable=rank != 0, dynamic_ncols=True, mininterval=1.0)
    start = time.perf_counter()
    skipped: list[str] = []
    for epoch in epochs:
        progress.set_description(f"epoch {epoch}")
        skipped += save_epoch(store, replay, runner, epoch, rank, world, cfg.get("batch_size", 64),
                              cfg.get("num_workers", 2), progress)[1]
        _barrier()
        if rank == 0 and not store.finalize_epoch(epoch):
            raise RuntimeError(f"epoch {epoch}: chunks missing after all ranks finished (another writer died?)")
        _barrier()
    progress.close()
    if rank == 0:
        store.reload()
        elapsed = time.perf_counter() - start
        print(f"done: {store} | {todo / max(elapsed, 1e-9):.1f} samples/s on rank 0 | {elapsed:.1f} s", flush=True)
    if skipped:
        shown = "; ".join(sorted(set(skipped))[:5])
        print(f"rank {rank}: skipped {len(skipped)} samples with unreadable images (own or Mixup partner): {shown}",
              flush=True)
    if dist.is_initialized():
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
