"""Regression: mean squared and absolute error, their root, Pearson and Spearman correlation.

    evaluate.load("common/metric_modules/regression").compute(predictions=[1.0, 2.5], references=[1.0, 3.0])

A correlation is 0.0 when either side is constant (it is undefined there).
"""
import datasets
import evaluate
import numpy as np
from scipy import stats
from sklearn import metrics as skm


class Regression(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__, citation="", inputs_description="one float per example",
            features=datasets.Features({"predictions": datasets.Value("float64"),
                                        "references": datasets.Value("float64")}))

    def _compute(self, predictions, references):
        predictions, gold = np.asarray(predictions, float).ravel(), np.asarray(references, float).ravel()
        mse = skm.mean_squared_error(gold, predictions)
        constant = np.ptp(predictions) == 0 or np.ptp(gold) == 0  # correlation undefined
        out = {"mse": mse, "rmse": np.sqrt(mse), "mae": skm.mean_absolute_error(gold, predictions),
               "pearson": 0.0 if constant else stats.pearsonr(predictions, gold)[0],
               "spearman": 0.0 if constant else stats.spearmanr(predictions, gold)[0]}
        return {k: float(v) for k, v in out.items()}
