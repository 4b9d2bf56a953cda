"""Metrics, computed here with scikit-learn and scipy: no Hub download, so they work offline.

Each function takes plain arrays and returns a flat dict of floats (what Trainer logs).
"""
import numpy as np
from scipy import stats
from sklearn import metrics as skm

from common.labels import MULTI, REGRESSION


def classification(pred_ids, gold_ids, num_labels) -> dict:
    labels = list(range(num_labels))
    out = {"accuracy": skm.accuracy_score(gold_ids, pred_ids)}
    for average in ("macro", "micro", "weighted"):
        p, r, f, _ = skm.precision_recall_fscore_support(gold_ids, pred_ids, labels=labels,
                                                         average=average, zero_division=0)
        out.update({f"f1_{average}": f, f"precision_{average}": p, f"recall_{average}": r})
    return _floats(out)


def per_class_report(pred_ids, gold_ids, names) -> dict:
    """Precision, recall, F1 and support for each class by name, plus the averages."""
    return skm.classification_report(gold_ids, pred_ids, labels=list(range(len(names))), target_names=names,
                                     output_dict=True, zero_division=0)


def regression(predictions, gold) -> dict:
    predictions, gold = np.asarray(predictions, float).ravel(), np.asarray(gold, float).ravel()
    mse = skm.mean_squared_error(gold, predictions)
    constant = np.ptp(predictions) == 0 or np.ptp(gold) == 0  # correlation undefined
    return _floats({
        "mse": mse, "rmse": np.sqrt(mse), "mae": skm.mean_absolute_error(gold, predictions),
        "pearson": 0.0 if constant else stats.pearsonr(predictions, gold)[0],
        "spearman": 0.0 if constant else stats.spearmanr(predictions, gold)[0],
    })


def multi_label(pred_hot, gold_hot) -> dict:
    pred_hot, gold_hot = np.asarray(pred_hot, int), np.asarray(gold_hot, int)
    out = {"subset_accuracy": skm.accuracy_score(gold_hot, pred_hot)}
    for average in ("micro", "macro"):
        p, r, f, _ = skm.precision_recall_fscore_support(gold_hot, pred_hot, average=average, zero_division=0)
        out.update({f"f1_{average}": f, f"precision_{average}": p, f"recall_{average}": r})
    return _floats(out)


def main_metric(problem_type) -> tuple:
    """(name, greater_is_better) used for early stopping, best checkpoint and search by default."""
    return {MULTI: ("f1_micro", True), REGRESSION: ("rmse", False)}.get(problem_type, ("accuracy", True))


def scores_from_logits(logits, problem_type):
    """Probabilities (softmax or sigmoid) or, for regression, the raw score."""
    logits = np.asarray(logits, dtype=np.float64)
    if problem_type == REGRESSION:
        return logits.reshape(len(logits), -1)[:, 0]
    if problem_type == MULTI:
        return 1.0 / (1.0 + np.exp(-logits))
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def for_labels(label_set, threshold=0.5):
    """A Trainer `compute_metrics` for a common.labels.LabelSet."""
    def compute(eval_prediction):
        logits, gold = eval_prediction.predictions, eval_prediction.label_ids
        logits = logits[0] if isinstance(logits, tuple) else logits
        if label_set.problem_type == REGRESSION:
            return regression(scores_from_logits(logits, REGRESSION), gold)
        if label_set.problem_type == MULTI:
            return multi_label(scores_from_logits(logits, MULTI) >= threshold, gold)
        return classification(np.argmax(logits, axis=-1), gold, label_set.num_labels)
    return compute


def _floats(metrics):
    return {k: float(v) for k, v in metrics.items()}
