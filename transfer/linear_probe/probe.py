"""Linear probes on frozen backbones: the MoCo v3 protocol and the fast cached-feature mode.

Fast mode (`run_fast_probe`): features are extracted once (cached), a stratified validation split is carved from
the training features (seeded), and two classifiers are fitted on the *same* features:
- `logreg`: scikit-learn LogisticRegression (L-BFGS, raw features as in CLIP's protocol), C chosen on the
  validation split from a log grid, refitted on all training features;
- `linear_heads`: many linear heads, one per learning rate of a grid, trained together in one pass over the
  features (SGD momentum 0.9, cosine schedule, as DINOv2's linear evaluation); the head best on the validation
  split is reported.

MoCo v3 mode (`run_moco_probe`): a linear head (N(0, 0.01) weights, zero bias) on the frozen backbone in eval mode,
SGD momentum 0.9, weight decay 0, lr = base_lr × batch/256, cosine schedule, RandomResizedCrop + flip for training,
resize (256/224 × resolution) + centre crop for evaluation, 90 epochs by default.
"""
from __future__ import annotations

import math
import time
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..features import (Backbone, eval_transform, extract_features, load_backbone, pooled_features,
                        prepare_for_inference, train_transform, with_transform)

DEFAULT_C_GRID = tuple(10.0 ** k for k in range(-3, 3))
DEFAULT_LR_GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0)


def stratified_split(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, val_idx): `val_fraction` of each class (at least one where a class has ≥ 2) to validation."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    rng = np.random.default_rng(seed)
    train_idx, val_idx = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_val = min(len(idx) - 1, max(1, int(round(len(idx) * val_fraction)))) if len(idx) > 1 else 0
        val_idx.append(idx[:n_val])
        train_idx.append(idx[n_val:])
    return np.sort(np.concatenate(train_idx)), np.sort(np.concatenate(val_idx))


def fit_logistic_regression(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
                            c_grid: Sequence[float] = DEFAULT_C_GRID, max_iter: int = 300,
                            refit_x: np.ndarray | None = None, refit_y: np.ndarray | None = None) -> dict[str, Any]:
    """C sweep on the validation split, then a refit with the best C (on `refit_*` when given). Returns the fitted
    classifier, best C, validation accuracy per C."""
    import warnings
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    val_acc = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = LogisticRegression(max_iter=max_iter, warm_start=True)  # ascending C, each fit starts from the last
        for c in sorted(c_grid):
            clf.set_params(C=c)
            clf.fit(x_train, y_train)
            val_acc[c] = float(clf.score(x_val, y_val))
        best_c = max(c_grid, key=lambda c: (val_acc[c], -abs(math.log10(c))))
        clf = LogisticRegression(C=best_c, max_iter=max_iter)
        clf.fit(refit_x if refit_x is not None else x_train, refit_y if refit_y is not None else y_train)
    return {"classifier": clf, "best_C": best_c, "val_top1": val_acc[best_c], "val_top1_by_C": val_acc}


def train_linear_heads(x_train: np.ndarray, y_train: np.ndarray, x_eval: Sequence[np.ndarray], num_classes: int,
                       lr_grid: Sequence[float] = DEFAULT_LR_GRID, epochs: int = 100, batch_size: int = 256,
                       seed: int = 0) -> list[np.ndarray]:
    """Train one linear head per lr on the same minibatches in one pass (SGD momentum 0.9, cosine, no wd).

    Returns, for each array in `x_eval`, the predictions of every head: (len(lr_grid), N) int arrays.
    """
    gen = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(np.ascontiguousarray(x_train, dtype=np.float32))
    y = torch.from_numpy(np.asarray(y_train, dtype=np.int64))
    n_heads, dim = len(lr_grid), x.shape[1]
    weight = nn.Parameter(torch.randn(n_heads, dim, num_classes, generator=gen) * 0.01)
    bias = nn.Parameter(torch.zeros(n_heads, 1, num_classes))
    lrs = torch.tensor(lr_grid, dtype=torch.float32).view(n_heads, 1, 1)
    steps_per_epoch = max(1, math.ceil(len(x) / batch_size))
    total = epochs * steps_per_epoch
    opt = torch.optim.SGD([weight, bias], lr=1.0, momentum=0.9)  # per-head lr applied to the gradients
    step = 0
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for start in range(0, len(x), batch_size):
            idx = order[start:start + batch_size]
            logits = torch.einsum("bd,hdc->hbc", x[idx], weight) + bias
            loss = nn.functional.cross_entropy(logits.reshape(-1, num_classes), y[idx].repeat(n_heads),
                                               reduction="sum") / len(idx)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            scale = 0.5 * (1 + math.cos(math.pi * step / total))
            weight.grad.mul_(lrs * scale)
            bias.grad.mul_(lrs * scale)
            opt.step()
            step += 1
    with torch.no_grad():
        return [(torch.einsum("bd,hdc->hbc", torch.from_numpy(np.ascontiguousarray(xe, dtype=np.float32)), weight)
                 + bias).argmax(-1).numpy() for xe in x_eval]


