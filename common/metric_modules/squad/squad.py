"""SQuAD v1.1 and v2.0 exact match and F1, with the official evaluation scripts' semantics; the inputs
of the Hub's `squad` / `squad_v2` metrics.

    squad = evaluate.load("common/metric_modules/squad")
    squad.compute(predictions=[{"id": "1", "prediction_text": "Paris"}],
                  references=[{"id": "1", "answers": {"text": ["Paris"], "answer_start": [0]}}])

Answers are normalised (lower case, no punctuation, no articles a/an/the, single spaces), each prediction
scores the maximum over its gold answers, and EM/F1 are percentages. v2.0: give every prediction a
`no_answer_probability` (any score that grows with "no answer", e.g. the null score minus the best span
score); a question without gold answers is answered correctly only by "", and HasAns/NoAns scores and the
best no-answer thresholds (searched over those scores) are added.
"""
import collections
import re
import string

import datasets
import evaluate
import numpy as np

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = set(string.punctuation)


class Squad(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__, citation="", inputs_description="predictions: id, prediction_text "
                                                                 "(+ no_answer_probability for v2.0); references: id, answers",
            features=datasets.Features({
                "predictions": {"id": datasets.Value("string"), "prediction_text": datasets.Value("string"),
                                "no_answer_probability": datasets.Value("float64")},
                "references": {"id": datasets.Value("string"),
                               "answers": {"text": datasets.Sequence(datasets.Value("string")),
                                           "answer_start": datasets.Sequence(datasets.Value("int32"))}}}))

    def _compute(self, predictions, references):
        texts = {p["id"]: p["prediction_text"] for p in predictions}
        golds = {r["id"]: list(r["answers"]["text"]) for r in references}
        odds = {p["id"]: p["no_answer_probability"] for p in predictions}
        given = [v is not None for v in odds.values()]
        if any(given) and not all(given):
            raise ValueError("no_answer_probability: give it for every prediction (v2.0) or for none (v1.1)")
        return score(texts, golds, odds if any(given) else None)


def normalize_answer(text: str) -> str:
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, gold: str) -> int:
    return int(normalize_answer(prediction) == normalize_answer(gold))


def f1(prediction: str, gold: str) -> float:
    pred_tokens, gold_tokens = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not pred_tokens or not gold_tokens:  # v2.0: "no answer" agrees only with "no answer"
        return float(pred_tokens == gold_tokens)
    common = collections.Counter(pred_tokens) & collections.Counter(gold_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def score(predictions: dict, golds: dict, null_odds: dict = None) -> dict:
    """predictions: id -> text; golds: id -> list of gold texts ([] for unanswerable). With null_odds
    (id -> null score minus best span score, v2.0): HasAns/NoAns splits and the best thresholds."""
    exact, f1s = {}, {}
    for qid, golds_of_q in golds.items():
        golds_of_q = [g for g in golds_of_q if normalize_answer(g)] or [""]
        exact[qid] = max(exact_match(predictions[qid], g) for g in golds_of_q)
        f1s[qid] = max(f1(predictions[qid], g) for g in golds_of_q)
    out = {"exact_match": _percent(exact.values()), "f1": _percent(f1s.values())}
    if null_odds is None:
        return out
    has_answer = {qid: any(normalize_answer(g) for g in g_list) for qid, g_list in golds.items()}
    for name, wanted in (("HasAns", True), ("NoAns", False)):
        ids = [qid for qid in golds if has_answer[qid] == wanted]
        out.update({f"{name}_exact": _percent(exact[q] for q in ids), f"{name}_f1": _percent(f1s[q] for q in ids),
                    f"{name}_total": len(ids)})
    for name, raw_scores in (("exact", exact), ("f1", f1s)):
        best, threshold = best_threshold(predictions, raw_scores, null_odds, has_answer)
        out.update({f"best_{name}": best, f"best_{name}_thresh": threshold})
    return out


def best_threshold(predictions, raw_scores, null_odds, has_answer):
    """The official script's search: sweep the no-answer threshold over the observed null odds, in
    increasing order; every question above the threshold answers "" instead."""
    ids = sorted(raw_scores, key=lambda q: null_odds[q])
    current = best = sum(not has_answer[q] for q in ids)  # as if every question answered ""
    threshold = 0.0
    for qid in ids:  # raising the threshold past this question makes it answer with its span
        if has_answer[qid]:
            current += raw_scores[qid]
        elif predictions[qid]:
            current -= 1
        if current > best:
            best, threshold = current, null_odds[qid]
    return 100.0 * best / max(len(ids), 1), float(threshold)


def _percent(values) -> float:
    values = list(values)
    return 100.0 * float(np.mean(values)) if values else 0.0
