"""Natural language inference: does the premise entail, contradict or say nothing about the hypothesis?

Pairs are encoded together ([CLS] premise [SEP] hypothesis [SEP]); any label names work. Several
evaluation sets (MNLI matched and mismatched, or your own files) are reported separately.

    python recipes/nli/run.py recipes/nli/config.yaml
    python recipes/nli/run.py --dataset_name nyu-mll/multi_nli \\
        --eval_split_names validation_matched validation_mismatched --do_train --do_eval --output_dir out
"""
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, next(str(p) for p in Path(__file__).resolve().parents if (p / "common").is_dir()))

from transformers import AutoModelForSequenceClassification  # noqa: E402

from common import args, collators, data, metrics, modeling, training  # noqa: E402
from common.errors import exits_cleanly  # noqa: E402
from common.labels import SINGLE, LabelSet  # noqa: E402
from common.tasks import classification  # noqa: E402
from common.techniques import augment, imbalance  # noqa: E402

# Tuned on RTE (bench/quality_results.md); the config file and the command line override them.
DEFAULTS = dict(num_train_epochs=4, learning_rate=5e-5, per_device_train_batch_size=32, per_device_eval_batch_size=128,
                train_sampling_strategy="group_by_length")  # less padding: bench/ablations.py


@dataclass
class NliArguments(args.DataArguments):
    # Defaults fit SNLI and MNLI on the Hub; GLUE RTE files use sentence1/sentence2.
    premise_column_name: str = "premise"
    hypothesis_column_name: str = "hypothesis"


@exits_cleanly
def main():
    cfg = args.parse(NliArguments, defaults=DEFAULTS)
    data_args = cfg.data
    pair, label_column = [data_args.premise_column_name, data_args.hypothesis_column_name], data_args.label_column_name

    # Data and labels. SNLI marks pairs the annotators disagreed on with -1: those are dropped.
    raw = data.load(cfg)
    raw.require_columns({pair[0]: "premise_column_name", pair[1]: "hypothesis_column_name",
                         label_column: "label_column_name"}, optional_in_test=[label_column])
    classification.check_texts(raw, pair)
    label_set = LabelSet.from_splits(raw, label_column, data_args.label_list, data_args.strict_labels,
                                     problem_type=SINGLE)
    classification.drop_unlabelled(raw, label_set, label_column)

    # Tokenize each pair as one sequence; truncation trims the longer side first.
    tokenizer = modeling.load_tokenizer(cfg.model)
    raw = augment.training_texts(raw, cfg, pair[:1], tokenizer)  # --augment alters premises only
    encoded = data.tokenize(raw, classification.encoder(tokenizer, label_set, pair, label_column,
                                                        data_args.max_seq_length), cfg)

    config = modeling.load_config(cfg.model, label_set)
    make_model = lambda model_args: modeling.load_model(  # noqa: E731  (per trial under --hpo_trials)
        model_args, AutoModelForSequenceClassification, config, "SEQ_CLS")
    loss = imbalance.loss_from_flags(cfg, label_set, encoded)

    # The first evaluation set picks checkpoints; every set gets its own eval_<name>_* results.
    trainers = training.TrainerFactory(  # a Trainer per run, or per trial under --hpo_trials
        make_model, tokenizer, encoded, collators.dynamic_padding(tokenizer, cfg),
        compute_metrics=metrics.for_labels(label_set), main_metric=metrics.main_metric(SINGLE),
        compute_loss_func=loss)
    training.run(trainers, cfg, raw, encoded, classification.prediction_writer(label_set, pair, label_column),
                 usage=classification.usage)


if __name__ == "__main__":
    main()
