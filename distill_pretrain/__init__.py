"""Fast pretraining distillation: sparse teacher-logit store with seed-encoded augmentation, student trainer."""
