"""SQuAD answers and the official SQuAD v1.1 / v2.0 metrics, implemented here (the Hub's "squad" metric
module for `evaluate` downloads its script and fails offline).

Semantics follow the official evaluation scripts: answers are normalised (lower case, no punctuation,
no articles a/an/the, single spaces), each prediction scores the maximum over its gold answers, and
EM/F1 are percentages. v2.0: a question without gold answers is answered correctly only by "", and
the best no-answer threshold is searched on the null odds (null score minus best span score).
"""
import collections
import json
import logging
import re
import string

import numpy as np

from common.errors import UserError

logger = logging.getLogger(__name__)

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = set(string.punctuation)


def answers_of(value):
    """Gold answers of one row as (texts, starts), whatever shape the file gave them:
    {text: [...], answer_start: [...]} (Hub squad), {text: "..", answer_start: 3}, a list of such
    records, or any of those as a JSON string (a CSV cell). None or "" means no answer."""
    if value is None or value == "":
        return [], []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise ValueError(f"not JSON: {value[:60]!r}") from None
    if isinstance(value, list):
        return [a["text"] for a in value], [int(a["answer_start"]) for a in value]
    if isinstance(value, dict):
        texts, starts = value["text"], value["answer_start"]
        if isinstance(texts, str):
            return [texts], [int(starts)]
        if len(texts) != len(starts):
            raise ValueError(f"{len(texts)} texts but {len(starts)} answer_start values")
        return list(texts), [int(s) for s in starts]
    raise ValueError(f"unsupported answer value {value!r}")


def example_ids(ds) -> list:
    """The `id` column as strings, or the row numbers when there is none."""
    return [str(i) for i in ds["id"]] if "id" in ds.column_names else [str(i) for i in range(len(ds))]


def check_examples(raw, answer_column, flag="answer_column_name"):
    """Every labelled row's answers must parse and ids must be unique (predictions.json is keyed by id):
    a problem is a one-line error naming the file, the row and the fix."""
    for split, ds in raw.splits.items():
        ids = example_ids(ds)
        if len(set(ids)) < len(ids):
            seen = set()
            dup = next(i for i in ids if i in seen or seen.add(i))
            raise UserError(f"{raw.sources[split]}: id '{dup}' occurs more than once; ids must be unique "
                            f"(drop the 'id' column to number the rows instead)")
        if answer_column not in ds.column_names:
            continue
        for i, value in enumerate(ds[answer_column]):
            try:
                texts, starts = answers_of(value)
                if any(not isinstance(t, str) for t in texts):
                    raise ValueError("answer texts must be strings")
            except (ValueError, KeyError, TypeError) as err:
                raise UserError(f"{raw.sources[split]}: row {i + 1}, column '{answer_column}' (--{flag}): {err}; "
                                f'expected {{"text": [...], "answer_start": [...]}}') from None


def has_unanswerable(raw, answer_column) -> bool:
    """SQuAD v2.0-style data: some labelled question has no gold answer."""
    return any(not answers_of(value)[0] for ds in raw.splits.values() if answer_column in ds.column_names
               for value in ds[answer_column])


def drop_mismatched_answers(raw, context_column, answer_column, train_split="train"):
    """An answer whose answer_start does not point at its text in the context would teach the wrong span.
    Reported for every split (count and first ids); such rows are dropped from training. Evaluation keeps
    them: EM/F1 compare texts only (their windows point at CLS for the evaluation loss)."""
    for split, ds in list(raw.splits.items()):
        if answer_column not in ds.column_names:
            continue
        bad = [i for i, (context, value) in enumerate(zip(ds[context_column], ds[answer_column]))
               if any(context[s:s + len(t)] != t for t, s in zip(*answers_of(value)))]
        if not bad:
            continue
        ids = example_ids(ds)
        logger.warning("%s: %d of %d questions have an answer whose answer_start does not match its text in "
                       "the context (first ids: %s)%s", raw.sources[split], len(bad), len(ds),
                       ", ".join(ids[i] for i in bad[:5]), "; dropped from training" if split == train_split else "")
        if split == train_split:
            if len(bad) == len(ds):
                raise UserError(f"{raw.sources[split]}: no answer's answer_start matches its text in "
                                f"'{context_column}'; answer_start must be the character offset of the text")
            bad_set = set(bad)
            raw.splits[split] = ds.select([i for i in range(len(ds)) if i not in bad_set])


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
