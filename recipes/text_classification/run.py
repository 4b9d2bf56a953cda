"""Text classification: fine-tune a pre-trained encoder to label a text or a text pair.

Single-label, multi-label (list-valued labels) and regression (float labels), found from the data.

    python recipes/text_classification/run.py recipes/text_classification/config.yaml
    accelerate launch recipes/text_classification/run.py config.yaml --train_file my.csv --lora
"""
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

sys.path.insert(0, next(str(p) for p in Path(__file__).resolve().parents if (p / "common").is_dir()))

from transformers import AutoModelForSequenceClassification  # noqa: E402

from common import (args, augment, classification, collators, data, imbalance, metrics, modeling,  # noqa: E402
                    training)
from common.errors import exits_cleanly  # noqa: E402
from common.labels import LabelSet  # noqa: E402


@dataclass
class TextClassificationArguments(args.DataArguments):
    text_column_names: str = field(default="text", metadata={"help": "One column, or two as 'a,b' for pairs."})
    problem_type: Optional[str] = field(
        default=None, metadata={"help": "single_label_classification, multi_label_classification or "
                                        "regression. Default: inferred (lists: multi-label, floats: regression)."})
    multi_label_threshold: float = field(default=0.5, metadata={"help": "Probability above which a label is on."})


@exits_cleanly
def main():
    cfg = args.parse(TextClassificationArguments)
    d = cfg.data
    text_columns = d.text_column_names.split(",")

    # Data and labels: checked before anything is written.
    raw = data.load(cfg)
    raw.require_columns({**{c: "text_column_names" for c in text_columns}, d.label_column_name: "label_column_name"},
                        optional_in_test=[d.label_column_name])
    classification.check_texts(raw, text_columns)
    label_set = LabelSet.from_splits(raw, d.label_column_name, d.label_list, d.strict_labels, d.problem_type)
    classification.drop_unlabelled(raw, label_set, d.label_column_name)

    # Tokenize: truncate only; batches are padded dynamically by the collator.
    tokenizer = modeling.load_tokenizer(cfg.model)
    raw = augment.training_texts(raw, cfg, text_columns, tokenizer)  # --augment: altered copies of train examples
    encoded = data.tokenize(raw, classification.encoder(tokenizer, label_set, text_columns, d.label_column_name,
                                                        d.max_seq_length), cfg)

    # Model: pre-trained encoder + a fresh head sized to the label set (+ --freeze_encoder / --lora).
    config = modeling.load_config(cfg.model, label_set)
    make_model = lambda model_args: modeling.load_model(  # noqa: E731  (per trial under --hpo_trials)
        model_args, AutoModelForSequenceClassification, config, "SEQ_CLS")
    loss = imbalance.loss_from_flags(cfg, label_set, encoded)

    trainers = training.TrainerFactory(  # a Trainer per run, or per trial under --hpo_trials
        make_model, tokenizer, encoded, collators.dynamic_padding(tokenizer, cfg),
        compute_metrics=metrics.for_labels(label_set, d.multi_label_threshold),
        main_metric=metrics.main_metric(label_set.problem_type), compute_loss_func=loss)
    training.run(trainers, cfg, raw, encoded, classification.prediction_writer(
        label_set, text_columns, d.label_column_name, d.multi_label_threshold))


if __name__ == "__main__":
    main()
