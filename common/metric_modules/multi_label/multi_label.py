"""Multi-label classification: subset accuracy (every label right), precision/recall/F1 micro and macro.

    evaluate.load("common/metric_modules/multi_label").compute(predictions=[[1, 0, 1]], references=[[1, 0, 0]])

predictions, references: one 0/1 list per example, a place per label. Scores with scikit-learn, zero_division=0.
"""
import datasets
import evaluate
import numpy as np
from sklearn import metrics as skm


class MultiLabel(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__, citation="", inputs_description="multi-hot 0/1 lists",
            features=datasets.Features({"predictions": datasets.Sequence(datasets.Value("int64")),
                                        "references": datasets.Sequence(datasets.Value("int64"))}))

    def _compute(self, predictions, references):
        predictions, references = np.asarray(predictions, int), np.asarray(references, int)
        out = {"subset_accuracy": skm.accuracy_score(references, predictions)}
        for average in ("micro", "macro"):
            p, r, f, _ = skm.precision_recall_fscore_support(references, predictions, average=average,
                                                             zero_division=0)
            out.update({f"f1_{average}": f, f"precision_{average}": p, f"recall_{average}": r})
        return {k: float(v) for k, v in out.items()}
