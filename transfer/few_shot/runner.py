"""`run_few_shot`: CD-FSL evaluation of a frozen backbone on saved, seeded episodes."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from torch import nn
from torch.utils.data import Dataset, Subset

from ..features import Backbone, dataset_fingerprint, dataset_targets, extract_features, load_backbone
from .episodes import evaluate_episodes, load_or_create_episodes


def default_episodes_path(dataset_name: str, n_way: int, n_shot: int, n_query: int, n_episodes: int,
                          seed: int) -> Path:
    from contracts.assets import REPO_ROOT
    return (REPO_ROOT / "results" / "episodes"
            / f"{dataset_name}_{n_way}way{n_shot}shot{n_query}query_{n_episodes}ep_seed{seed}.json")


def run_few_shot(model_or_spec: str | Mapping[str, Any] | nn.Module | Backbone, dataset: Dataset, n_way: int = 5,
                 n_shot: int = 5, n_query: int = 15, n_episodes: int = 600, seed: int = 0, *,
                 dataset_name: str = "dataset", episodes_path: str | Path | None = None,
                 checkpoint: str | None = None, resolution: int = 224, batch_size: int = 64, num_workers: int = 0,
                 cache_dir: str | Path | None = None, use_cache: bool = True,
                 methods: Sequence[str] = ("finetune", "logreg"), finetune_epochs: int = 100) -> dict[str, Any]:
    """Evaluate a frozen backbone on `n_episodes` seeded episodes (saved to / read from `episodes_path`).

    Only the images used by some episode are embedded (cached like the linear probe's features). Returns
    {'backbone', 'results': {method: {top1, ci95, accuracies}}, 'episodes_path', 'n_images', 'extract_s'}.
    """
    backbone = load_backbone(model_or_spec, checkpoint, img_size=resolution)
    labels = dataset_targets(dataset)
    path = Path(episodes_path) if episodes_path is not None else default_episodes_path(
        dataset_name, n_way, n_shot, n_query, n_episodes, seed)
    episodes = load_or_create_episodes(path, labels, dataset_fingerprint(dataset), dataset=dataset_name,
                                       n_way=n_way, n_shot=n_shot, n_query=n_query, n_episodes=n_episodes,
                                       seed=seed)
    used = sorted({i for ep in episodes for i in ep["support"] + ep["query"]})
    t0 = time.perf_counter()
    features, _ = extract_features(backbone, Subset(dataset, used), resolution=resolution, batch_size=batch_size,
                                   num_workers=num_workers, cache_dir=cache_dir, use_cache=use_cache,
                                   desc="episode images")
    extract_s = time.perf_counter() - t0
    results = evaluate_episodes(features, used, episodes, n_way, methods=methods, seed=seed,
                                finetune_epochs=finetune_epochs)
    return {"backbone": backbone.record_info(), "results": results, "episodes_path": str(path),
            "n_images": len(used), "extract_s": extract_s, "n_way": n_way, "n_shot": n_shot, "n_query": n_query,
            "n_episodes": n_episodes, "seed": seed, "resolution": resolution}


def few_shot_records(run: Mapping[str, Any], dataset: str, *, config: Any = None) -> list[dict[str, Any]]:
    """One result record per method of a `run_few_shot` result (task 'few_shot', metrics top1 and ci95)."""
    from contracts.records import make_record
    records = []
    for method, res in run["results"].items():
        setting = {"method": method, "n_way": run["n_way"], "n_shot": run["n_shot"], "n_query": run["n_query"],
                   "n_episodes": run["n_episodes"], "seed": run["seed"], "resolution": run["resolution"],
                   "episodes_file": Path(run["episodes_path"]).name}
        records.append(make_record("few_shot", dataset=dataset, split="episodes", backbone=run["backbone"],
                                   metrics={"top1": res["top1"], "ci95": res["ci95"]}, setting=setting,
                                   config=config))
    return records
