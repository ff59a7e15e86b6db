"""End-to-end fine-tuning transfer of a pretrained TinyViT / ViT on the torchvision data sets, through the
distillation trainer's `finetune` objective. `python -m transfer.finetune --help`."""
from .harness import FinetuneData, finetune_record, record_pretrain, run_finetune, student_config

__all__ = ["run_finetune", "finetune_record", "student_config", "record_pretrain", "FinetuneData"]
