"""The trainer's data order: per-epoch permutations sharded over ranks, iterated across epoch boundaries.

One loader iterator spans the whole run (its batches carry the epoch), so persistent workers keep prefetching
through an epoch's end instead of draining and restarting.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

import torch
from torch.utils.data import Dataset, Sampler


class EpochBatchSampler(Sampler[list[tuple[int, int]]]):
    """Per-epoch permutation from (seed, epoch); rank r takes its slice of every global batch; drop_last.

    Yields batches of `(epoch, index)` from `(epoch, start_batch)` of `set_epoch` up to `end_epoch`, so a resumed
    run restarts at its exact data position without touching any global RNG. `max_batches` caps an epoch (it is
    rounded down to a multiple of `multiple_of`, the gradient accumulation, so no step straddles two epochs).
    """

    def __init__(self, length: int, batch_size: int, rank: int, world_size: int, seed: int, shuffle: bool = True,
                 max_batches: int | None = None, multiple_of: int = 1) -> None:
        self.length, self.batch_size, self.rank, self.world_size = length, batch_size, rank, world_size
        self.seed, self.shuffle = seed, shuffle
        num = length // (batch_size * world_size)
        if max_batches:
            num = min(num, max_batches)
        self.num_batches = num // multiple_of * multiple_of
        if self.num_batches == 0:
            raise ValueError(f"data set of {length} samples is smaller than {multiple_of} global batch(es) "
                             f"({batch_size} × {world_size} ranks)")
        self.epoch, self.start_batch, self.end_epoch = 0, 0, 1

    def set_epoch(self, epoch: int, start_batch: int = 0, end_epoch: int | None = None) -> None:
        """Iterate from batch `start_batch` of `epoch` to the end of epoch `end_epoch - 1` (default: `epoch`)."""
        self.epoch, self.start_batch = epoch, start_batch
        self.end_epoch = epoch + 1 if end_epoch is None else max(end_epoch, epoch + 1)

    def __len__(self) -> int:
        return (self.end_epoch - self.epoch) * self.num_batches - self.start_batch

    def epoch_batches(self, epoch: int, start_batch: int = 0) -> Iterator[list[int]]:
        """This rank's index batches of one epoch, from `start_batch`."""
        if self.shuffle:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            order = torch.randperm(self.length, generator=gen).tolist()
        else:
            order = list(range(self.length))
        gb = self.batch_size * self.world_size
        for b in range(start_batch, self.num_batches):
            start = b * gb + self.rank * self.batch_size
            yield order[start:start + self.batch_size]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for epoch in range(self.epoch, self.end_epoch):
            for batch in self.epoch_batches(epoch, self.start_batch if epoch == self.epoch else 0):
                yield [(epoch, i) for i in batch]


class EpochReplay(Dataset):
    """Item `(epoch, index)` → the replay dataset's sample `index` of data epoch `data_epochs[epoch]` (a store
    cycled over fewer epochs than the run maps several run epochs to one), with `epoch` (the run's) added."""

    def __init__(self, replay: Any, data_epochs: Sequence[int] | None = None) -> None:
        self.replay = replay
        self.data_epochs = None if data_epochs is None else [int(e) for e in data_epochs]

    def __len__(self) -> int:
        return len(self.replay)

    def __getitem__(self, item: tuple[int, int]) -> dict[str, Any]:
        epoch, index = item
        data_epoch = epoch if self.data_epochs is None else self.data_epochs[epoch]
        return {**self.replay.get(index, data_epoch), "epoch": epoch}


class EpochCollate:
    """A replay pipeline's collate (`distill_pretrain.replay.Replay.collate`) plus the run epoch of each sample
    (`epoch`, int64); a class so DataLoader workers can pickle it."""

    def __init__(self, collate: Callable[[list], dict[str, Any]]) -> None:
        self.collate = collate

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        return {**self.collate(items), "epoch": torch.tensor([b["epoch"] for b in items], dtype=torch.int64)}
