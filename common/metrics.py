"""Metrics through the `evaluate` API: this project's own metrics are local evaluate modules
(common/metric_modules/NAME/NAME.py), loaded by path, so nothing is fetched and they work offline:

    metric = evaluate.load("common/metric_modules/classification")   # or common.metrics.load("classification")
    metric.compute(predictions=[0, 1, 1], references=[0, 1, 0], num_labels=2)

Each returns a flat dict of floats (what Trainer logs). A Hub metric (evaluate.load("accuracy")) takes the
same call where the Hub is reachable (--metric_name in text classification).
"""
import functools
import logging
import os

import numpy as np
from sklearn import metrics as skm

from common.errors import UserError
from common.labels import MULTI, REGRESSION

logger = logging.getLogger(__name__)
MODULES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "metric_modules")


@functools.lru_cache(maxsize=None)
def load(name: str):
    """One of this project's metrics (classification, regression, multi_label, seqeval_entities, squad) as an
    evaluate module. keep_in_memory: no cache files, so several processes of one launch never share one."""
    import evaluate
    return evaluate.load(os.path.join(MODULES, name), keep_in_memory=True)


def classification(pred_ids, gold_ids, num_labels) -> dict:
    return load("classification").compute(predictions=pred_ids, references=gold_ids, num_labels=num_labels)


def per_class_report(pred_ids, gold_ids, names) -> dict:
    """Precision, recall, F1 and support for each class by name, plus the averages."""
    return skm.classification_report(gold_ids, pred_ids, labels=list(range(len(names))), target_names=names,
                                     output_dict=True, zero_division=0)


def regression(predictions, gold) -> dict:
    return load("regression").compute(predictions=np.asarray(predictions, float).ravel(),
                                      references=np.asarray(gold, float).ravel())


def multi_label(pred_hot, gold_hot) -> dict:
    return load("multi_label").compute(predictions=np.asarray(pred_hot, int), references=np.asarray(gold_hot, int))


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


def for_labels(label_set, threshold=0.5, metric_name=None):
    """A compute_metrics(eval_prediction, split) for training.TrainerFactory, for a common.labels.LabelSet.
    metric_name (run_classification's --metric_name): an evaluate module too, by Hub name or local path; its
    results join these (main metric and reports use these)."""
    extra = named(metric_name, label_set.problem_type) if metric_name else None

    def compute(eval_prediction, split=None):  # every split is scored alike
        logits, gold = eval_prediction.predictions, eval_prediction.label_ids
        logits = logits[0] if isinstance(logits, tuple) else logits
        if label_set.problem_type == REGRESSION:
            predicted = scores_from_logits(logits, REGRESSION)
            out = regression(predicted, gold)
        elif label_set.problem_type == MULTI:
            predicted, gold = (scores_from_logits(logits, MULTI) >= threshold).astype(int), np.asarray(gold, int)
            out = multi_label(predicted, gold)
        else:
            predicted = np.argmax(logits, axis=-1)
            out = classification(predicted, gold, label_set.num_labels)
        if extra is not None:
            out.update(extra.compute(predictions=predicted, references=gold))
        return out
    return compute


# Hub metrics whose scores the project's own modules already compute: never fetched (no Hub behind a firewall).
COMPUTED_HERE = {"accuracy", "f1", "precision", "recall", "mse", "mae", "pearsonr", "spearmanr"}


def named(metric_name, problem_type):
    """An evaluate module by Hub name or path, as run_classification loads --metric_name (multi-label: its
    `multilabel` configuration). Loaded before training, so a name that cannot load stops the run first.
    A Hub name the project's own modules cover (HF's defaults: accuracy, f1, mse, ...) loads nothing: None."""
    import evaluate
    if metric_name in COMPUTED_HERE:
        logger.warning("--metric_name %s: computed by the project's own metric module, offline", metric_name)
        return None
    try:
        return evaluate.load(metric_name, "multilabel" if problem_type == MULTI else None, keep_in_memory=True)
    except Exception as err:  # offline Hub, unknown name, a module that fails to import
        raise UserError(f"--metric_name {metric_name}: could not load it ({str(err).splitlines()[0][:200]}); "
                        f"give the path of a local evaluate module, e.g. {os.path.join(MODULES, 'classification')}, "
                        f"or leave it out: these metrics are computed anyway") from None
