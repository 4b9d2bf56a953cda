"""Sequence-level classification shared by the text-classification and NLI recipes: one label (or a
score, or a set of labels) per text or text pair. Encoding, unlabelled rows and prediction files."""
import logging

import numpy as np

from common import artifacts, metrics, reports
from common.data import TEST
from common.errors import UserError
from common.labels import MULTI, REGRESSION, SINGLE, LabelSet, label_key

logger = logging.getLogger(__name__)

# run_glue's --task_name: GLUE tasks on the Hub and their text columns.
GLUE_TASKS = {"cola": ("sentence",), "mnli": ("premise", "hypothesis"), "mrpc": ("sentence1", "sentence2"),
              "qnli": ("question", "sentence"), "qqp": ("question1", "question2"), "rte": ("sentence1", "sentence2"),
              "sst2": ("sentence",), "stsb": ("sentence1", "sentence2"), "wnli": ("sentence1", "sentence2")}
GLUE_DATASET = "nyu-mll/glue"


def glue_task(data_args):
    """--task_name NAME, as run_glue reads it: the GLUE task from the Hub, with its text columns (and both
    MNLI evaluation sets). Without the Hub, loading stops and says to pass the task's files instead."""
    task = (data_args.task_name or "").lower()
    if not task:
        return
    if task not in GLUE_TASKS:
        raise UserError(f"--task_name {data_args.task_name}: a GLUE task ({', '.join(GLUE_TASKS)}); for other "
                        f"data drop it and pass --train_file/--validation_file or --dataset_name")
    if data_args.dataset_name or data_args.train_file:
        raise UserError(f"--task_name {task} loads GLUE from the Hub: drop it, or drop --dataset_name/--train_file")
    data_args.dataset_name, data_args.dataset_config_name = GLUE_DATASET, task
    data_args.text_column_names = data_args.text_column_names or ",".join(GLUE_TASKS[task])
    if task == "mnli" and data_args.eval_split_names == ["validation"]:
        data_args.eval_split_names = ["validation_matched", "validation_mismatched"]


def detect_text_columns(raw, data_args) -> list:
    """The text columns: --text_column_names when given, else found as run_glue finds them in local files,
    among the columns other than the label: `text` or `sentence` when there is one, else sentence1 +
    sentence2 when both exist, else the first two text (string) columns (a pair) or the only one. Logged."""
    if data_args.text_column_names:
        return data_args.text_column_names.split(",")
    split, ds = next(iter(raw.splits.items()))
    others = [c for c in ds.column_names if c != data_args.label_column_name]
    texts = [c for c in others if getattr(ds.features[c], "dtype", None) in ("string", "large_string")] or others
    single = next(([c] for c in ("text", "sentence") if c in others), None)
    chosen = single or (["sentence1", "sentence2"] if {"sentence1", "sentence2"} <= set(others) else texts[:2])
    if not chosen:
        raise UserError(f"{raw.sources[split]}: no text column besides the label '{data_args.label_column_name}'; "
                        f"columns there: {', '.join(ds.column_names)}; name it with --text_column_names")
    logger.warning("text column(s) %s, label column '%s' (found in %s; --text_column_names and "
                   "--label_column_name set them)", " + ".join(chosen), data_args.label_column_name, raw.sources[split])
    data_args.text_column_names = ",".join(chosen)  # so run_config.yaml records the choice
    return chosen


def labels_from_flags(raw, data_args) -> LabelSet:
    """The labels (--problem_type); --do_regression (run_classification's) true means regression, false never."""
    problem_type = data_args.problem_type
    if data_args.do_regression and problem_type not in (None, REGRESSION):
        raise UserError(f"--do_regression and --problem_type {problem_type} disagree: give one of them")
    problem_type = problem_type or (REGRESSION if data_args.do_regression else None)
    found = LabelSet.from_splits(raw, data_args.label_column_name, data_args.label_list, data_args.strict_labels,
                                 problem_type)
    if data_args.do_regression is False and found.problem_type == REGRESSION:
        found = LabelSet.from_splits(raw, data_args.label_column_name, data_args.label_list,
                                     data_args.strict_labels, SINGLE)
    return found


def check_texts(raw, text_columns, delimiter=None):
    """One text or a pair (or several joined by --text_column_delimiter), every cell a string."""
    if len(text_columns) > 2 and delimiter is None:
        raise UserError(f"--text_column_names {','.join(text_columns)}: give one column, or two for a text pair, "
                        f"or join several into one text with --text_column_delimiter")
    raw.require_texts(text_columns)


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


def encoder(tokenizer, label_set, text_columns, label_column, max_length, delimiter=None):
    """A batched `map` function: tokens of one text or a pair (no padding: the collator pads), plus labels.
    delimiter (run_classification's --text_column_delimiter): the columns joined into one text instead."""
    def encode(batch):
        texts = [batch[c] for c in text_columns]
        if delimiter is not None:
            texts = [[delimiter.join(parts) for parts in zip(*texts)]]
        encoded = tokenizer(*texts, truncation=True, max_length=max_length)
        gold = batch.get(label_column)
        if gold is not None and all(label_set.is_labelled(v) for v in gold):
            encoded["labels"] = [label_set.encode(v) for v in gold]
        return encoded
    return encode


