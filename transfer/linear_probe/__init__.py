"""Linear probe of frozen backbones: MoCo v3 protocol and fast cached-feature mode (logistic regression C sweep,
lr-grid linear heads). `python -m transfer.linear_probe --help`."""
from .datasets import DatasetNotFound, build_dataset, canonical_name
from .probe import (fit_logistic_regression, fit_probes_on_features, probe_records, run_fast_probe, run_moco_probe,
                    stratified_split, train_linear_heads)

__all__ = ["run_fast_probe", "probe_records", "run_moco_probe", "fit_probes_on_features", "fit_logistic_regression",
           "train_linear_heads", "stratified_split", "build_dataset", "canonical_name", "DatasetNotFound"]