def _num_classes(*label_arrays: np.ndarray) -> int:
    return int(max(int(a.max()) for a in label_arrays if len(a))) + 1


def fit_probes_on_features(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, *,
                           methods: Sequence[str] = ("logreg", "linear_heads"), val_fraction: float = 0.2,
                           seed: int = 0, c_grid: Sequence[float] = DEFAULT_C_GRID,
                           lr_grid: Sequence[float] = DEFAULT_LR_GRID, head_epochs: int = 100,
                           head_batch_size: int = 256, max_iter: int = 300) -> dict[str, dict[str, Any]]:
    """Both fast probes on the same features. Returns {method: {top1, val_top1, best_C | best_lr, fit_s}}."""
    unknown = set(methods) - {"logreg", "linear_heads"}
    if unknown:
        raise ValueError(f"unknown fast-probe methods {sorted(unknown)}; known: logreg, linear_heads")
    tr, va = stratified_split(y_train, val_fraction, seed)
    n_classes = _num_classes(y_train, y_test)
    results: dict[str, dict[str, Any]] = {}
    if "logreg" in methods:
        t0 = time.perf_counter()
        fit = fit_logistic_regression(x_train[tr], y_train[tr], x_train[va], y_train[va], c_grid, max_iter,
                                      refit_x=x_train, refit_y=y_train)
        results["logreg"] = {"top1": float(fit["classifier"].score(x_test, y_test)), "val_top1": fit["val_top1"],
                             "best_C": fit["best_C"], "fit_s": time.perf_counter() - t0}
    if "linear_heads" in methods:
        t0 = time.perf_counter()
        val_pred, test_pred = train_linear_heads(x_train[tr], y_train[tr], [x_train[va], x_test], n_classes,
                                                 lr_grid, head_epochs, head_batch_size, seed)
        val_acc = (val_pred == y_train[va][None]).mean(1)
        best = int(np.argmax(val_acc))
        results["linear_heads"] = {"top1": float((test_pred[best] == y_test).mean()),
                                   "val_top1": float(val_acc[best]), "best_lr": float(lr_grid[best]),
                                   "fit_s": time.perf_counter() - t0}
    return results


def run_fast_probe(model_or_spec: str | Mapping[str, Any] | nn.Module | Backbone, train_ds: Dataset,
                   test_ds: Dataset, *, checkpoint: str | None = None, resolution: int = 224, batch_size: int = 64,
                   num_workers: int = 0, cache_dir: str | None = None, use_cache: bool = True,
                   methods: Sequence[str] = ("logreg", "linear_heads"), val_fraction: float = 0.2, seed: int = 0,
                   c_grid: Sequence[float] = DEFAULT_C_GRID, lr_grid: Sequence[float] = DEFAULT_LR_GRID,
                   head_epochs: int = 100, max_iter: int = 300) -> dict[str, Any]:
    """Fast linear probe: cached frozen features → logistic regression (C sweep) and lr-grid linear heads.

    Returns {'backbone': record info, 'results': {method: {top1, val_top1, ...}}, 'n_train', 'n_test',
    'feature_dim', 'extract_s'}.
    """
    backbone = load_backbone(model_or_spec, checkpoint, img_size=resolution)
    t0 = time.perf_counter()
    x_train, y_train = extract_features(backbone, train_ds, resolution=resolution, batch_size=batch_size,
                                        num_workers=num_workers, cache_dir=cache_dir, use_cache=use_cache,
                                        desc="train features")
    x_test, y_test = extract_features(backbone, test_ds, resolution=resolution, batch_size=batch_size,
                                      num_workers=num_workers, cache_dir=cache_dir, use_cache=use_cache,
                                      desc="test features")
    extract_s = time.perf_counter() - t0
    results = fit_probes_on_features(x_train, y_train, x_test, y_test, methods=methods, val_fraction=val_fraction,
                                     seed=seed, c_grid=c_grid, lr_grid=lr_grid, head_epochs=head_epochs,
                                     max_iter=max_iter)
    return {"backbone": backbone.record_info(), "results": results, "n_train": int(len(y_train)),
            "n_test": int(len(y_test)), "feature_dim": int(x_train.shape[1]), "extract_s": extract_s}


