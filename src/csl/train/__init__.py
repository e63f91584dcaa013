"""Training: Lightning module, optimizers, schedules, checkpoints."""
