"""SQuAD answers: their shapes, checks, and the official SQuAD v1.1 / v2.0 metrics, which live in the local
evaluate module common/metric_modules/squad (the official scripts' semantics; nothing downloaded).
"""
import json
import logging

from common import metrics
from common.errors import UserError
from common.metric_modules.squad.squad import exact_match, f1, normalize_answer  # noqa: F401 (per-answer scores)

logger = logging.getLogger(__name__)


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


def detect_columns(raw, data_args):
    """(question, context, answers): the flags' columns, else found as run_qa finds them: `question`, `context`
    and `answers` if present, else the first, second and third columns. Logged, and written back so
    run_config.yaml records them."""
    split, ds = next(iter(raw.splits.items()))
    columns = ds.column_names
    flags = ("question_column_name", "context_column_name", "answer_column_name")
    chosen = []
    for position, (flag, default) in enumerate(zip(flags, ("question", "context", "answers"))):
        given = getattr(data_args, flag)
        chosen.append(given or (default if default in columns or position >= len(columns) else columns[position]))
    if [getattr(data_args, f) for f in flags] != chosen:
        logger.warning("question, context and answers in columns %s (found in %s; --question_column_name, "
                       "--context_column_name and --answer_column_name set them)", ", ".join(chosen), raw.sources[split])
    for flag, column in zip(flags, chosen):
        setattr(data_args, flag, column)
    return chosen


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


def score(predictions: dict, golds: dict, null_odds: dict = None) -> dict:
    """predictions: id -> text; golds: id -> list of gold texts ([] for unanswerable). With null_odds
    (id -> null score minus best span score, v2.0): HasAns/NoAns splits and the best thresholds. Computed by
    the evaluate module common/metric_modules/squad, in the inputs of the Hub's squad / squad_v2 metrics."""
    rows = [{"id": qid, "prediction_text": text, "no_answer_probability": None if null_odds is None else null_odds[qid]}
            for qid, text in predictions.items()]
    references = [{"id": qid, "answers": {"text": texts, "answer_start": [0] * len(texts)}}
                  for qid, texts in golds.items()]
    return metrics.load("squad").compute(predictions=rows, references=references)
