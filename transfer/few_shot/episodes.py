"""Seeded, saved few-shot episodes and the CD-FSL evaluation on frozen features.

Episodes come from `numpy.random.default_rng(seed)` over the data set's labels and are written to a JSON file
(atomically) together with the sha256 of the labels and the data set's path-independent fingerprint; a later
run — any backbone, any checkout or machine holding the same data — reads the same file, so all backbones are
compared on identical episodes and a rerun reproduces every number. A file made for other data (labels or files),
another way/shot/query count or seed is refused with the differing field.

Per episode, on the frozen features of the support and query images:
- `finetune`: the cdfsl-benchmark's linear head (`nn.Linear(D, n_way)`, SGD lr 0.01, momentum 0.9, dampening 0.9,
  weight decay 0.001, 100 epochs, batch 4 over the support set); all episodes train together as one batched
  tensor program with per-episode seeded minibatch orders (numerically the same as one loop per episode);
- `logreg`: scikit-learn LogisticRegression on L2-normalised features.
Accuracy: mean over episodes ± 1.96·std/√episodes.
"""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from contracts.fileio import atomic_write_text

EPISODES_FORMAT = "tinyvit-bench/episodes/v1"


def generate_episodes(labels: np.ndarray, n_way: int, n_shot: int, n_query: int, n_episodes: int,
                      seed: int) -> list[dict[str, list[int]]]:
    """Episodes as {'classes', 'support' (n_way·n_shot data set indices, class-major), 'query' (n_way·n_query)}."""
    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    eligible = classes[counts >= n_shot + n_query]
    if len(eligible) < n_way:
        raise ValueError(f"only {len(eligible)} classes have ≥ {n_shot + n_query} images (shots + queries); "
                         f"{n_way}-way episodes need {n_way}")
    by_class = {int(c): np.flatnonzero(labels == c) for c in eligible}
    rng = np.random.default_rng(seed)
    episodes = []
    for _ in range(n_episodes):
        chosen = sorted(int(c) for c in rng.choice(eligible, size=n_way, replace=False))
        support, query = [], []
        for c in chosen:
            picked = rng.choice(by_class[c], size=n_shot + n_query, replace=False)
            support += [int(i) for i in picked[:n_shot]]
            query += [int(i) for i in picked[n_shot:]]
        episodes.append({"classes": chosen, "support": support, "query": query})
    return episodes


def load_or_create_episodes(path: str | Path, labels: np.ndarray, dataset_fingerprint: str, *, dataset: str,
                            n_way: int, n_shot: int, n_query: int, n_episodes: int, seed: int) -> list[dict]:
    """Read the episode file if it exists (checking it matches), else generate and write it atomically.

    The file is tied to the data, not to where it lies: the labels' sha256 and `dataset_fingerprint` (see
    `transfer.features.dataset_fingerprint`: labels, file names relative to the root, in-memory image bytes), so a
    copy of the data under another path reuses it and changed labels or files are refused.
    """
    path = Path(path)
    labels_sha = hashlib.sha256(np.asarray(labels, dtype=np.int64).tobytes()).hexdigest()
    spec = {"format": EPISODES_FORMAT, "dataset": dataset, "n_way": n_way, "n_shot": n_shot, "n_query": n_query,
            "n_episodes": n_episodes, "seed": seed, "labels_sha256": labels_sha,
            "dataset_fingerprint": dataset_fingerprint}
    if path.is_file():
        try:
            saved = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not a valid episode file ({err})") from err
        for key, value in spec.items():
            if saved.get(key) == value:
                continue
            if key not in saved:
                raise ValueError(f"{path}: episode file lacks {key!r} (written by an older version); delete it to "
                                 f"draw the episodes again")
            if key == "labels_sha256":
                raise ValueError(f"{path}: the {dataset!r} labels differ from those these episodes were drawn from "
                                 f"(labels_sha256 {str(saved.get(key))[:12]}… ≠ {value[:12]}…); the episodes "
                                 f"would pick wrong classes — use another --episodes path or delete the file")
            if key == "dataset_fingerprint":
                raise ValueError(f"{path}: the {dataset!r} files differ from those these episodes were drawn from "
                                 f"(same labels, other images: dataset_fingerprint {str(saved.get(key))[:12]}… ≠ "
                                 f"{value[:12]}…); use another --episodes path or delete the file")
            raise ValueError(f"{path}: episode file has {key}={saved.get(key)!r} but this run needs {value!r}; "
                             f"use another --episodes path or delete the file")
        return saved["episodes"]
    episodes = generate_episodes(labels, n_way, n_shot, n_query, n_episodes, seed)
    atomic_write_text(path, json.dumps({**spec, "episodes": episodes}) + "\n")
    return episodes


def mean_ci95(accuracies: Sequence[float]) -> tuple[float, float]:
    """(mean, 1.96·std/√n) — the CD-FSL benchmark's interval (population std, as numpy's default)."""
    acc = np.asarray(accuracies, dtype=np.float64)
    return float(acc.mean()), float(1.96 * acc.std() / math.sqrt(len(acc)))


