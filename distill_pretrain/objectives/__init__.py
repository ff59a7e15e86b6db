"""Training objectives, a registry the trainer's config names (`objective=dict(type='stored', ...)`).

An objective is an `Objective` (an `nn.Module`): it owns what its loss needs beyond the student — a decoder, a
head-mapping layer, a frozen teacher — and returns the loss of one batch. The trainer optimises the student's and
the objective's trainable parameters, checkpoints both state dicts (never the teacher's) and calls nothing else.
"""
from .base import OBJECTIVES, Objective
from .dmae import DMAEObjective
from .mae import MAEObjective
from .tinymim import TinyMIMObjective

__all__ = ["OBJECTIVES", "Objective", "MAEObjective", "DMAEObjective", "TinyMIMObjective"]
