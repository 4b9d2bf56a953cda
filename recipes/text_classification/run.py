"""Text classification: fine-tune a pre-trained encoder to label a text or a text pair.

Single-label, multi-label (list-valued labels) and regression (float labels), found from the data.
HF's run_glue.py / run_classification.py command lines work as they are (text columns found as run_glue finds them).

    python recipes/text_classification/run.py recipes/text_classification/config.yaml
    accelerate launch recipes/text_classification/run.py config.yaml --train_file my.csv --lora
    python recipes/text_classification/run.py --train_file train.csv --validation_file dev.csv --do_train --do_eval \\
        --output_dir out        # columns: sentence1 + sentence2 (or text, or the first two), label
"""
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

sys.path.insert(0, next(str(p) for p in Path(__file__).resolve().parents if (p / "common").is_dir()))

from transformers import AutoModelForSequenceClassification  # noqa: E402

from common import args, collators, data, metrics, modeling, training  # noqa: E402
from common.errors import exits_cleanly  # noqa: E402
from common.tasks import classification  # noqa: E402
from common.techniques import augment, imbalance  # noqa: E402

# Chosen on SST-2's training sentences (bench/search/sst2_grouped.log); the config file and the command line
# override them.
DEFAULTS = dict(num_train_epochs=3, learning_rate=1e-4, per_device_train_batch_size=32, per_device_eval_batch_size=128,
                train_sampling_strategy="group_by_length")  # less padding: bench/ablations.py


@dataclass
class TextClassificationArguments(args.DataArguments):
    text_column_names: Optional[str] = field(
        default=None, metadata={"help": "One column, or two as 'a,b' for pairs. Default: `text` or `sentence`, else "
                                        "sentence1,sentence2, else the first two text columns (run_glue's choice)."})
    text_column_delimiter: Optional[str] = field(
        default=None, metadata={"help": "Join the text columns into one text with this (run_classification's "
                                        "meaning) instead of encoding two as a pair."})
    task_name: Optional[str] = field(
        default=None, metadata={"help": "A GLUE task (cola, mnli, mrpc, ...): its data from the Hub, as run_glue."})
    problem_type: Optional[str] = field(
        default=None, metadata={"help": "single_label_classification, multi_label_classification or "
                                        "regression. Default: inferred (lists: multi-label, floats: regression)."})
    do_regression: Optional[bool] = field(
        default=None, metadata={"help": "true: regression; false: classification. Default: inferred (as --problem_type)."})
    metric_name: Optional[str] = field(
        default=None, metadata={"help": "An evaluate module (Hub name or local path) computed beside these metrics."})
    multi_label_threshold: float = field(default=0.5, metadata={"help": "Probability above which a label is on."})


@exits_cleanly
def main():
    cfg = args.parse(TextClassificationArguments, defaults=DEFAULTS)
    data_args = cfg.data
    classification.glue_task(data_args)  # --task_name: a GLUE task from the Hub

    # Data and labels: checked before anything is written. Without --text_column_names the columns are found.
    raw = data.load(cfg)
    text_columns = classification.detect_text_columns(raw, data_args)
    label_column = data_args.label_column_name
    raw.require_columns({**{c: "text_column_names" for c in text_columns}, label_column: "label_column_name"},
                        optional_in_test=[label_column])
    classification.check_texts(raw, text_columns, data_args.text_column_delimiter)
    label_set = classification.labels_from_flags(raw, data_args)
    classification.drop_unlabelled(raw, label_set, label_column)

    # Tokenize: truncate only; batches are padded dynamically by the collator.
    tokenizer = modeling.load_tokenizer(cfg.model)
    raw = augment.training_texts(raw, cfg, text_columns, tokenizer)  # --augment: altered copies of train examples
    encoded = data.tokenize(raw, classification.encoder(tokenizer, label_set, text_columns, label_column,
                                                        data_args.max_seq_length, data_args.text_column_delimiter), cfg)

    # Model: pre-trained encoder + a fresh head sized to the label set (+ --freeze_encoder / --lora).
    config = modeling.load_config(cfg.model, label_set)
    make_model = lambda model_args: modeling.load_model(  # noqa: E731  (per trial under --hpo_trials)
        model_args, AutoModelForSequenceClassification, config, "SEQ_CLS")
    loss = imbalance.loss_from_flags(cfg, label_set, encoded)

    trainers = training.TrainerFactory(  # a Trainer per run, or per trial under --hpo_trials
        make_model, tokenizer, encoded, collators.dynamic_padding(tokenizer, cfg),
        compute_metrics=metrics.for_labels(label_set, data_args.multi_label_threshold, data_args.metric_name),
        main_metric=metrics.main_metric(label_set.problem_type), compute_loss_func=loss)
    write_predictions = classification.prediction_writer(label_set, text_columns, label_column,
                                                         data_args.multi_label_threshold)
    training.run(trainers, cfg, raw, encoded, write_predictions, usage=classification.usage)


if __name__ == "__main__":
    main()
