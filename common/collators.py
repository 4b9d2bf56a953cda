"""Batch collators. Dynamic padding: each batch is padded to its own longest example, not to
max_seq_length; under fp16/bf16 lengths round up to a multiple of 8 so tensor cores/AMX tiles fit."""
from transformers import DataCollatorForTokenClassification, DataCollatorWithPadding


def pad_multiple(training_args):
    return 8 if (training_args.fp16 or training_args.bf16) else None


def dynamic_padding(tokenizer, training_args):
    return DataCollatorWithPadding(tokenizer, pad_to_multiple_of=pad_multiple(training_args))


class TokenClassificationPadding:
    """Pads inputs, and per-token labels with -100. Drops the bookkeeping columns a windowed dataset
    carries (example index, word positions, gold per word: see common.tagging) that the model does not
    take, whether or not Trainer's remove_unused_columns already did."""

    def __init__(self, tokenizer, training_args):
        self.pad = DataCollatorForTokenClassification(tokenizer, pad_to_multiple_of=pad_multiple(training_args))
        self.keep = {*tokenizer.model_input_names, "labels"}

    def __call__(self, features):
        return self.pad([{k: v for k, v in f.items() if k in self.keep} for f in features])
