"""Word-level tagging (NER): tag schemes, sub-token alignment in windows, one prediction per word,
entity-level scores and prediction files.

Words are the unit everywhere users look: a sentence is tokenized into overlapping windows of at most
max_seq_length sub-tokens (never truncated, so every word is predicted), each word's tag sits on its
first sub-token, and predictions are merged back to one tag per word before anything is scored or written.
"""
import itertools
import logging
import re
from dataclasses import dataclass

import numpy as np
from datasets import ClassLabel, List, Sequence

from common import artifacts, collators, labels, metrics, reports
from common.data import DOCUMENT, TRAIN, ConllColumns
from common.errors import UserError
from common.labels import SINGLE
from common.techniques import augment

logger = logging.getLogger(__name__)

SCHEMES = ("auto", "IOB1", "IOB2", "BIOES")
TAG = re.compile(r"^([BIES])-(.+)$")


def _split(tag):
    """'B-PER' -> ('B', 'PER'); 'O' -> ('O', None)."""
    match = TAG.match(tag)
    return (match.group(1), match.group(2)) if match else ("O", None)


@dataclass
class TagSet(labels.LabelNames):
    names: list
    scheme: str  # of the tags after reading: IOB2 (IOB1 is converted) or BIOES
    problem_type: str = SINGLE  # what common.modeling.load_config writes into the model config

    @classmethod
    def from_splits(cls, raw, column, label_list=None, scheme="auto", strict=False):
        """Reads the tag column of every labelled split as tag names (in place: ClassLabel ids and integer
        tags become names), checks the scheme, converts IOB1 to IOB2 and repairs I-X that starts an entity
        (invalid in IOB2) as B-X, saying how many tags changed. The tag set is the union of all splits."""
        if scheme not in SCHEMES:
            raise UserError(f"--tag_scheme {scheme}: use one of {', '.join(SCHEMES)}")
        labelled = [s for s, ds in raw.splits.items() if column in ds.column_names]
        given = list(label_list or []) or (_class_label_names(raw.splits[labelled[0]], column) if labelled else [])
        for split in labelled:
            names = _names_of(raw, split, column, label_list)
            raw.splits[split] = raw.splits[split].remove_columns(column).add_column(column, names)
        tags = {split: raw.splits[split][column] for split in labelled}
        for split, sentences in tags.items():
            bad = next((t for sentence in sentences for t in sentence if t != "O" and not TAG.match(t)), None)
            if bad is not None:
                raise UserError(f"{raw.sources[split]}: tag {bad!r} in column '{column}' is neither O nor "
                                f"B-/I-/E-/S-<type>; the recipe reads IOB1, IOB2 and BIOES tags")
        if scheme == "auto":
            scheme = _detect_scheme([s for sentences in tags.values() for s in sentences])
        _check_or_repair(raw, tags, column, scheme)
        seen = {split: {t for s in sentences for t in s} for split, sentences in tags.items()}
        if strict:
            labels.require_seen_in_train(raw, seen, noun="tag")
        every = set().union(*seen.values()) if seen else set()
        if label_list:
            labels.require_known(raw, seen, set(label_list) | {to_iob2([t])[0] for t in label_list}, column, "tag")
        # The user's (or the Hub ClassLabel's) order; tags it lacks (B-X made from IOB1's I-X) follow it.
        order = given + sorted(every - set(given), key=_tag_order)
        if not order:
            raise UserError(f"no tags: no split has a column '{column}' (--label_column_name) and no --label_list")
        return cls(order, "BIOES" if scheme == "BIOES" else "IOB2")


def _check_or_repair(raw, tags, column, scheme):
    """IOB1 and IOB2: every I-X that opens an entity becomes B-X (the IOB1 -> IOB2 conversion; in IOB2 data
    a repair, as conlleval reads it), counted per file. BIOES: inconsistent tags are counted, not changed."""
    for split, sentences in tags.items():
        if scheme == "BIOES":
            invalid = sum(_invalid_bioes(s) for s in sentences)
            if invalid:
                logger.warning("%s: %d BIOES tags I-X/E-X do not continue an entity of type X",
                               raw.sources[split], invalid)
            continue
        fixed = [to_iob2(s) for s in sentences]
        changed = sum(a != b for s, f in zip(sentences, fixed) for a, b in zip(s, f))
        if changed:
            message = ("IOB1 tags converted to IOB2: %d I-X that start an entity became B-X" if scheme == "IOB1"
                       else "%d tags I-X follow O or another type (invalid in IOB2): read as B-X, as conlleval does")
            logger.warning("%s: " + message, raw.sources[split], changed)
            raw.splits[split] = raw.splits[split].remove_columns(column).add_column(column, fixed)
            tags[split] = fixed


