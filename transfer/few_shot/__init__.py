"""CD-FSL few-shot evaluation of frozen backbones on seeded, saved episodes (paired across backbones).
`python -m transfer.few_shot --help`."""
from .datasets import LabelledImages, build_few_shot_dataset
from .episodes import evaluate_episodes, generate_episodes, load_or_create_episodes, mean_ci95
from .runner import default_episodes_path, few_shot_records, run_few_shot

__all__ = ["run_few_shot", "few_shot_records", "build_few_shot_dataset", "generate_episodes", "load_or_create_episodes",
           "evaluate_episodes", "mean_ci95", "default_episodes_path", "LabelledImages"]
