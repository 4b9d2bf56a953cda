"""Batch prediction on new data with a trained output directory, PyTorch or exported to ONNX.

    python -m common.tools.predict outputs/text_classification --input new.csv --output predictions.jsonl
    python -m common.tools.predict outputs/ner/onnx-int8 --input new.jsonl --output tagged.jsonl

The input needs the columns the model was trained on (named in the directory's run_config.yaml); gold
columns are ignored. Rows are written as the recipe writes its predictions.jsonl, by the task's own
prediction writer: text classification and NLI (predicted_label, probabilities), NER (predicted_tags,
entities), QA (prediction, null_odds for SQuAD v2.0). NER reads a list of words per row (json, jsonl,
parquet, CoNLL files) or a text cell split at spaces (csv). The output file is written whole or not at all.
"""
import argparse
import json
import os
import tempfile

from datasets import DatasetDict, Value
from transformers import AutoTokenizer
from transformers.trainer_utils import PredictionOutput

from common import artifacts, data, inference
from common.args import RUN_FINISHED_MARKER, RESOLVED_CONFIG_NAME, run_settings
from common.data import TEST
from common.errors import UserError, exits_cleanly
from common.labels import SINGLE, LabelSet
from common.tasks import classification, span_extraction, tagging


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m common.tools.predict", description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", help="A trained output directory, or its ONNX export.")
    parser.add_argument("--input", required=True, help="csv, tsv, json, jsonl or parquet (NER: also CoNLL).")
    parser.add_argument("--output", required=True, help="The predictions, one JSON object per line.")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--threads", type=int, help="ONNX Runtime threads (default: one per core).")
    opts = parser.parse_args(argv)
    rows = predict(opts.model_dir, opts.input, opts.output, opts.batch_size, opts.threads)
    print(f"{rows} predictions -> {opts.output}")


def predict(model_dir, input_path, output_path, batch_size=32, threads=None, progress=True) -> int:
    config = inference.trained_config(model_dir)
    auto_class = inference.task_of(model_dir, config)
    if auto_class is None:
        raise UserError(f"{model_dir}: a time-series model; common.tools.predict reads text models. Predict series with "
                        f"its recipe: --model_name_or_path {model_dir} --do_predict --test_file {input_path}")
    settings = run_settings(model_dir, required=True)
    task = _task(settings, model_dir)
    folder = os.path.dirname(os.path.abspath(output_path))
    if not os.path.isdir(folder):
        raise UserError(f"--output {output_path}: the folder {folder} does not exist; create it first")
    if batch_size < 1:
        raise UserError(f"--batch_size {batch_size}: give 1 or more")

    rows = data.read_file(input_path, "input", conll=task.conll(settings))
    missing = [(c, key) for c, key in task.columns(settings).items() if c not in rows.column_names]
    if missing:
        column, key = missing[0]
        raise UserError(f"--input {input_path}: no column '{column}' (the model reads it: {key} in "
                        f"{model_dir}/{RESOLVED_CONFIG_NAME}); columns there: {', '.join(rows.column_names)}")
    gold = [c for c in task.gold(settings) if c in rows.column_names]
    raw = data.RawData(DatasetDict({TEST: rows.remove_columns(gold)}), {TEST: input_path})

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    features, write = task.prepare(settings, config, tokenizer, raw, model_dir)
    model = inference.load(model_dir, auto_class, threads)
    inputs = features.select_columns([c for c in tokenizer.model_input_names if c in features.column_names])
    outputs = inference.batched_outputs(model, tokenizer, inputs, task.outputs, task.per_token, batch_size, progress)
    predictions = outputs[0] if len(outputs) == 1 else outputs
    with tempfile.TemporaryDirectory(dir=folder) as tmp:  # the writer's other files stay in there
        write(TEST, PredictionOutput(predictions, None, None), raw.splits[TEST], tmp)
        os.replace(artifacts.split_file(tmp, TEST, artifacts.PREDICTIONS), output_path)
    return len(rows)


