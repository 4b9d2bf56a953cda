"""Extractive QA over contexts longer than the model: overlapping windows with offset mappings on the
way in, one answer span per example from the logits of all its windows on the way out.

Every window keeps `example_index` (its example's row), `offset_mapping` (character span of each token,
[-1, -1] outside the context, so a span can only be chosen inside the context) and `cls_index` (the
"no answer" position). Windows of labelled rows carry start/end positions at evaluation time too, so
the evaluation loss is reported; a window that does not hold the whole answer points at CLS.
"""
import logging

import numpy as np
from tqdm.auto import tqdm

from common import args, artifacts, reports
from common.errors import UserError
from common.tasks import squad
from common.techniques import case_marks, question_marks

logger = logging.getLogger(__name__)


def check_windows_fit(tokenizer, raw, question_column, max_seq_length, doc_stride):
    """Before any tokenizing of contexts: a window holds the question, the special tokens and a slice of
    context that must be longer than the stride, or windows could not advance."""
    if max_seq_length > tokenizer.model_max_length:
        raise UserError(f"--max_seq_length {max_seq_length} is longer than the model accepts "
                        f"({tokenizer.model_max_length}); use at most {tokenizer.model_max_length}")
    if doc_stride < 0:
        raise UserError(f"--doc_stride must be 0 or more, got {doc_stride}")
    longest, where = 0, ""
    for split, ds in raw.splits.items():
        questions = [q.lstrip() for q in ds[question_column]]
        lengths = [len(ids) for ids in tokenizer(questions, add_special_tokens=False)["input_ids"]]
        row = int(np.argmax(lengths))
        if lengths[row] > longest:
            longest, where = lengths[row], f"{raw.sources[split]} row {row + 1}"
    specials = tokenizer.num_special_tokens_to_add(pair=True)
    room = max_seq_length - longest - specials
    if room <= 0:
        raise UserError(f"--max_seq_length {max_seq_length} leaves no room for context: the longest question "
                        f"({longest} tokens, {where}) and {specials} special tokens fill it; raise --max_seq_length "
                        f"above {longest + specials + doc_stride}")
    if doc_stride >= room:
        raise UserError(f"--doc_stride {doc_stride} does not fit: with --max_seq_length {max_seq_length}, the longest "
                        f"question ({longest} tokens, {where}) and {specials} special tokens leave {room} context "
                        f"tokens per window; use --doc_stride {room - 1} or less, or raise --max_seq_length")


def window_encoder(tokenizer, question_column, context_column, answer_column, max_seq_length, doc_stride,
                   case_token_types=False, mark_question_words=False):
    """A batched `map(..., with_indices=True)` function: each example becomes one window or more.
    The question goes on the side the tokenizer does not pad (question first when it pads on the right).
    With case_token_types, the pieces of capitalised words (question and context) are token type 1 and all
    others 0, in place of the question/context segments ([SEP] still parts them). With mark_question_words,
    the context's words that occur in the question add 2 to that (1 without case marks): question_marks."""
    context_first = tokenizer.padding_side == "left"
    context_sequence = 0 if context_first else 1

    def token_type(text, position, words):
        capital = case_marks.capitalised(text, position) if case_token_types else 0
        if not words:
            return capital
        return capital + (2 if case_token_types else 1) * question_marks.in_question(text, position, words)

    def encode(batch, indices):
        questions = [q.lstrip() for q in batch[question_column]]  # leading spaces would waste tokens
        pair = (batch[context_column], questions) if context_first else (questions, batch[context_column])
        enc = tokenizer(*pair, truncation="only_first" if context_first else "only_second", max_length=max_seq_length,
                        stride=doc_stride, return_overflowing_tokens=True, return_offsets_mapping=True)
        sample = enc.pop("overflow_to_sample_mapping")
        labelled = answer_column is not None and answer_column in batch
        columns = {"example_index": [], "cls_index": []}
        if labelled:
            columns.update(start_positions=[], end_positions=[])
        words = [question_marks.question_words(q) for q in questions] if mark_question_words else None
        for j, offsets in enumerate(enc["offset_mapping"]):
            sequence_ids = enc.sequence_ids(j)
            if case_token_types or mark_question_words:
                texts = [pair[0][sample[j]], pair[1][sample[j]]]
                named = words[sample[j]] if words else None  # marked in the context only
                enc["token_type_ids"][j] = [
                    0 if s is None else token_type(texts[s], a, named if s == context_sequence else None)
                    for (a, _), s in zip(offsets, sequence_ids)]
            offsets = [list(o) if s == context_sequence else [-1, -1] for o, s in zip(offsets, sequence_ids)]
            enc["offset_mapping"][j] = offsets
            ids = enc["input_ids"][j]
            cls = ids.index(tokenizer.cls_token_id) if tokenizer.cls_token_id in ids else 0
            columns["example_index"].append(indices[sample[j]])
            columns["cls_index"].append(cls)
            if labelled:
                start, end = _answer_tokens(offsets, batch[answer_column][sample[j]], batch[context_column][sample[j]])
                columns["start_positions"].append(cls if start is None else start)
                columns["end_positions"].append(cls if end is None else end)
        enc.update(columns)
        return enc
    return encode