def _names_of(raw, split, column, label_list):
    """The split's tags as lists of names: ClassLabel ids through their names, plain ints through --label_list."""
    class_names = _class_label_names(raw.splits[split], column)
    values = raw.splits[split][column]
    if class_names:
        return [[class_names[i] for i in sentence] for sentence in values]
    if any(isinstance(t, int) for sentence in values for t in sentence):
        if not label_list:
            raise UserError(f"{raw.sources[split]}: column '{column}' holds integer tags without names; pass "
                            f"--label_list with the tag names in id order (e.g. O B-PER I-PER ...)")
        try:
            return [[label_list[t] for t in sentence] for sentence in values]
        except IndexError:
            raise UserError(f"{raw.sources[split]}: an integer tag in column '{column}' is beyond the "
                            f"{len(label_list)} names of --label_list") from None
    return [list(sentence) for sentence in values]


def _class_label_names(ds, column):
    feature = ds.features[column]
    inner = feature.feature if isinstance(feature, (List, Sequence)) else None
    return list(inner.names) if isinstance(inner, ClassLabel) else []


def _tag_order(tag):
    """O first, then by type, each type's tags as B, I, E, S."""
    prefix, kind = _split(tag)
    return (kind is not None, kind or "", "BIES".find(prefix))


def _detect_scheme(sentences):
    """BIOES if E-/S- tags occur. Otherwise IOB1 when entities start with I- and B- only ever separates two
    adjacent entities of one type; IOB2 (B- starts every entity) as soon as a B- follows O or another type."""
    b_starts = i_starts = 0
    for sentence in sentences:
        previous = None
        for tag in sentence:
            prefix, kind = _split(tag)
            if prefix in "ES" and kind:
                return "BIOES"
            if kind and kind != previous:
                b_starts += prefix == "B"
                i_starts += prefix == "I"
            previous = kind
    return "IOB1" if i_starts and not b_starts else "IOB2"


def to_iob2(tags):
    """IOB1 (or IOB2 with I-X opening an entity) as IOB2: an I-X not preceded by a tag of type X becomes B-X."""
    out, previous = [], None
    for tag in tags:
        prefix, kind = _split(tag)
        out.append(f"B-{kind}" if prefix == "I" and kind != previous else tag)
        previous = kind
    return out


def _invalid_bioes(tags):
    invalid, open_kind = 0, None
    for tag in tags:
        prefix, kind = _split(tag)
        invalid += prefix in "IE" and kind != open_kind
        open_kind = kind if prefix in "BI" else None
    return invalid


def conll_columns(data_args):
    """How CoNLL files become columns: named by --text_column_name/--label_column_name, else run_ner's defaults."""
    return ConllColumns(data_args.text_column_name or "tokens", data_args.label_column_name or default_tags(data_args),
                        data_args.conll_tag_index)


def default_tags(data_args):
    return f"{data_args.task_name.lower()}_tags"


def detect_columns(raw, data_args):
    """(words, tags): the flags' columns, else found as run_ner finds them: `tokens` if present, else the first
    column; `<task_name>_tags` if present, else the second. By position, list-valued columns come first (an id
    column is not a sentence). Logged, and written back so run_config.yaml records them."""
    split, ds = next(iter(raw.splits.items()))
    columns, tag_column = ds.column_names, default_tags(data_args)
    lists = [c for c, f in ds.features.items() if isinstance(f, (List, Sequence))] or columns
    words = data_args.text_column_name or ("tokens" if "tokens" in columns else lists[0])
    others = [c for c in lists if c != words]
    tags = data_args.label_column_name or (tag_column if tag_column in columns else others[0] if others else tag_column)
    if (data_args.text_column_name, data_args.label_column_name) != (words, tags):
        logger.warning("words in column '%s', tags in column '%s' (found in %s; --text_column_name and "
                       "--label_column_name set them)", words, tags, raw.sources[split])
    data_args.text_column_name, data_args.label_column_name = words, tags
    return words, tags


