"""Training objectives, a registry the trainer's config names (`objective=dict(type='stored', ...)`).

An objective is an `Objective` (an `nn.Module`): it owns what its loss needs beyond the student — a decoder, a
head-mapping layer, a frozen teacher — and returns the loss of one batch. The trainer optimises the student's and
the objective's trainable parameters, checkpoints both state dicts (never the teacher's) and calls nothing else.

Built in: `stored` (fast distillation from the logit store), `online` (teacher every step), `scratch`
(ground-truth labels from random weights), `finetune` (the same loss from `student.init`); for plain-ViT students
`mae`, `dmae` (MAE + attention-map distillation) and `tinymim` (relation distillation).

Adding one: subclass `Objective` in a module of this package, decorate it with
`@OBJECTIVES.register_module("name")` and import it below; its constructor takes the config's arguments (and
`student`, if it needs the built student to size a decoder); `forward` returns `{"loss": ..., **0-d tensors to
log}`; set `needs_store` / `needs_teacher` / `needs_labels` / `needs_init` / `find_unused_parameters` as it needs.
A config then says `objective=dict(type="name", ...)`.
"""
from .base import OBJECTIVES, Objective, build_objective, check_objective_cfg, objective_class
from .dmae import DMAEObjective
from .losses import label_targets, soft_cross_entropy
from .mae import MAEObjective
from .online import OnlineDistillation
from .stored import StoredDistillation
from .supervised import Finetune, Supervised
from .tinymim import TinyMIMObjective

__all__ = ["OBJECTIVES", "Objective", "build_objective", "check_objective_cfg", "objective_class",
           "soft_cross_entropy", "label_targets", "StoredDistillation", "OnlineDistillation", "Supervised", "Finetune",
           "MAEObjective", "DMAEObjective", "TinyMIMObjective"]
