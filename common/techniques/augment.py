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
  factor would be undone exactly by the per-series z-normalisation of common.tasks.series); `slice` crops a window
  of (1 - p) of the series at a random place and stretches it back to the full length.
"""
import logging

import datasets
import numpy as np

from common.data import TRAIN
from common.errors import UserError
from common.tasks.series import SERIES
from common.tasks.tagging import entities

logger = logging.getLogger(__name__)

TEXT_OPS = ("delete", "swap", "mask")
NER_OPS = ("mentions",)
SERIES_OPS = ("jitter", "scale", "slice")
_KIND = {**{op: "text" for op in TEXT_OPS}, **{op: "NER" for op in NER_OPS}, **{op: "time-series" for op in SERIES_OPS}}


# ---------------------------------------------------------------- entry points, one per kind of data


def training_texts(raw, cfg, columns, tokenizer):
    """Text classification (columns: its text columns) and NLI (columns: the premise)."""
    ops = _checked_ops(cfg, TEXT_OPS, "text")
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
    return _extend(raw, cfg, ops, alter)


def training_mentions(raw, cfg, words_column, tags_column, scheme):
    """NER, after common.tasks.tagging read the tags (names, IOB2 or BIOES)."""
    ops = _checked_ops(cfg, NER_OPS, "NER")
    if not ops:
        return raw
    raw.splits[TRAIN] = raw.splits[TRAIN].select_columns([words_column, tags_column])
    pool = MentionPool(raw.splits[TRAIN][words_column], raw.splits[TRAIN][tags_column], scheme)

    def alter(i, row, op, rng):
        row[words_column], row[tags_column] = pool.replace(i, cfg.data.augment_probability, rng)
        return row
    return _extend(raw, cfg, ops, alter)


def training_series(raw, arrays, cfg):
    """Time series: arrays (split -> (channels, time) arrays from series.to_arrays) and the raw training rows
    (whose labels series.features reads) extended together; returns both."""
    ops = _checked_ops(cfg, SERIES_OPS, "time series")
    if not ops:
        return raw, arrays
    p, functions = cfg.data.augment_probability, {"jitter": jitter, "scale": scale, "slice": slice_window}
    copies = []

    def alter(i, row, op, rng):
        copy = functions[op](arrays[TRAIN][i], p, rng)
        copies.append(copy)
        row[SERIES] = copy.tolist()
        return row
    raw = _extend(raw, cfg, ops, alter)
    return raw, {**arrays, TRAIN: arrays[TRAIN] + copies}


def refuse(cfg, task, why):
    """A recipe with no label-preserving operation (extractive QA)."""
    _check_numbers(cfg)
    if _names(cfg):
        raise UserError(f"--augment {' '.join(_names(cfg))}: no label-preserving operation for {task} ({why}); "
                        f"drop --augment")


# ---------------------------------------------------------------- checks and copies


def _names(cfg):
    """'--augment delete,mask' and '--augment delete mask' (a YAML list) alike; '' clears a config file's."""
    return [name for item in cfg.data.augment or [] for name in item.split(",") if name]


def _checked_ops(cfg, valid, kind):
    _check_numbers(cfg)
    ops = _names(cfg)
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


def _extend(raw, cfg, ops, alter):
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


# ---------------------------------------------------------------- NER: mention replacement


class MentionPool:
    """Every entity mention of the training sentences, by type, to draw replacements from."""

    def __init__(self, sentences, tag_lists, scheme):
        self.sentences, self.tag_lists, self.scheme = sentences, tag_lists, scheme
        self.spans = [sorted(entities(tags, words, scheme), key=lambda e: e["start"])
                      for words, tags in zip(sentences, tag_lists)]
        self.by_type, self.own = {}, []  # type -> [(sentence, start, end)], in sentence order
        for s, spans in enumerate(self.spans):
            own = {}
            for e in spans:
                mentions = self.by_type.setdefault(e["type"], [])
                lo, hi = own.get(e["type"], (len(mentions), len(mentions)))
                own[e["type"]] = (lo, hi + 1)
                mentions.append((s, e["start"], e["end"]))
            self.own.append(own)  # type -> this sentence's slice [lo, hi) of by_type[type]

    def replace(self, s, p, rng):
        """Sentence s with mentions replaced (each with probability p, at least one where any can be):
        (words, tags)."""
        words, tags = self.sentences[s], self.tag_lists[s]
        replaceable = [e for e in self.spans[s] if len(self.by_type[e["type"]]) > self._own_count(s, e["type"])]
        if not replaceable:
            return list(words), list(tags)
        chosen = [rng.random() < p for _ in replaceable]
        if not any(chosen):
            chosen[rng.integers(len(replaceable))] = True
        new_words, new_tags, position = [], [], 0
        for e, replace in zip(replaceable, chosen):
            if not replace:
                continue
            source, start, end = self._other(s, e["type"], rng)
            new_words += words[position:e["start"]] + self.sentences[source][start:end]
            new_tags += tags[position:e["start"]] + span_tags(e["type"], end - start, self.scheme)
            position = e["end"]
        return new_words + words[position:], new_tags + tags[position:]

    def _own_count(self, s, kind):
        lo, hi = self.own[s].get(kind, (0, 0))
        return hi - lo

    def _other(self, s, kind, rng):
        """A uniform draw among the mentions of this type in other sentences: skip over this sentence's slice."""
        mentions, (lo, hi) = self.by_type[kind], self.own[s][kind]
        r = rng.integers(len(mentions) - (hi - lo))
        return mentions[r + (hi - lo) if r >= lo else r]


def span_tags(kind, length, scheme):
    if scheme == "BIOES":
        return [f"S-{kind}"] if length == 1 else [f"B-{kind}"] + [f"I-{kind}"] * (length - 2) + [f"E-{kind}"]
    return [f"B-{kind}"] + [f"I-{kind}"] * (length - 1)


# ---------------------------------------------------------------- time-series operations ((channels, time) arrays)


def jitter(series, p, rng):
    return series + rng.normal(0.0, 1.0, series.shape) * p * series.std(axis=1, keepdims=True)


def scale(series, p, rng, knots=5):
    """Magnitude warping: per channel, N(1, p) at `knots` evenly spaced points, linear in between."""
    steps = np.linspace(0, 1, series.shape[1])
    curves = [np.interp(steps, np.linspace(0, 1, knots), rng.normal(1.0, p, knots)) for _ in series]
    return series * np.stack(curves)


def slice_window(series, p, rng):
    length = series.shape[1]
    window = max(2, round((1 - p) * length))
    start = rng.integers(length - window + 1)
    old, new = np.linspace(0, 1, window), np.linspace(0, 1, length)
    return np.stack([np.interp(new, old, channel[start:start + window]) for channel in series])
