"""Class imbalance: a class-weighted and/or focal loss (Trainer's `compute_loss_func`), and oversampling of
the rarer classes in the training split."""
import logging

import numpy as np
import torch
import torch.nn.functional as F

from common import collators
from common.errors import UserError
from common.labels import MULTI, REGRESSION

logger = logging.getLogger(__name__)


def loss_from_flags(cfg, label_set, encoded):
    """--class_weights and --focal_gamma as Trainer's compute_loss_func; None (the model's own loss) without them."""
    spec, gamma = cfg.run.class_weights, cfg.run.focal_gamma
    if not (spec or gamma) or not cfg.training.do_train:
        return None
    if label_set.problem_type == REGRESSION:
        raise UserError(f"--{'class_weights' if spec else 'focal_gamma'} applies to classification, not regression")
    if gamma is not None and gamma < 0:
        raise UserError(f"--focal_gamma {gamma}: give 0 (plain cross-entropy) or more, e.g. 2")
    weights = class_weights(spec, label_set, encoded["train"]["labels"]) if spec else None
    return classification_loss(label_set.problem_type == MULTI, weights, gamma or 0.0)


def class_weights(spec, label_set, targets) -> torch.Tensor:
    """spec 'balanced' (n / (k * count), like scikit-learn) or one comma-separated weight per label.

    For multi-label data 'balanced' gives each label the positive weight negatives / positives. Token
    targets (NER: one list per sentence) are counted over the scored positions."""
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
    if label_set.problem_type == MULTI:
        targets = np.asarray(targets)
        positives = targets.sum(axis=0)
        return torch.tensor((len(targets) - positives) / np.maximum(positives, 1), dtype=torch.float)
    flat = np.concatenate([np.ravel(t) for t in targets]) if targets and np.ndim(targets[0]) else np.asarray(targets)
    flat = flat[flat != collators.IGNORED]
    counts = np.bincount(flat, minlength=k)
    return torch.tensor(len(flat) / (k * np.maximum(counts, 1)), dtype=torch.float)


def classification_loss(multi_label, weights=None, gamma=0.0):
    """Cross-entropy (binary per label when multi_label), optionally class-weighted, optionally focal:
    each example's loss times (1 - p_true)^gamma, so confident right answers count less (Lin et al. 2017)."""
    def loss(outputs, labels, num_items_in_batch=None):
        logits = outputs.logits.float()
        w = None if weights is None else weights.to(logits.device)
        if multi_label:
            labels = labels.float()
            per_item = F.binary_cross_entropy_with_logits(logits, labels, pos_weight=w, reduction="none")
            if gamma:
                p = torch.sigmoid(logits)
                per_item = per_item * (1 - torch.where(labels > 0.5, p, 1 - p)) ** gamma
            return per_item.mean()
        logits, labels = logits.view(-1, logits.size(-1)), labels.view(-1)
        scored = labels != collators.IGNORED
        logits, labels = logits[scored], labels[scored]
        log_p = F.log_softmax(logits, dim=-1).gather(1, labels[:, None]).squeeze(1)
        per_item = -log_p * (1 - log_p.exp()) ** gamma if gamma else -log_p
        item_weights = torch.ones_like(per_item) if w is None else w[labels]
        return (per_item * item_weights).sum() / item_weights.sum().clamp_min(1e-12)  # = F.cross_entropy's mean
    return loss


def oversampled(train, label_column, seed):
    """The training split with rarer classes' examples repeated (drawn with replacement, seeded) until every
    class is as frequent as the most common one. Single-label targets only."""
    targets = train[label_column]
    if targets and not np.isscalar(targets[0]):
        raise UserError("--oversample applies to single-label classification (one class per example); for "
                        "multi-label or token labels use --class_weights or --focal_gamma")
    targets = np.asarray(targets)
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(targets, return_counts=True)
    extra = [rng.choice(np.flatnonzero(targets == c), counts.max() - n, replace=True)
             for c, n in zip(classes, counts) if n < counts.max()]
    if not extra:
        return train
    indices = np.concatenate([np.arange(len(targets)), *extra])
    logger.warning("--oversample: %d training examples become %d (%d per class)", len(targets), len(indices),
                   counts.max())
    return train.select(indices)
