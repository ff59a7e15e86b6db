"""Cached feature extraction: a backbone's pooled features of a whole data set under the evaluation transform,
stored on disk under a key of weights + data set fingerprint + transform (written atomically)."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from backbones import TinyViT, optimize
from contracts.fileio import atomic_write

from .backbone import Backbone, pooled_features
from .data import dataset_fingerprint, with_transform
from .transforms import eval_transform


def default_cache_dir() -> Path:
    """`$TINYVIT_BENCH_FEATURE_CACHE`, else `.cache/features` in the repository."""
    from contracts.assets import REPO_ROOT
    return Path(os.environ.get("TINYVIT_BENCH_FEATURE_CACHE", REPO_ROOT / ".cache" / "features"))


def feature_cache_key(backbone: Backbone, dataset: Dataset, transform: Any) -> str:
    """The cache file's name: sha256 of the backbone's weights, the data set's fingerprint and the transform."""
    key_src = json.dumps({"backbone": backbone.weights_sha256(), "data": dataset_fingerprint(dataset),
                          "transform": repr(transform)}, sort_keys=True)
    return hashlib.sha256(key_src.encode()).hexdigest()[:32]


def prepare_for_inference(model: nn.Module, device: str | torch.device) -> nn.Module:
    """The module feature extraction runs: for a TinyViT its inference copy (`backbones.inference.optimize`: BN
    folded, the kernels measured to pay on this device kind; the same function within 1e-4), for other models the
    model itself on ``device`` in channels-last memory format (moved in place)."""
    if isinstance(model, TinyViT):
        return optimize(model, device=device)
    return model.to(device).to(memory_format=torch.channels_last)


def extract_features(backbone: Backbone, dataset: Dataset, *, resolution: int = 224, batch_size: int = 64,
                     num_workers: int = 0, cache_dir: str | Path | None = None, use_cache: bool = True,
                     desc: str = "features", device: str | torch.device = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """(features (N, D) float32, labels (N,) int64) of a data set under the evaluation transform.

    Cached as `<cache_dir>/<key>.npz` (`feature_cache_key`); the transform is set on the data set here. Batched,
    no_grad, channels-last (`prepare_for_inference`); a tqdm bar shows progress.
    """
    from tqdm import tqdm
    transform = eval_transform(resolution, backbone.mean, backbone.std)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = cache / f"{feature_cache_key(backbone, dataset, transform)}.npz"
    if use_cache and path.is_file():
        with np.load(path) as data:
            return data["features"], data["labels"]
    with_transform(dataset, transform)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    model = prepare_for_inference(backbone.model, device)
    feats, labels = [], []
    with torch.no_grad():
        for images, targets in tqdm(loader, desc=f"{desc} [{backbone.name}]", unit="batch", leave=False):
            images = images.to(device).contiguous(memory_format=torch.channels_last)
            feats.append(pooled_features(model, images).cpu().numpy())
            labels.append(np.asarray(targets, dtype=np.int64))
    features = np.concatenate(feats).astype(np.float32)
    label_arr = np.concatenate(labels)
    if use_cache:
        atomic_write(path, lambda f: np.savez(f, features=features, labels=label_arr))
    return features, label_arr
