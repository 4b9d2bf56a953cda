"""Sequence-level classification shared by the text-classification and NLI recipes: one label (or a
score, or a set of labels) per text or text pair. Encoding, unlabelled rows and prediction files."""
import logging
import os

import numpy as np

from common import artifacts, metrics, reports
from common.data import TEST
from common.errors import UserError
from common.labels import MULTI, REGRESSION, label_key

logger = logging.getLogger(__name__)


def check_texts(raw, text_columns):
    """Every text cell must be a string: a None or number would crash deep inside the tokenizer."""
    if len(text_columns) > 2:
        raise UserError(f"--text_column_names {','.join(text_columns)}: give one column, or two for a text pair")
    for split, ds in raw.splits.items():
        for column in text_columns:
            bad = next((i for i, v in enumerate(ds[column]) if not isinstance(v, str)), None)
            if bad is not None:
                raise UserError(f"{raw.sources[split]}: data row {bad + 1} of column '{column}' is "
                                f"{ds[column][bad]!r}, not text; fill or drop such rows")


def drop_unlabelled(raw, label_set, label_column):
    """Rows without a gold label (None, NaN, or -1 as in SNLI) cannot train or score: drop them, say how many."""
    for split, ds in list(raw.splits.items()):
        if split == TEST or label_column not in ds.column_names:
            continue
        kept = ds.filter(lambda batch: [label_set.is_labelled(v) for v in batch[label_column]], batched=True)
        if len(kept) < len(ds):
            logger.warning("%s: dropped %d rows without a label", raw.sources[split], len(ds) - len(kept))
            if len(kept) == 0:
                raise UserError(f"{raw.sources[split]}: no row has a label in column '{label_column}'")
            raw.splits[split] = kept


def encoder(tokenizer, label_set, text_columns, label_column, max_length):
    """A batched `map` function: tokens of one text or a pair (no padding: the collator pads), plus labels."""
    def encode(batch):
        encoded = tokenizer(*[batch[c] for c in text_columns], truncation=True, max_length=max_length)
        gold = batch.get(label_column)
        if gold is not None and all(label_set.is_labelled(v) for v in gold):
            encoded["labels"] = [label_set.encode(v) for v in gold]
        return encoded
    return encode


def prediction_writer(label_set, text_columns, label_column, threshold=0.5):
    """Writes <split>_predictions.jsonl (predictions.jsonl for test): input, prediction, probabilities,
    gold label where known; and <split>_per_class.json and <split>_confusion_matrix.png for labelled
    single-label splits (multi-label and regression have no confusion matrix)."""
    names = label_set.names

    def gold_name(value):
        if label_set.problem_type == MULTI:
            return [names[v] if label_set.ids_given else label_key(v) for v in value]
        if label_set.problem_type == REGRESSION:
            return float(value)
        return names[value] if label_set.ids_given else label_key(value)

    def write(split, output, raw_split, output_dir):
        scores = metrics.scores_from_logits(output.predictions, label_set.problem_type)
        if len(scores) != len(raw_split):  # would mean predictions were gathered twice or lost
            raise RuntimeError(f"{split}: {len(scores)} predictions for {len(raw_split)} examples")
        rows = []
        for i, example in enumerate(raw_split):
            row = {"id": example.get("id", example.get("idx", i)),
                   "input": example[text_columns[0]] if len(text_columns) == 1
                   else {c: example[c] for c in text_columns}}
            if label_set.problem_type == REGRESSION:
                row["prediction"] = float(scores[i])
            else:
                probabilities = {name: round(float(p), 6) for name, p in zip(names, scores[i])}
                if label_set.problem_type == MULTI:
                    row["predicted_labels"] = [n for n, p in zip(names, scores[i]) if p >= threshold]
                else:
                    row["predicted_label"] = names[int(np.argmax(scores[i]))]
                row["probabilities"] = probabilities
            if label_set.is_labelled(example.get(label_column)):
                row["label"] = gold_name(example[label_column])
            rows.append(row)
        stem = "predictions" if split == TEST else f"{split}_predictions"
        artifacts.write_jsonl(os.path.join(output_dir, f"{stem}.jsonl"), rows)
        if label_set.problem_type not in (MULTI, REGRESSION) and output.label_ids is not None:
            predicted = np.argmax(scores, axis=-1)
            report = metrics.per_class_report(predicted, output.label_ids, names)
            artifacts.write_json(os.path.join(output_dir, f"{stem.replace('predictions', 'per_class')}.json"),
                                 report)
            reports.confusion_matrix_plot(output_dir, split, output.label_ids, predicted, names)
    return write
