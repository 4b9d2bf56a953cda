"""Label-preserving data augmentation of the training split (--augment, --augment_factor, --augment_probability).

Each training example gets `--augment_factor` altered copies, the originals kept; each copy is made by one of
the `--augment` operations, picked at random per copy. Evaluation and test splits are never touched, and a
validation set held out with --validation_split_percentage is cut from train before any copy exists.
Seeded by --seed: the same run makes the same copies, in every process of `accelerate launch`.

--augment_probability (p, default 0.1) says how strongly an operation alters an example:
- text (words are whitespace-separated): `delete` drops each word with probability p (never every word);
  `swap` swaps about p * n random pairs of words; `mask` puts the tokenizer's mask token on a random span of
  about p * n consecutive words (one mask per word, as in the encoder's masked-word pre-training; never on
  every word).
  NLI: only the premise is altered. The hypothesis is short and nearly every word of it decides the label
  (dropping a "not" turns a contradiction into an entailment); the premise is longer, mostly context, and a
  small change there usually leaves the evidence the hypothesis needs in place.
- NER, `mentions`: each entity mention is replaced, with probability p and at least one per sentence, by a
  mention of the same type from another training sentence; its tags are rebuilt for the new length in the
  run's scheme (IOB2: B-X I-X...; BIOES: S-X, or B-X I-X... E-X). Other per-word columns (POS, chunks) could
  not stay aligned, so the training split keeps only the words and the tags.
- time series, after the checks and before resampling: `jitter` adds Gaussian noise of p times each channel's
  standard deviation; `scale` multiplies each channel by a smooth random curve around 1 (sigma p; a constant
  factor would be undone exactly by the per-series z-normalisation of common.tasks.series_data); `slice` crops a window
  of (1 - p) of the series at a random place and stretches it back to the full length.
"""
import logging

import datasets
import numpy as np

from common.data import TRAIN
from common.errors import UserError

logger = logging.getLogger(__name__)

TEXT_OPS = ("delete", "swap", "mask")
NER_OPS = ("mentions",)  # common.tasks.tagging.training_mentions
SERIES_OPS = ("jitter", "scale", "slice")  # common.tasks.series_data.training_series
_KIND = {**{op: "text" for op in TEXT_OPS}, **{op: "NER" for op in NER_OPS}, **{op: "time-series" for op in SERIES_OPS}}


# ---------------------------------------------------------------- entry points: text here; NER mentions in
# common.tasks.tagging and series operations in common.tasks.series_data (each builds on checked_ops and extend)


def training_texts(raw, cfg, columns, tokenizer):
    """Text classification (columns: its text columns) and NLI (columns: the premise)."""
    ops = checked_ops(cfg, TEXT_OPS, "text")
    if not ops:
        return raw
    if "mask" in ops and tokenizer.mask_token is None:
        raise UserError(f"--augment mask: the tokenizer {type(tokenizer).__name__} has no mask token; "
                        f"use delete or swap")
    p, functions = cfg.data.augment_probability, {
        "delete": delete_words, "swap": swap_words,
        "mask": lambda words, p, rng: mask_span(words, p, rng, tokenizer.mask_token)}

    def alter(i, row, op, rng):
        for column in columns:
            words = row[column].split()
            if words:
                row[column] = " ".join(functions[op](words, p, rng))
        return row
    return extend(raw, cfg, ops, alter)


def refuse(cfg, task, why):
    """A recipe with no label-preserving operation (extractive QA)."""
    _check_numbers(cfg)
    if requested(cfg.data):
        raise UserError(f"--augment {' '.join(requested(cfg.data))}: no label-preserving operation for {task} ({why}); "
                        f"drop --augment")


# ---------------------------------------------------------------- checks and copies


def requested(data_args) -> list:
    """The operations --augment names: 'delete,mask' and 'delete mask' (a YAML list) alike; '' clears a config
    file's."""
    return [name for item in data_args.augment or [] for name in item.split(",") if name]


def checked_ops(cfg, valid, kind):
    """The --augment operations asked for, checked against those the recipe takes (valid)."""
    _check_numbers(cfg)
    ops = requested(cfg.data)
    for op in ops:
        if op not in valid:
            what = f"a {_KIND[op]} operation" if op in _KIND else "unknown operation"
            raise UserError(f"--augment {op}: {what}; for {kind} this recipe takes {', '.join(valid)}")
    if ops and not cfg.training.do_train:
        raise UserError("--augment alters only the training split: pass --do_train, or drop --augment "
                        "(--augment '' clears a config file's)")
    return ops


def _check_numbers(cfg):
    data = cfg.data
    if data.augment_factor < 1:
        raise UserError(f"--augment_factor {data.augment_factor}: give the number of augmented copies per "
                        f"training example, 1 or more")
    if not 0 < data.augment_probability <= 1:
        raise UserError(f"--augment_probability {data.augment_probability}: must be above 0 and at most 1")


def extend(raw, cfg, ops, alter):
    """raw with its training split followed by augment_factor altered copies of each example (copy k of every
    example after copy k-1 of every example). alter(index, row, op, rng) -> the row altered by op; index: the
    original's position in the training split."""
    train = raw.splits[TRAIN]
    rng = np.random.default_rng(cfg.training.seed)  # its own generator: model initialisation stays as without
    originals = train.to_list()
    copies = [alter(i, dict(row), ops[rng.integers(len(ops))], rng)
              for _ in range(cfg.data.augment_factor) for i, row in enumerate(originals)]
    added = datasets.Dataset.from_list(copies, features=train.features)
    raw.splits[TRAIN] = datasets.concatenate_datasets([train, added])
    logger.warning("augmentation (%s, factor %d, p %g): added %d altered copies to the %d training examples",
                   ", ".join(dict.fromkeys(ops)), cfg.data.augment_factor, cfg.data.augment_probability,
                   len(added), len(train))
    return raw


# ---------------------------------------------------------------- text operations (lists of words)


def delete_words(words, p, rng):
    kept = [w for w in words if rng.random() >= p]
    return kept or [words[rng.integers(len(words))]]


def swap_words(words, p, rng):
    words = list(words)
    if len(words) < 2:
        return words
    for _ in range(max(1, round(p * len(words)))):
        i, j = rng.choice(len(words), size=2, replace=False)
        words[i], words[j] = words[j], words[i]
    return words


def mask_span(words, p, rng, mask_token):
    if len(words) < 2:  # a text of one word masked would be no text at all
        return list(words)
    length = min(len(words) - 1, max(1, round(p * len(words))))
    start = rng.integers(len(words) - length + 1)
    return words[:start] + [mask_token] * length + words[start + length:]