class _ProbeModel(nn.Module):
    """Frozen backbone (its inference module, `prepare_for_inference`) + trainable linear head."""

    def __init__(self, features: nn.Module, feature_dim: int, num_classes: int) -> None:
        super().__init__()
        self.features = features
        self.head = nn.Linear(feature_dim, num_classes)
        nn.init.normal_(self.head.weight, std=0.01)
        nn.init.zeros_(self.head.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            feats = pooled_features(self.features, images.contiguous(memory_format=torch.channels_last))
        return self.head(feats)


def run_moco_probe(model_or_spec: str | Mapping[str, Any] | nn.Module | Backbone, train_ds: Dataset,
                   test_ds: Dataset, num_classes: int, *, checkpoint: str | None = None, resolution: int = 224,
                   epochs: int = 90, batch_size: int = 256, base_lr: float = 0.1, num_workers: int = 0,
                   seed: int = 0, max_steps: int | None = None) -> dict[str, Any]:
    """MoCo v3 linear classification protocol (see module doc). Returns {'backbone', 'results': {'moco_v3':
    {top1, lr, epochs}}, 'n_train', 'n_test'}. `max_steps` caps the optimisation (smoke runs)."""
    from tqdm import tqdm
    backbone = load_backbone(model_or_spec, checkpoint, img_size=resolution)
    torch.manual_seed(seed)
    with_transform(train_ds, train_transform(resolution, backbone.mean, backbone.std))
    loader = DataLoader(train_ds, batch_size=batch_size, shuffle=True, num_workers=num_workers, drop_last=False,
                        generator=torch.Generator().manual_seed(seed))
    features = prepare_for_inference(backbone.model, "cpu")
    with torch.no_grad():
        probe_in = torch.zeros(2, 3, resolution, resolution)
        feature_dim = pooled_features(features, probe_in).shape[1]
    model = _ProbeModel(features, feature_dim, num_classes)
    lr = base_lr * batch_size / 256
    opt = torch.optim.SGD(model.head.parameters(), lr=lr, momentum=0.9, weight_decay=0.0)
    total = epochs * len(loader) if max_steps is None else min(max_steps, epochs * len(loader))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, total))
    features.eval()
    step = 0
    with tqdm(total=total, desc=f"moco-v3 probe [{backbone.name}]", unit="step", leave=False) as bar:
        for _ in range(epochs):
            for images, targets in loader:
                loss = nn.functional.cross_entropy(model(images), torch.as_tensor(targets))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                step += 1
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}")
                if step >= total:
                    break
            if step >= total:
                break
    with_transform(test_ds, eval_transform(resolution, backbone.mean, backbone.std))
    correct = n = 0
    with torch.no_grad():
        for images, targets in DataLoader(test_ds, batch_size=batch_size, num_workers=num_workers):
            correct += int((model(images).argmax(1) == torch.as_tensor(targets)).sum())
            n += len(targets)
    return {"backbone": backbone.record_info(), "n_train": len(train_ds), "n_test": n,
            "results": {"moco_v3": {"top1": correct / max(n, 1), "lr": lr, "epochs": epochs, "steps": step}}}


def binomial_ci95(accuracy: float, n: int) -> float:
    """Half-width of the normal-approximation binomial 95% interval of an accuracy measured on `n` images."""
    return 1.96 * math.sqrt(accuracy * (1 - accuracy) / max(n, 1))


def probe_records(run: Mapping[str, Any], dataset: str, *, resolution: int, seed: int, val_fraction: float = 0.2,
                  config: Any = None) -> list[dict[str, Any]]:
    """One result record per method of a `run_fast_probe` / `run_moco_probe` result (task 'linear_probe'), with the
    binomial 95% interval of the test accuracy as `ci95`."""
    from contracts.records import make_record
    records = []
    for method, res in run["results"].items():
        metrics = {k.lower(): v for k, v in res.items() if isinstance(v, (int, float))}  # best_C → best_c
        metrics["ci95"] = binomial_ci95(metrics["top1"], run["n_test"])
        setting = {"method": method, "resolution": resolution, "n_train": run["n_train"], "n_test": run["n_test"],
                   "seed": seed, "val_fraction": val_fraction}
        records.append(make_record("linear_probe", dataset=dataset, split="test", metrics=metrics,
                                   backbone=run["backbone"], setting=setting, config=config))
    return records
