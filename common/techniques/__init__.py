"""Fine-tuning techniques behind flags (augmentation, class imbalance, learning rates, feature cache,
stalled-loss hint): task-free, used by the run pipeline or handed a task's pieces by a recipe."""
