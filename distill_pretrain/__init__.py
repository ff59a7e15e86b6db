"""Fast pretraining distillation: sparse teacher-logit store with seed-encoded augmentation, student trainer."""
from .augment import AugmentConfig, ReplayDataset, collate_replay, sample_seed, sample_seeds
from .data import build_dataset, dataset_identity
from .store import LogitStore, SparseTargets, StoreError, recover_dense
from .teachers import build_teacher

__all__ = ["LogitStore", "SparseTargets", "StoreError", "recover_dense", "ReplayDataset", "AugmentConfig",
           "collate_replay", "sample_seed", "sample_seeds", "build_dataset", "dataset_identity", "build_teacher"]

# Student trainer in parts (config, dist, student, sampler, objectives, trainer; beside the loop: run_log,
# evaluation, resume). Loaded lazily so `python -m distill_pretrain.train` does not import itself twice.
_TRAINER_EXPORTS = {"Trainer": "trainer", "load_config": "config", "build_student": "student",
                    "soft_cross_entropy": "objectives", "OBJECTIVES": "objectives", "Objective": "objectives",
                    "export_backbone": "export"}
__all__ += list(_TRAINER_EXPORTS)


def __getattr__(name: str):
    if name in _TRAINER_EXPORTS:
        import importlib
        return getattr(importlib.import_module(f".{_TRAINER_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
