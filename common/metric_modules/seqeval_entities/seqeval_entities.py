"""Entity-level precision/recall/F1 (seqeval, strict), overall and per type, plus word-level tag accuracy.

    evaluate.load("common/metric_modules/seqeval_entities").compute(
        predictions=[["B-PER", "I-PER", "O"]], references=[["B-PER", "O", "O"]], scheme="IOB2")

Strict: an entity counts only if its span and type match exactly and it is well-formed in the scheme
(IOB2 or BIOES). Keys: precision, recall, f1, accuracy, and <TYPE>_precision/_recall/_f1/_support.
"""
import datasets
import evaluate
from seqeval.metrics import classification_report
from seqeval.scheme import IOB2, IOBES


class SeqevalEntities(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__, citation="", inputs_description="one tag list per sentence; scheme: IOB2 or BIOES",
            features=datasets.Features({"predictions": datasets.Sequence(datasets.Value("string")),
                                        "references": datasets.Sequence(datasets.Value("string"))}))

    def _compute(self, predictions, references, scheme="IOB2"):
        report = classification_report(references, predictions, mode="strict",
                                       scheme=IOBES if scheme == "BIOES" else IOB2, output_dict=True, zero_division=0)
        pairs = [(g, p) for gs, ps in zip(references, predictions) for g, p in zip(gs, ps)]
        micro = report.get("micro avg", {"precision": 0.0, "recall": 0.0, "f1-score": 0.0})
        out = {"precision": micro["precision"], "recall": micro["recall"], "f1": micro["f1-score"],
               "accuracy": sum(g == p for g, p in pairs) / max(len(pairs), 1)}
        for kind, scores in report.items():
            if not kind.endswith(" avg"):
                out.update({f"{kind}_precision": scores["precision"], f"{kind}_recall": scores["recall"],
                            f"{kind}_f1": scores["f1-score"], f"{kind}_support": scores["support"]})
        return {k: float(v) for k, v in out.items()}