def _episode_arrays(features: np.ndarray, index_of: dict[int, int], episodes: list[dict], n_way: int
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(support (E, S, D), support labels (E, S), query (E, Q, D), query labels (E, Q)); labels 0..n_way-1."""
    def gather(key: str) -> tuple[torch.Tensor, torch.Tensor]:
        rows = np.asarray([[index_of[i] for i in ep[key]] for ep in episodes])
        per_class = rows.shape[1] // n_way
        labels = np.repeat(np.arange(n_way), per_class)[None].repeat(len(episodes), 0)
        return torch.from_numpy(features[rows]).float(), torch.from_numpy(labels)
    xs, ys = gather("support")
    xq, yq = gather("query")
    return xs, ys, xq, yq


def finetune_head_accuracies(xs: torch.Tensor, ys: torch.Tensor, xq: torch.Tensor, yq: torch.Tensor, n_way: int,
                             seed: int, epochs: int = 100, batch_size: int = 4) -> np.ndarray:
    """cdfsl-benchmark linear head per episode (see module doc), all episodes batched. Returns (E,) accuracies."""
    n_ep, n_support, dim = xs.shape
    gen = torch.Generator().manual_seed(seed)
    bound = 1 / math.sqrt(dim)  # nn.Linear's default init
    weight = nn.Parameter(torch.empty(n_ep, dim, n_way).uniform_(-bound, bound, generator=gen))
    bias = nn.Parameter(torch.empty(n_ep, 1, n_way).uniform_(-bound, bound, generator=gen))
    opt = torch.optim.SGD([weight, bias], lr=0.01, momentum=0.9, dampening=0.9, weight_decay=0.001)
    rows = torch.arange(n_ep)[:, None]
    for _ in range(epochs):
        order = torch.argsort(torch.rand(n_ep, n_support, generator=gen), dim=1)
        for start in range(0, n_support, batch_size):
            idx = order[:, start:start + batch_size]
            logits = torch.bmm(xs[rows, idx], weight) + bias
            # per-episode mean loss, summed: each episode's gradient equals its own loop's gradient
            loss = nn.functional.cross_entropy(logits.reshape(-1, n_way), ys[rows, idx].reshape(-1),
                                               reduction="sum") / idx.shape[1]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    with torch.no_grad():
        pred = (torch.bmm(xq, weight) + bias).argmax(-1)
    return (pred == yq).float().mean(1).numpy()


def logreg_accuracies(xs: torch.Tensor, ys: torch.Tensor, xq: torch.Tensor, yq: torch.Tensor,
                      C: float = 1.0, max_iter: int = 1000) -> np.ndarray:
    """Logistic regression per episode on L2-normalised features. Returns (E,) accuracies."""
    from sklearn.linear_model import LogisticRegression
    out = []
    for s, sy, q, qy in zip(xs.numpy(), ys.numpy(), xq.numpy(), yq.numpy()):
        s = s / np.maximum(np.linalg.norm(s, axis=1, keepdims=True), 1e-12)
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
        out.append(LogisticRegression(C=C, max_iter=max_iter).fit(s, sy).score(q, qy))
    return np.asarray(out)


def evaluate_episodes(features: np.ndarray, feature_indices: Sequence[int], episodes: list[dict], n_way: int, *,
                      methods: Sequence[str] = ("finetune", "logreg"), seed: int = 0, finetune_epochs: int = 100,
                      chunk: int = 100) -> dict[str, dict[str, Any]]:
    """Accuracies per method over the episodes. `features[k]` is the feature of data set index
    `feature_indices[k]`. Returns {method: {'top1', 'ci95', 'accuracies'}}."""
    from tqdm import tqdm
    unknown = set(methods) - {"finetune", "logreg"}
    if unknown:
        raise ValueError(f"unknown few-shot methods {sorted(unknown)}; known: finetune, logreg")
    index_of = {int(i): k for k, i in enumerate(feature_indices)}
    accs: dict[str, list[float]] = {m: [] for m in methods}
    with tqdm(total=len(episodes), desc="episodes", unit="ep", leave=False) as bar:
        for start in range(0, len(episodes), chunk):
            part = episodes[start:start + chunk]
            xs, ys, xq, yq = _episode_arrays(features, index_of, part, n_way)
            if "finetune" in methods:
                accs["finetune"] += finetune_head_accuracies(xs, ys, xq, yq, n_way, seed + start,
                                                             finetune_epochs).tolist()
            if "logreg" in methods:
                accs["logreg"] += logreg_accuracies(xs, ys, xq, yq).tolist()
            bar.update(len(part))
    out = {}
    for m, values in accs.items():
        mean, ci = mean_ci95(values)
        out[m] = {"top1": mean, "ci95": ci, "accuracies": values}
    return out
