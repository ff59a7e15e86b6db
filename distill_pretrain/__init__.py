"""Fast pretraining distillation: sparse teacher-logit store with seed-encoded augmentation, student trainer."""
from .augment import AugmentConfig, ReplayDataset, collate_replay, sample_seed, sample_seeds
from .data import build_dataset, dataset_identity
from .store import LogitStore, SparseTargets, StoreError, recover_dense
from .teachers import build_teacher

__all__ = ["LogitStore", "SparseTargets", "StoreError", "recover_dense", "ReplayDataset", "AugmentConfig",
           "collate_replay", "sample_seed", "sample_seeds", "build_dataset", "dataset_identity", "build_teacher"]