def _answer_tokens(offsets, answers, context):
    """Token span of the first gold answer when this window holds all of it, else (None, None)."""
    texts, starts = squad.answers_of(answers)
    if not texts or not texts[0] or context[starts[0]:starts[0] + len(texts[0])] != texts[0]:
        return None, None
    first_char, last_char = starts[0], starts[0] + len(texts[0])
    inside = [k for k, (a, _) in enumerate(offsets) if a >= 0]
    if not inside or offsets[inside[0]][0] > first_char or offsets[inside[-1]][1] < last_char:
        return None, None
    start = max(k for k in inside if offsets[k][0] <= first_char)
    end = min(k for k in inside if offsets[k][1] >= last_char)
    return start, end


def best_spans(start_logits, end_logits, windows, num_examples, n_best_size, max_answer_length):
    """The n_best highest-scoring spans of each example over all its windows, vectorised over windows.
    windows: columns example_index, offset_mapping, cls_index. Returns per-window-flattened candidate
    arrays sorted by (example, score descending): example, window, start token, end token, score; and the
    null score of each example (the smallest CLS score over its windows, as in HF's run_qa)."""
    n_windows, width = start_logits.shape
    offsets = np.full((n_windows, width, 2), -1, dtype=np.int64)
    for j, window_offsets in enumerate(windows["offset_mapping"]):
        offsets[j, :len(window_offsets)] = window_offsets[:width]
    in_context = offsets[:, :, 0] >= 0
    starts = np.where(in_context, start_logits, -np.inf)
    ends = np.where(in_context, end_logits, -np.inf)

    k = min(n_best_size, width)  # candidates: the k best starts x the k best ends of each window
    top_start = np.argpartition(-starts, k - 1, axis=1)[:, :k]
    top_end = np.argpartition(-ends, k - 1, axis=1)[:, :k]
    scores = (np.take_along_axis(starts, top_start, 1)[:, :, None] + np.take_along_axis(ends, top_end, 1)[:, None, :])
    length = top_end[:, None, :] - top_start[:, :, None] + 1
    scores = np.where((length >= 1) & (length <= max_answer_length), scores, -np.inf).reshape(n_windows, k * k)
    keep = np.argpartition(-scores, min(n_best_size, k * k) - 1, axis=1)[:, :n_best_size]

    window = np.repeat(np.arange(n_windows), keep.shape[1])
    flat = keep.ravel()
    candidate = {"window": window, "start": top_start[window, flat // k], "end": top_end[window, flat % k],
                 "score": scores[window, flat]}
    candidate["example"] = np.asarray(windows["example_index"])[window]
    order = np.lexsort((-candidate["score"], candidate["example"]))
    candidate = {name: values[order] for name, values in candidate.items()}
    finite = np.isfinite(candidate["score"])
    group_start = np.searchsorted(candidate["example"], candidate["example"], side="left")
    rank = np.arange(len(order)) - group_start
    candidate = {name: values[finite & (rank < n_best_size)] for name, values in candidate.items()}

    cls = np.asarray(windows["cls_index"])
    window_null = start_logits[np.arange(n_windows), cls] + end_logits[np.arange(n_windows), cls]
    null = np.full(num_examples, np.inf)
    np.minimum.at(null, np.asarray(windows["example_index"]), window_null)
    return candidate, offsets, null


def extract_answers(predictions, windows, contexts, ids, n_best_size=20, max_answer_length=30, version_2=False,
                    null_score_diff_threshold=0.0, with_nbest=False, progress=False):
    """Window logits -> id -> answer text; id -> null odds (v2.0: null score minus best span score; the
    answer is "" when it exceeds the threshold); id -> n-best list with probabilities (with_nbest)."""
    start_logits, end_logits = (np.asarray(p, dtype=np.float64) for p in predictions[:2])
    if len(start_logits) != len(windows):  # would mean predictions were gathered twice or lost
        raise RuntimeError(f"{len(start_logits)} window predictions for {len(windows)} windows")
    columns = windows.select_columns(["example_index", "offset_mapping", "cls_index"])[:]
    candidate, offsets, null = best_spans(start_logits, end_logits, columns, len(ids), n_best_size, max_answer_length)
    first = np.searchsorted(candidate["example"], np.arange(len(ids)), side="left")
    last = np.searchsorted(candidate["example"], np.arange(len(ids)), side="right")

    def span(c):  # the candidate's characters in its context: [start, end)
        w = candidate["window"][c]
        return int(offsets[w, candidate["start"][c], 0]), int(offsets[w, candidate["end"][c], 1])

    def span_text(i, c):
        start, end = span(c)
        return contexts[i][start:end]

    texts, null_odds, nbest = {}, {}, {}
    for i, qid in enumerate(tqdm(ids, desc="answers from windows", unit="question", disable=not progress)):
        found = first[i] < last[i]  # no candidate: no context token fits (empty context)
        texts[qid] = span_text(i, first[i]) if found else ""
        if version_2:
            null_odds[qid] = float(null[i] - candidate["score"][first[i]]) if found else float("inf")
            if null_odds[qid] > null_score_diff_threshold:
                texts[qid] = ""
        if with_nbest:
            entries = [{"text": span_text(i, c), "offsets": list(span(c)), "score": float(candidate["score"][c]),
                        "start_logit": float(start_logits[candidate["window"][c], candidate["start"][c]]),
                        "end_logit": float(end_logits[candidate["window"][c], candidate["end"][c]])}
                       for c in range(first[i], last[i])]
            if version_2:
                entries = sorted(entries + [{"text": "", "score": float(null[i])}], key=lambda e: -e["score"])
            scores = np.array([e["score"] for e in entries])
            probabilities = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum() if entries else []
            for entry, p in zip(entries, probabilities):
                entry["probability"] = float(p)
            nbest[qid] = entries
    return texts, (null_odds if version_2 else None), nbest


def trained_windows(settings, max_seq_length=None, doc_stride=None):
    """(window length, stride) a trained model read, from its run settings (run_config.yaml), unless given;
    the recipe's defaults for runs whose settings name none."""
    length = settings.get("max_seq_length", 384) if max_seq_length is None else max_seq_length
    stride = settings.get("doc_stride", 128) if doc_stride is None else doc_stride
    return length, stride


def trained_window_encoder(tokenizer, settings, question_column, context_column, max_seq_length=None,
                           doc_stride=None):
    """window_encoder for a trained model, from its run settings (run_config.yaml): its window length and
    stride unless given, and the capitals and question words marked as it was trained to read them."""
    length, stride = trained_windows(settings, max_seq_length, doc_stride)
    return window_encoder(tokenizer, question_column, context_column, None, length, stride,
                          bool(settings.get("case_token_types")), bool(settings.get("mark_question_words")))


def answer(model_dir, questions, contexts, max_seq_length=None, doc_stride=None, batch_size=32, **options):
    """Answer questions with a trained output directory, exactly as evaluation does: same windows (the run's
    length and stride unless given), same marks, same span search. transformers 5 removed
    pipeline("question-answering"); this takes its place. model_dir may also be an ONNX export of one
    (python -m common.tools.export). options: n_best_size, max_answer_length, version_2,
    null_score_diff_threshold. Returns the texts."""
    import datasets
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    from common import inference
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = inference.load(model_dir, AutoModelForQuestionAnswering)
    examples = datasets.Dataset.from_dict({"question": list(questions), "context": list(contexts)})
    encode = trained_window_encoder(tokenizer, args.run_settings(model_dir), "question", "context", max_seq_length,
                                    doc_stride)
    windows = examples.map(encode, batched=True, with_indices=True, remove_columns=examples.column_names)
    inputs = windows.remove_columns(["example_index", "offset_mapping", "cls_index"])
    logits = inference.batched_outputs(model, tokenizer, inputs, ("start_logits", "end_logits"), per_token=True,
                                       batch_size=batch_size)
    ids = [str(i) for i in range(len(examples))]
    texts, _, _ = extract_answers(logits, windows, examples["context"], ids, **options)
    return [texts[i] for i in ids]


class SpanScorer:
    """compute_metrics(eval_prediction, split) and write_predictions(...) for the Trainer: maps window
    logits back to example answers, scores them with the official SQuAD semantics, writes the files."""

    def __init__(self, raw, encoded, question_column, context_column, answer_column, n_best_size=20,
                 max_answer_length=30, version_2=False, null_score_diff_threshold=0.0, progress=True):
        self.windows = {name: encoded[name] for name in raw.splits}
        self.question_column, self.context_column, self.answer_column = question_column, context_column, answer_column
        self.options = {"n_best_size": n_best_size, "max_answer_length": max_answer_length, "version_2": version_2,
                        "null_score_diff_threshold": null_score_diff_threshold}
        self.raw, self.progress = raw, progress  # progress: a bar over questions (--disable_tqdm turns it off)

    def _answers(self, predictions, windows, raw_split, with_nbest=False):
        return extract_answers(predictions, windows, raw_split[self.context_column], squad.example_ids(raw_split),
                               with_nbest=with_nbest, progress=self.progress, **self.options)

    def _golds(self, raw_split):
        if self.answer_column not in raw_split.column_names:
            return None
        return {qid: squad.answers_of(value)[0]
                for qid, value in zip(squad.example_ids(raw_split), raw_split[self.answer_column])}

    def compute_metrics(self, eval_prediction, split):
        """The split's windows were scored; its raw rows hold the gold answers."""
        raw_split = self.raw.splits[split]
        texts, null_odds, _ = self._answers(eval_prediction.predictions, self.windows[split], raw_split)
        golds = self._golds(raw_split)
        return squad.score(texts, golds, null_odds) if golds is not None else {}

    def write_predictions(self, split, output, raw_split, output_dir):
        """[<split>_]predictions.json (id -> text), nbest_predictions.json, null_odds.json (v2.0) and
        predictions.jsonl (id, question, prediction, gold answers when known), and for labelled splits
        scores_by_answer_length.png; no prefix for test."""
        texts, null_odds, nbest = self._answers(output.predictions, self.windows[split], raw_split, with_nbest=True)
        golds = self._golds(raw_split)
        path = lambda name: artifacts.split_file(output_dir, split, name)  # noqa: E731
        artifacts.write_json(path("predictions.json"), texts)
        artifacts.write_json(path("nbest_predictions.json"), nbest)
        if null_odds is not None:
            artifacts.write_json(path("null_odds.json"), null_odds)
        rows = []
        for question, (qid, text) in zip(raw_split[self.question_column], texts.items()):
            row = {"id": qid, "question": question, "prediction": text}
            if null_odds is not None:
                row["null_odds"] = null_odds[qid]
            if golds is not None:
                row["answers"] = golds[qid]
            rows.append(row)
        artifacts.write_jsonl(path(artifacts.PREDICTIONS), rows)
        if golds is not None:
            reports.task_plot(output_dir, split, "scores_by_answer_length", lambda figure: (
                draw_qa_scores_by_answer_length(figure, texts, golds, squad.exact_match, squad.f1)))


ANSWER_LENGTHS = ((1, 1, "1 word"), (2, 2, "2 words"), (3, 3, "3 words"), (4, 5, "4-5 words"), (6, 10 ** 9, "6+ words"))


def draw_qa_scores_by_answer_length(figure, predictions, golds, exact_match, f1):
    """EM and F1 (percent) by the length of the first gold answer; unanswerable questions (SQuAD v2.0)
    form their own "no answer" group, so the HasAns/NoAns split is visible too."""
    buckets = {}
    for qid, gold_texts in golds.items():
        gold_texts = [g for g in gold_texts if squad.normalize_answer(g)]
        words = len(squad.normalize_answer(gold_texts[0]).split()) if gold_texts else 0
        name = "no answer" if not gold_texts else next(
            label for low, high, label in ANSWER_LENGTHS if low <= words <= high)
        targets = gold_texts or [""]
        buckets.setdefault(name, []).append((max(exact_match(predictions[qid], g) for g in targets),
                                             max(f1(predictions[qid], g) for g in targets)))
    buckets["all"] = [score for scores in list(buckets.values()) for score in scores]
    order = [label for _, _, label in ANSWER_LENGTHS] + ["no answer", "all"]
    names = [n for n in order if n in buckets]
    groups = [f"{n}\n(n={len(buckets[n])})" for n in names]
    series = {"exact match": [100 * np.mean([em for em, _ in buckets[n]]) for n in names],
              "F1": [100 * np.mean([f for _, f in buckets[n]]) for n in names]}
    reports.draw_grouped_bars(figure, groups, series, "scores by gold answer length", "percent", (0, 105))


def usage(model_dir) -> str:
    """The model card's "Use it" code: transformers 5 has no question-answering pipeline, answer() stands in."""
    return (f"from common.tasks.span_extraction import answer  # from the recipe's common/ folder\n"
            f"print(answer({model_dir!r}, [\"Who wrote it?\"], [\"It was written by Ada.\"]))")