def check_rows(raw, words_column, tags_column):
    """Each row: a list of words (strings) and, where tags are given, exactly one tag per word."""
    for split, ds in raw.splits.items():
        has_tags = tags_column in ds.column_names
        for row, example in enumerate(ds):
            words = example[words_column]
            if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
                raise UserError(f"{raw.sources[split]}: row {row + 1}: column '{words_column}' must be a list of "
                                f"words (strings), got {str(words)[:60]!r}")
            tags = example[tags_column] if has_tags else []
            if has_tags and (not isinstance(tags, list) or len(tags) != len(words)):
                got = f"{len(tags)} tags" if isinstance(tags, list) else repr(tags)
                raise UserError(f"{raw.sources[split]}: row {row + 1} has {len(words)} words in '{words_column}' "
                                f"but {got} in '{tags_column}'; each word needs exactly one tag")


def window_encoder(tokenizer, tag_set, words_column, tags_column, max_length, stride, label_all_tokens=False,
                   document_context=False, case_token_types=False):
    """A batched `map(..., with_indices=True)` function: each sentence as one or more overlapping windows; with
    document_context, the batch's consecutive sentences of one document (a `document` column, which CoNLL
    files get from their -DOCSTART- lines; else all of them) as one stream of words cut into overlapping
    windows, so a sentence is read with its neighbours around it.

    Per sub-token: `labels` (a word's tag on its first piece; its other pieces -100, or with label_all_tokens
    the I- form of the tag), and for merging back to words `example_index` and `word_index` (the row and the
    position in it of the word the piece starts, else -1). Per window: `sentences` (the rows it reports),
    their `num_words` and `gold_tags` (per word). With case_token_types, the pieces of a capitalised word get
    token type 1 (common.techniques.case_marks)."""
    if not tokenizer.is_fast:
        raise UserError(f"the tokenizer {type(tokenizer).__name__} is not a fast (Rust) tokenizer: word alignment "
                        f"needs word_ids(); use a model with a tokenizer.json, or --tokenizer_name of a fast one")
    room = max_length - tokenizer.num_special_tokens_to_add()
    if not 0 <= stride < room:
        raise UserError(f"--stride {stride}: must be at least 0 and below the {room} word pieces a window of "
                        f"--max_seq_length {max_length} holds")
    label2id = tag_set.label2id
    inside = {i: label2id.get(f"I-{_split(t)[1]}", i) for i, t in enumerate(tag_set.names)}

    def encode(batch, indices):
        sentences, gold = batch[words_column], batch.get(tags_column)
        if document_context:  # consecutive rows of one document (all rows, without a document column)
            documents = batch.get(DOCUMENT) or [0] * len(sentences)
            members = [list(rows) for _, rows in itertools.groupby(range(len(sentences)), documents.__getitem__)]
        else:
            members = [[i] for i in range(len(sentences))]
        streams = [[w for i in rows for w in sentences[i]] for rows in members]
        owners = [[(i, k) for i in rows for k in range(len(sentences[i]))] for rows in members]  # word -> (row, k)
        enc = tokenizer(streams, is_split_into_words=True, truncation=True, max_length=max_length, stride=stride,
                        return_overflowing_tokens=True, return_offsets_mapping=True)
        out = {k: enc[k] for k in enc if k not in ("offset_mapping", "overflow_to_sample_mapping")}
        out.update(example_index=[], word_index=[], sentences=[], num_words=[])
        if gold:
            out.update(labels=[], gold_tags=[])
        ids = [[label2id[t] for t in tags] for tags in gold] if gold else None
        mapping, reported = enc["overflow_to_sample_mapping"], set()
        for w, stream in enumerate(mapping):
            word_ids, offsets = enc.word_ids(w), enc["offset_mapping"][w]
            pieces = [owners[stream][word] if word is not None else None for word in word_ids]  # (row, k) or None
            continued = w > 0 and mapping[w - 1] == stream  # a later window: its first piece may be mid-word
            first_content = next((j for j, piece in enumerate(pieces) if piece is not None), None)
            starts = []  # the (row, k) of the word a piece starts, else None
            for j, piece in enumerate(pieces):
                new_word = piece is not None and (j == 0 or word_ids[j - 1] != word_ids[j])
                mid_word = continued and j == first_content and offsets[j][0] > 0
                starts.append(piece if new_word and not mid_word else None)
            # Each row is reported (its size and gold) once, by the first window holding a piece of it; rows
            # with no piece (no words, or only characters the tokenizer drops) by their stream's last window.
            rows = {piece[0] for piece in pieces if piece is not None}
            if w + 1 == len(mapping) or mapping[w + 1] != stream:
                rows.update(members[stream])
            rows = sorted(rows - reported)
            reported.update(rows)
            out["example_index"].append([indices[s[0]] if s else -1 for s in starts])
            out["word_index"].append([s[1] if s else -1 for s in starts])
            out["sentences"].append([indices[r] for r in rows])
            out["num_words"].append([len(sentences[r]) for r in rows])
            if case_token_types:
                out["token_type_ids"][w] = [int(piece is not None and sentences[piece[0]][piece[1]][:1].isupper())
                                            for piece in pieces]
            if gold:
                out["gold_tags"].append([ids[r] for r in rows])
                out["labels"].append([collators.IGNORED if piece is None else ids[piece[0]][piece[1]] if start
                                      else inside[ids[piece[0]][piece[1]]] if label_all_tokens else collators.IGNORED
                                      for piece, start in zip(pieces, starts)])
        return out
    return encode


