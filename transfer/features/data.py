"""What extraction needs to know of a data set: its labels without decoding images (`dataset_targets`), a fingerprint
of its contents that does not depend on where it lies (`dataset_fingerprint`, part of the feature-cache key), and
setting its transform through Subset / ConcatDataset wrappers (`with_transform`)."""
from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset, Subset


def dataset_targets(dataset: Dataset) -> np.ndarray:
    """Integer labels of a data set without decoding images (torchvision classes, Subset, ConcatDataset)."""
    if isinstance(dataset, Subset):
        return dataset_targets(dataset.dataset)[np.asarray(dataset.indices)]
    if isinstance(dataset, ConcatDataset):
        return np.concatenate([dataset_targets(d) for d in dataset.datasets])
    for attr in ("targets", "_labels", "labels"):
        if hasattr(dataset, attr):
            return np.asarray(getattr(dataset, attr), dtype=np.int64)
    if hasattr(dataset, "_samples"):  # StanfordCars
        return np.asarray([t for _, t in dataset._samples], dtype=np.int64)
    return np.asarray([dataset[i][1] for i in range(len(dataset))], dtype=np.int64)


def dataset_fingerprint(dataset: Dataset) -> str:
    """sha256 naming a data set's contents wherever it lies: class, split, length, labels, subset indices, the
    files' paths relative to the data set's root (or in-memory image bytes) — never the root path itself, so the
    same data reached through another path or machine has the same fingerprint."""
    h = hashlib.sha256()

    def visit(ds: Dataset) -> None:
        h.update(type(ds).__name__.encode())
        if isinstance(ds, Subset):
            h.update(np.asarray(ds.indices, dtype=np.int64).tobytes())
            visit(ds.dataset)
            return
        if isinstance(ds, ConcatDataset):
            for d in ds.datasets:
                visit(d)
            return
        for attr in ("train", "_split", "split"):
            if hasattr(ds, attr):
                h.update(f"{attr}={getattr(ds, attr)}".encode())
        h.update(str(len(ds)).encode())
        root = os.fspath(getattr(ds, "root", "")) if getattr(ds, "root", None) is not None else ""
        for attr in ("samples", "_image_files", "_images", "image_paths"):
            if hasattr(ds, attr):
                h.update(json.dumps([_relative(s, root) for s in getattr(ds, attr)]).encode())
                break
        else:
            data = getattr(ds, "data", None)  # CIFAR / MNIST keep decoded images in memory
            if isinstance(data, (np.ndarray, torch.Tensor)):
                h.update(np.ascontiguousarray(np.asarray(data)).tobytes())
        h.update(dataset_targets(ds).tobytes())

    visit(dataset)
    return h.hexdigest()


def _relative(item: Any, root: str) -> Any:
    """A sample entry (a path or a (path, label) tuple) with paths made relative to the data set's root."""
    if isinstance(item, (tuple, list)):
        return [_relative(x, root) for x in item]
    if isinstance(item, (str, os.PathLike)):
        path = os.fspath(item)
        return os.path.relpath(path, root) if root and os.path.isabs(path) else path
    return str(item)


def with_transform(dataset: Dataset, transform: Any) -> None:
    """Set the transform on the underlying torchvision data set(s)."""
    if isinstance(dataset, Subset):
        with_transform(dataset.dataset, transform)
    elif isinstance(dataset, ConcatDataset):
        for d in dataset.datasets:
            with_transform(d, transform)
    else:
        dataset.transform = transform
