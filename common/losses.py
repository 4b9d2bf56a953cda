"""Loss functions for Trainer's `compute_loss_func`: class-weighted losses for imbalanced data."""
import numpy as np
import torch
import torch.nn.functional as F

from common.errors import UserError
from common.labels import MULTI, REGRESSION


def from_class_weights_flag(spec, label_set, encoded, cfg):
    """--class_weights as Trainer's compute_loss_func; None (the model's own loss) when not given."""
    if not spec or not cfg.training.do_train:
        return None
    return weighted_loss(label_set, class_weights(spec, label_set, encoded["train"]["labels"]))


def class_weights(spec, label_set, targets) -> torch.Tensor:
    """spec 'balanced' (n / (k * count), like scikit-learn) or one comma-separated weight per label.

    For multi-label data 'balanced' gives each label the positive weight negatives / positives."""
    k = label_set.num_labels
    if spec != "balanced":
        try:
            weights = [float(w) for w in spec.split(",")]
        except ValueError:
            weights = []
        if len(weights) != k:
            raise UserError(f"--class_weights {spec}: give 'balanced' or {k} comma-separated numbers, "
                            f"one per label in the order {label_set.names}")
        return torch.tensor(weights, dtype=torch.float)
    targets = np.asarray(targets)
    if label_set.problem_type == MULTI:
        positives = targets.sum(axis=0)
        return torch.tensor((len(targets) - positives) / np.maximum(positives, 1), dtype=torch.float)
    counts = np.bincount(targets, minlength=k)
    return torch.tensor(len(targets) / (k * np.maximum(counts, 1)), dtype=torch.float)


def weighted_loss(label_set, weights):
    if label_set.problem_type == REGRESSION:
        raise UserError("--class_weights applies to classification, not regression")

    def loss(outputs, labels, num_items_in_batch=None):
        logits = outputs.logits.float()
        w = weights.to(logits.device)
        if label_set.problem_type == MULTI:
            return F.binary_cross_entropy_with_logits(logits, labels.float(), pos_weight=w)
        return F.cross_entropy(logits.view(-1, logits.size(-1)), labels.view(-1), weight=w)
    return loss