def trained_window_encoder(tokenizer, tag_set, settings, words_column, tags_column):
    """window_encoder for a trained model, from its run settings (run_config.yaml): its window length and
    stride, sentences in document context and capitals marked as it was trained to read them."""
    return window_encoder(tokenizer, tag_set, words_column, tags_column, settings.get("max_seq_length", 128),
                          settings.get("stride", 32), document_context=bool(settings.get("document_context")),
                          case_token_types=bool(settings.get("case_token_types")))


def words_from_windows(token_predictions, windows):
    """One tag id per word of each example (in row order), from per-sub-token predictions of every window.
    A word seen in several windows takes the prediction of the window where its first sub-token is most
    central (furthest from a window edge, where context is cut); ties go to the first window. A word with
    no sub-token at all (a character the tokenizer drops) is predicted O (id -1 here)."""
    if len(token_predictions) != len(windows):  # predictions gathered twice or lost (e.g. under DDP)
        raise RuntimeError(f"{len(token_predictions)} window predictions for {len(windows)} windows")
    best, sizes = {}, {}
    columns = windows.select_columns(["example_index", "word_index", "sentences", "num_words"])[:]
    for w, (examples, words) in enumerate(zip(columns["example_index"], columns["word_index"])):
        sizes.update(zip(columns["sentences"][w], columns["num_words"][w]))
        for j, (example, word) in enumerate(zip(examples, words)):
            if word < 0:
                continue
            centrality = min(j, len(words) - 1 - j)
            if (example, word) not in best or centrality > best[example, word][0]:
                best[example, word] = (centrality, int(token_predictions[w][j]))
    return [[best.get((example, i), (0, -1))[1] for i in range(sizes[example])] for example in sorted(sizes)]


def gold_from_windows(windows):
    """Gold tag ids per word of each example, in row order."""
    gold = {}
    for rows, tags in zip(windows["sentences"], windows["gold_tags"]):
        gold.update(zip(rows, tags))
    return [gold[example] for example in sorted(gold)]


def entity_scores(gold, predicted, scheme="IOB2") -> dict:
    """Entity-level precision/recall/F1 (seqeval, strict: an entity counts only if its span and type match
    exactly and it is well-formed in the scheme), overall and per type, plus word-level tag accuracy: the
    evaluate module common/metric_modules/seqeval_entities."""
    return metrics.load("seqeval_entities").compute(predictions=predicted, references=gold, scheme=scheme)


def _names(tag_set, ids):
    return [[tag_set.names[i] if i >= 0 else "O" for i in sentence] for sentence in ids]


def metrics_for(tag_set, encoded, per_type=True):
    """A compute_metrics(eval_prediction, split) for training.TrainerFactory: scores words, never sub-tokens,
    from the windows of encoded[split]. per_type False (run_ner's --return_entity_level_metrics false): the
    overall scores only."""
    def compute(eval_prediction, split):
        windows = encoded[split]
        predicted = words_from_windows(_token_ids(eval_prediction.predictions), windows)
        scores = entity_scores(_names(tag_set, gold_from_windows(windows)), _names(tag_set, predicted), tag_set.scheme)
        return scores if per_type else {k: scores[k] for k in ("precision", "recall", "f1", "accuracy")}
    return compute


def _token_ids(logits):
    logits = logits[0] if isinstance(logits, tuple) else logits
    return np.asarray(logits).argmax(-1)


