"""Batch collators. Dynamic padding: each batch is padded to its own longest example, not to
max_seq_length; under fp16/bf16 on a GPU lengths round up to a multiple of 8 so tensor cores fit
(--pad_to_multiple_of sets another multiple; 1 turns it off).
--pad_to_max_length pads every batch to max_seq_length instead (HF examples' default; slower)."""
import torch
from transformers import DataCollatorForTokenClassification, DataCollatorWithPadding

# The label of positions that are not scored (special tokens, a word's later sub-tokens): the ignore_index of
# PyTorch's cross-entropy, and what DataCollatorForTokenClassification pads labels with.
IGNORED = -100


def padding(cfg):
    """DataCollatorWithPadding's padding arguments for this run."""
    if cfg.data.pad_to_max_length:
        return dict(padding="max_length", max_length=cfg.data.max_seq_length)
    multiple = cfg.data.pad_to_multiple_of or (8 if tensor_cores(cfg) else 1)
    return dict(pad_to_multiple_of=multiple if multiple > 1 else None)


def tensor_cores(cfg):
    """fp16/bf16 on a GPU, whose tensor cores want matmul sizes in multiples of 8. Not on CPUs: there padding
    to 8 measured 8-13% slower (bench/ablations_results.md), oneDNN handles any size."""
    return (cfg.training.fp16 or cfg.training.bf16) and torch.cuda.is_available() and not cfg.training.use_cpu


def dynamic_padding(tokenizer, cfg):
    return DataCollatorWithPadding(tokenizer, **padding(cfg))


class TokenClassificationPadding:
    """Pads inputs, and per-token labels with -100. Drops the bookkeeping columns a windowed dataset
    carries (example index, word positions, gold per word: see common.tasks.tagging) that the model does not
    take, whether or not Trainer's remove_unused_columns already did."""

    def __init__(self, tokenizer, cfg):
        self.pad = DataCollatorForTokenClassification(tokenizer, label_pad_token_id=IGNORED, **padding(cfg))
        self.keep = {*tokenizer.model_input_names, "labels"}

    def __call__(self, features):
        return self.pad([{k: v for k, v in f.items() if k in self.keep} for f in features])
