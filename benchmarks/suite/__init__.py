"""The suite runner: one spec → every cell of the comparison tables, run locally or on SLURM, resumable cell by cell.

    python -m benchmarks.suite configs/suites/demo_fmnist.py [--dry-run] [--launcher local|slurm] [--max-parallel N]

Map (one job per file):
- `spec`: the spec (configs/suites/*.py) → checked inputs → `Cell`s with their identity;
- `tasks`: the task types and how a cell becomes the arguments of an existing CLI;
- `cells`: the output folder's layout, a cell's state (done / failed / pending), one attempt at a cell;
- `local`: the local launcher (subprocesses, `--max-parallel`); `slurm`: job arrays through submitit;
- `report`: the progress line, the dry-run listing, the final tables and failures;
- `runner`: `run_suite`, the one entry point the command line and the demo call.
The guide is docs/suite.md.
"""
from .runner import SuiteFailure, SuiteResult, run_suite

__all__ = ["run_suite", "SuiteResult", "SuiteFailure"]