def entities(tags, words, scheme="IOB2"):
    """Entity spans of one tagged sentence, read as strictly as they are scored: type, word span, text."""
    from seqeval.scheme import IOB2, IOBES, Entities
    spans = Entities([tags], IOBES if scheme == "BIOES" else IOB2).entities[0]
    return [{"type": e.tag, "start": e.start, "end": e.end, "text": " ".join(words[e.start:e.end])} for e in spans]


def prediction_writer(tag_set, encoded, words_column, tags_column):
    """Writes <split>_predictions.jsonl (predictions.jsonl for test: tokens, predicted tags, entity spans,
    gold tags and entities where known) and <split>_predictions.conll (`word [gold] predicted` per line,
    conlleval's format, a blank line between sentences); for labelled splits, <split>_entity_scores.png."""
    def write(split, output, raw_split, output_dir):
        predicted = _names(tag_set, words_from_windows(_token_ids(output.predictions), encoded[split]))
        if len(predicted) != len(raw_split):
            raise RuntimeError(f"{split}: {len(predicted)} predicted sentences for {len(raw_split)} examples")
        has_gold = tags_column in raw_split.column_names
        rows, lines = [], []
        for i, (example, tags) in enumerate(zip(raw_split, predicted)):
            words = example[words_column]
            row = {"id": i, "tokens": words, "predicted_tags": tags, "entities": entities(tags, words, tag_set.scheme)}
            if has_gold:
                row.update(gold_tags=example[tags_column],
                           gold_entities=entities(example[tags_column], words, tag_set.scheme))
            rows.append(row)
            gold = example[tags_column] if has_gold else [None] * len(words)
            lines += [" ".join(x for x in (word, g, p) if x is not None) for word, g, p in zip(words, gold, tags)] + [""]
        artifacts.write_jsonl(artifacts.split_file(output_dir, split, artifacts.PREDICTIONS), rows)
        artifacts.write_text(artifacts.split_file(output_dir, split, "predictions.conll"), "\n".join(lines))
        if has_gold:
            gold = _names(tag_set, gold_from_windows(encoded[split]))
            scores = entity_scores(gold, predicted, tag_set.scheme)
            types = sorted({_split(t)[1] for t in tag_set.names if _split(t)[1]})
            reports.task_plot(output_dir, split, "entity_scores", lambda figure: draw_entity_scores(
                figure, scores, types), size=(3 + 1.2 * len(types), 4.5))
    return write


def draw_entity_scores(figure, scores, types):
    """Per entity type precision/recall/F1 from entity_scores (support in the labels)."""
    groups = [f"{t}\n(n={int(scores.get(f'{t}_support', 0))})" for t in types] + ["all"]
    series = {name: [scores.get(f"{t}_{name}", 0.0) for t in types] + [scores[name]]
              for name in ("precision", "recall", "f1")}
    reports.draw_grouped_bars(figure, groups, series, "entity-level scores (seqeval, strict)", "score", (0, 1.05))


def usage(model_dir, case_token_types=False) -> str:
    """The model card's "Use it" code: the token-classification pipeline, words grouped into entities; for a
    model trained with --case_token_types, which pipeline() would not mark, the project's predict tool."""
    if case_token_types:
        return (f"# Trained with --case_token_types: pipeline() would not mark capitalised words (it still tags,\n"
                f"# less well, thanks to --case_dropout); the project's predict tool marks them as training did:\n"
                f"# python -m common.tools.predict {model_dir} --input new.jsonl --output tagged.jsonl")
    return (f"from transformers import pipeline\n\ntag = pipeline(\"token-classification\", model={model_dir!r}, "
            f"aggregation_strategy=\"simple\")\nprint(tag(\"Anna moved to Paris.\"))")


# ---- --augment mentions: mention replacement


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


def training_mentions(raw, cfg, words_column, tags_column, scheme):
    """--augment mentions, after TagSet.from_splits read the tags (names, IOB2 or BIOES): see common.techniques.augment."""
    ops = augment.checked_ops(cfg, augment.NER_OPS, "NER")
    if not ops:
        return raw
    raw.splits[TRAIN] = raw.splits[TRAIN].select_columns([words_column, tags_column])
    pool = MentionPool(raw.splits[TRAIN][words_column], raw.splits[TRAIN][tags_column], scheme)

    def alter(i, row, op, rng):
        row[words_column], row[tags_column] = pool.replace(i, cfg.data.augment_probability, rng)
        return row
    return augment.extend(raw, cfg, ops, alter)