class _Classification:
    """Text classification (one column or a pair) and NLI (premise, hypothesis)."""
    outputs, per_token = ("logits",), False

    def __init__(self, text_keys):
        self.text_keys = text_keys  # run_config keys naming the text columns

    def texts(self, settings):
        if self.text_keys == ["text_column_names"]:
            return settings["text_column_names"].split(",")
        return [settings[key] for key in self.text_keys]

    def columns(self, settings):
        keys = self.text_keys * 2 if self.text_keys == ["text_column_names"] else self.text_keys
        return dict(zip(self.texts(settings), keys))

    def gold(self, settings):
        return [settings.get("label_column_name", "label")]

    def conll(self, settings):
        return None

    def prepare(self, settings, config, tokenizer, raw, model_dir):
        texts = self.texts(settings)
        classification.check_texts(raw, texts)
        names = [config.id2label[i] for i in range(config.num_labels)]
        label_set = LabelSet(names, config.problem_type or SINGLE)
        label_column = self.gold(settings)[0]
        encode = classification.encoder(tokenizer, label_set, texts, label_column, settings.get("max_seq_length"))
        rows = raw.splits[TEST]
        features = rows.map(encode, batched=True, remove_columns=rows.column_names)
        write = classification.prediction_writer(label_set, texts, label_column,
                                                 settings.get("multi_label_threshold", 0.5))
        return features, write


class _Tagging:
    outputs, per_token = ("logits",), True

    def columns(self, settings):
        return {settings["text_column_name"]: "text_column_name"}

    def gold(self, settings):
        return [settings["label_column_name"]]

    def conll(self, settings):
        return data.ConllColumns(settings["text_column_name"], settings["label_column_name"],
                                 settings.get("conll_tag_index", -1))

    def prepare(self, settings, config, tokenizer, raw, model_dir):
        words, tags = settings["text_column_name"], settings["label_column_name"]
        rows = raw.splits[TEST]
        if isinstance(rows.features[words], Value):  # a csv cell: words separated by spaces
            rows = rows.map(lambda row: {words: row[words].split()})
        raw.splits[TEST] = rows
        tagging.check_rows(raw, words, tags)
        names = [config.id2label[i] for i in range(config.num_labels)]
        scheme = "BIOES" if any(n[:2] in ("E-", "S-") for n in names) else "IOB2"
        tag_set = tagging.TagSet(names, scheme)
        encode = tagging.trained_window_encoder(tokenizer, tag_set, settings, words, tags)
        features = rows.map(encode, batched=True, with_indices=True, remove_columns=rows.column_names)
        return features, tagging.prediction_writer(tag_set, {TEST: features}, words, tags)


class _SpanExtraction:
    outputs, per_token = ("start_logits", "end_logits"), True

    def columns(self, settings):
        return {settings["question_column_name"]: "question_column_name",
                settings["context_column_name"]: "context_column_name"}

    def gold(self, settings):
        return [settings["answer_column_name"]]

    def conll(self, settings):
        return None

    def prepare(self, settings, config, tokenizer, raw, model_dir):
        question, context, answers = (settings[k] for k in ("question_column_name", "context_column_name",
                                                            "answer_column_name"))
        raw.require_texts([question, context])
        length, stride = span_extraction.trained_windows(settings)
        span_extraction.check_windows_fit(tokenizer, raw, question, length, stride)
        rows = raw.splits[TEST]
        encoder = span_extraction.trained_window_encoder(tokenizer, settings, question, context, length, stride)
        features = rows.map(encoder, batched=True, with_indices=True, remove_columns=rows.column_names)
        version_2 = settings.get("version_2_with_negative") or self._trained_on_v2(model_dir)
        scorer = span_extraction.SpanScorer(
            raw, {TEST: features}, question, context, answers, settings.get("n_best_size", 20),
            settings.get("max_answer_length", 30), version_2, settings.get("null_score_diff_threshold", 0.0),
            progress=False)
        return features, scorer.write_predictions

    @staticmethod
    def _trained_on_v2(model_dir):
        """version_2_with_negative left to the data: the run's results say (v2.0 scores have a best threshold)."""
        path = os.path.join(model_dir, RUN_FINISHED_MARKER)
        if not os.path.exists(path):
            return False
        with open(path, encoding="utf-8") as fh:
            return any(key.endswith("best_f1_thresh") for key in json.load(fh))


def _task(settings, model_dir):
    """Which recipe trained the directory, from the keys of its run_config.yaml."""
    if "question_column_name" in settings:
        return _SpanExtraction()
    if "tag_scheme" in settings:
        return _Tagging()
    if "premise_column_name" in settings:
        return _Classification(["premise_column_name", "hypothesis_column_name"])
    if "text_column_names" in settings:
        return _Classification(["text_column_names"])
    raise UserError(f"{model_dir}/{RESOLVED_CONFIG_NAME}: not a text classification, NLI, NER or QA run")


if __name__ == "__main__":
    exits_cleanly(main)()
