"""Building blocks of the training loop (policy/train.py): optimizer and schedule, EMA, augmentation, LoRA,
DDP setup, exact-resume state and the metrics log. Each module has one job so it can be tested alone."""