def prediction_writer(label_set, text_columns, label_column, threshold=0.5):
    """Writes <split>_predictions.jsonl (predictions.jsonl for test): rows of prediction_row; and
    <split>_per_class.json and <split>_confusion_matrix.png for labelled single-label splits (multi-label
    and regression have no confusion matrix)."""
    def write(split, output, raw_split, output_dir):
        scores = metrics.scores_from_logits(output.predictions, label_set.problem_type)
        rows = prediction_rows(split, scores, raw_split, label_set, text_columns, label_column, threshold)
        artifacts.write_jsonl(artifacts.split_file(output_dir, split, artifacts.PREDICTIONS), rows)
        if label_set.problem_type not in (MULTI, REGRESSION) and output.label_ids is not None:
            predicted = np.argmax(scores, axis=-1)
            report = metrics.per_class_report(predicted, output.label_ids, label_set.names)
            artifacts.write_json(artifacts.split_file(output_dir, split, "per_class.json"), report)
            confusion_matrix_plot(output_dir, split, output.label_ids, predicted, label_set.names)
    return write


def prediction_rows(split, scores, raw_split, label_set, text_columns, label_column, threshold=0.5) -> list:
    """One prediction_row per example of raw_split; text_columns: the input shown (none for time series)."""
    if len(scores) != len(raw_split):  # would mean predictions were gathered twice or lost
        raise RuntimeError(f"{split}: {len(scores)} predictions for {len(raw_split)} examples")
    rows = []
    for i, example in enumerate(raw_split):
        texts = {c: example[c] for c in text_columns}
        gold = example.get(label_column)
        rows.append(prediction_row(
            example.get("id", example.get("idx", i)), scores[i], label_set, threshold,
            inputs=(texts[text_columns[0]] if len(texts) == 1 else texts) if texts else None,
            gold=gold_name(label_set, gold) if label_set.is_labelled(gold) else None))
    return rows


def prediction_row(example_id, scores, label_set, threshold=0.5, inputs=None, gold=None) -> dict:
    """The row layout of a sequence-level predictions file (text classification, NLI, time series; what
    common.tools.ensemble reads and averages): id, input (when given), the prediction (predicted_label,
    predicted_labels or a regression's prediction) with the class probabilities, and the gold label."""
    names = label_set.names
    row = {"id": example_id}
    if inputs is not None:
        row["input"] = inputs
    if label_set.problem_type == REGRESSION:
        row["prediction"] = float(scores)
    else:
        if label_set.problem_type == MULTI:
            row["predicted_labels"] = [n for n, p in zip(names, scores) if p >= threshold]
        else:
            row["predicted_label"] = names[int(np.argmax(scores))]
        row["probabilities"] = {name: round(float(p), 6) for name, p in zip(names, scores)}
    if gold is not None:
        row["label"] = gold
    return row


def gold_name(label_set, value):
    """A raw gold label as the predictions file shows it: names (ClassLabel ids through their names), a score."""
    names = label_set.names
    if label_set.problem_type == MULTI:
        return [names[v] if label_set.ids_given else label_key(v) for v in value]
    if label_set.problem_type == REGRESSION:
        return float(value)
    return names[value] if label_set.ids_given else label_key(value)


def confusion_matrix_plot(output_dir, split, gold_ids, predicted_ids, names):
    """<split>_confusion_matrix.png, sized to the number of labels."""
    n = len(names)
    return reports.task_plot(output_dir, split, "confusion_matrix", lambda figure: draw_confusion_matrix(
        figure, gold_ids, predicted_ids, names), size=(4 + 0.5 * n, 3 + 0.5 * n))


def draw_confusion_matrix(figure, gold_ids, predicted_ids, names):
    """Counts, gold labels as rows; each cell also shows its share of the row (recall on the diagonal)."""
    n = len(names)
    counts = np.zeros((n, n), dtype=int)
    np.add.at(counts, (np.asarray(gold_ids, dtype=int), np.asarray(predicted_ids, dtype=int)), 1)
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    axes = figure.subplots()
    image = axes.imshow(share, cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=axes, label="share of the gold label's rows")
    if n <= 30:  # beyond that, the numbers would not be readable
        for i in range(n):
            for j in range(n):
                axes.text(j, i, f"{counts[i, j]}\n{share[i, j]:.0%}", ha="center", va="center", fontsize=8,
                          color="white" if share[i, j] > 0.5 else "black")
    axes.set_xticks(range(n), names, rotation=45, ha="right")
    axes.set_yticks(range(n), names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("gold")
    accuracy = np.trace(counts) / max(counts.sum(), 1)
    axes.set_title(f"confusion matrix ({counts.sum()} examples, accuracy {accuracy:.3f})")


def usage(model_dir) -> str:
    """The model card's "Use it" code: the text-classification pipeline, for one text or a pair."""
    return (f"from transformers import pipeline\n\nclassify = pipeline(\"text-classification\", model={model_dir!r})\n"
            f"print(classify(\"a text\"))  # a pair: classify({{\"text\": a, \"text_pair\": b}})")
