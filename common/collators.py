"""Batch collators. Dynamic padding: each batch is padded to its own longest example, not to
max_seq_length; under fp16/bf16 lengths round up to a multiple of 8 so tensor cores/AMX tiles fit."""
from transformers import DataCollatorWithPadding


def pad_multiple(training_args):
    return 8 if (training_args.fp16 or training_args.bf16) else None


def dynamic_padding(tokenizer, training_args):
    return DataCollatorWithPadding(tokenizer, pad_to_multiple_of=pad_multiple(training_args))
