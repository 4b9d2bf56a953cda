"""Single-label classification: accuracy, and precision/recall/F1 averaged macro, micro and weighted.

    evaluate.load("common/metric_modules/classification").compute(predictions=[0, 2], references=[0, 1], num_labels=3)

predictions, references: class ids. num_labels: the classes averaged over (a class that never occurs
scores 0 in the macro average), default: those that occur. Scores with scikit-learn, zero_division=0.
"""
import datasets
import evaluate
from sklearn import metrics as skm


class Classification(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__, citation="", inputs_description="class ids; num_labels: int",
            features=datasets.Features({"predictions": datasets.Value("int64"),
                                        "references": datasets.Value("int64")}))

    def _compute(self, predictions, references, num_labels=None):
        labels = list(range(num_labels)) if num_labels else None
        out = {"accuracy": skm.accuracy_score(references, predictions)}
        for average in ("macro", "micro", "weighted"):
            p, r, f, _ = skm.precision_recall_fscore_support(references, predictions, labels=labels,
                                                             average=average, zero_division=0)
            out.update({f"f1_{average}": f, f"precision_{average}": p, f"recall_{average}": r})
        return {k: float(v) for k, v in out.items()}
