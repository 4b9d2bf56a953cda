"""A learned re-ranker of a QA run's own candidates on the SQuAD slice, trained on held-out training articles.

    python recipes/qa/run.py bench/configs/squad.yaml --validation_file "" --validation_split_percentage 20 \
        --validation_split_by title --output_dir bench/out/squad_heldout_seed42     # n-best on unseen train articles
    python bench/quality.py squad --seeds 42 43 44   # dev runs: bench/out/squad_seed<seed>
    python bench/squad_rerank.py bench/out/squad_heldout_seed42 --apply bench/out/squad_seed4{2,3,4}

(Measured on runs of the bench config without question words marked, as it is again.)

bench/squad_errors.py found the loss in choosing among the run's candidates (its top 5 hold 79 F1 against 61
for its first). This fits a model of each candidate's F1 from what a reader checks: the run's own scores, the
question's type against the span's shape (a number for "how many", a capitalised name for "who"), the question's
words around the span and in its sentence, the default encoder's question-sentence similarity. It learns from
the n-best of a run that did not train on those articles (the first command: 20% of train's articles held out,
as bench/choose.py scores trials), and chooses between models by 5-fold cross-validation there, passages
kept whole. --apply re-ranks runs evaluated on dev with the chosen model, fitted on all held-out questions:
dev is read once, to report, never to choose. Writes bench/squad_rerank_results.md.
"""
import argparse
import functools
import json
import re
import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import Ridge
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "studies"), str(ROOT / "bench")]
from common import modeling  # noqa: E402
from common.metric_modules.squad.squad import f1  # noqa: E402
from frozen_heads import summaries  # noqa: E402
from squad_errors import sentence_of, sentence_spans  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "squad"
RESULTS = ROOT / "bench" / "squad_rerank_results.md"
NBEST, BEST = "validation_nbest_predictions.json", "validation_predictions.json"
STOP = set("a an the of in on at to for from by with and or is was are were be been did does do what which who "
           "whom whose when where why how many much that this these those it its as into than their his her".split())
WH = ("how many", "how much", "what year", "when", "who", "where", "why", "which", "what", "how")
SHAPE = ("has a digit", "has a year", "capitalised words", "log words")
FEATURES = ("score below the first", "log probability", "start logit", "end logit", "log rank",
            "probability of its text", *SHAPE, "its words in the question", "question words around it",
            "question words in its sentence", "its sentence shares the most", "sentence similarity",
            "its sentence most similar", *(f"asks {wh}" for wh in (*WH, "other")),
            *(f"asks {wh} x {shape}" for wh in (*WH, "other") for shape in SHAPE))
MODELS = {"linear": lambda: make_pipeline(StandardScaler(), Ridge(alpha=10.0)),
          "boosted trees": lambda: HistGradientBoostingRegressor(max_depth=4, learning_rate=0.05, max_iter=300,
                                                                 min_samples_leaf=40, random_state=0)}


def words(text):
    return re.findall(r"\w+", text.lower())


def content(text):
    return {w for w in words(text) if w not in STOP}


def question_type(question):
    asked = " ".join(words(question))
    return next((i for i, wh in enumerate(WH) if re.search(rf"\b{wh}\b", asked)), len(WH))


def candidate_features(question, context, spans, sims, candidates):
    """One row per candidate (columns: FEATURES): the run's scores, the span's shape against the question's
    type, word overlap, the encoder's similarity (sims: each sentence's to the question)."""
    asked, kind = content(question), question_type(question)
    top = candidates[0]["score"]
    texts = [" ".join(words(c["text"])) for c in candidates]
    mass = {t: sum(c["probability"] for c, u in zip(candidates, texts) if u == t) for t in texts}
    best_sentence = int(np.argmax(sims))
    overlaps = [len(asked & content(context[a:b])) / max(len(asked), 1) for a, b in spans]
    rows = []
    for rank, (c, text) in enumerate(zip(candidates, texts)):
        a, b = c["offsets"]
        s = sentence_of(spans, a)
        tokens = c["text"].split()
        near = content(context[max(0, a - 60):a] + " " + context[b:b + 60]) & asked
        shape = [any(ch.isdigit() for ch in c["text"]), bool(re.search(r"\b(1[0-9]|20)\d\d\b", c["text"])),
                 np.mean([t[:1].isupper() for t in tokens]) if tokens else 0.0, np.log1p(len(tokens))]
        types = np.zeros(len(WH) + 1)
        types[kind] = 1
        rows.append([c["score"] - top, np.log(c["probability"] + 1e-9), c["start_logit"], c["end_logit"],
                     np.log1p(rank), mass[text], *shape,
                     len(content(c["text"]) & asked) / max(len(content(c["text"])), 1),
                     len(near) / max(len(asked), 1), overlaps[s], overlaps[s] == max(overlaps),
                     sims[s], s == best_sentence, *types, *(types[:, None] * np.array(shape)[None]).ravel()])
    return np.array(rows, dtype=float)


def read_questions(path, wanted):
    """id -> (passage id, question, context, gold texts) for the wanted ids of a SQuAD file."""
    out, passage = {}, 0
    for article in json.loads(path.read_text())["data"]:
        for paragraph in article["paragraphs"]:
            passage += 1
            for qa in paragraph["qas"]:
                if qa["id"] in wanted:
                    out[qa["id"]] = (passage, qa["question"], paragraph["context"], [a["text"] for a in qa["answers"]])
    return out


@functools.lru_cache(maxsize=1)
def encoder():
    """The default model and tokenizer, loaded once for every run's table."""
    from transformers import AutoModel, AutoTokenizer
    path = modeling.default_model_path()
    return AutoModel.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


def first_candidates(question_of):
    """1 for each question's first candidate (the run's own answer), else 0: that choice as a prediction."""
    first = np.zeros(len(question_of))
    first[np.r_[0, np.flatnonzero(question_of[1:] != question_of[:-1]) + 1]] = 1
    return first


def table(path, nbest):
    """Features, each candidate's F1, the question and passage it belongs to, for a run's n-best file."""
    questions = read_questions(path, set(nbest))
    if len(questions) < len(nbest):
        sys.exit(f"error: {len(nbest) - len(questions)} of the run's {len(nbest)} questions are not in {path}: the "
                 f"held-out run must be evaluated on train.json's held-out articles, each --apply run on dev.json")
    model, tokenizer = encoder()
    by_context = {}
    for qid, (passage, question, context, _) in questions.items():
        by_context.setdefault(context, []).append(qid)
    X, y, question_of, passage_of = [], [], [], []
    for context, qids in by_context.items():
        spans = sentence_spans(context)
        texts = [context[a:b] for a, b in spans] + [questions[q][1] for q in qids]
        vectors = summaries(model, tokenizer, texts, max_length=256)["mean of token outputs"]
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        for qid, vector in zip(qids, vectors[len(spans):]):
            passage, question, _, golds = questions[qid]
            candidates = nbest[qid]
            X.append(candidate_features(question, context, spans, vectors[:len(spans)] @ vector, candidates))
            y += [max(f1(c["text"], g) for g in golds) for c in candidates]
            question_of += [qid] * len(candidates)
            passage_of += [passage] * len(candidates)
    return np.vstack(X), np.array(y), np.array(question_of), np.array(passage_of)


def chosen_f1(predicted, y, question_of):
    """Mean F1 (points) when each question takes its candidate of highest predicted F1."""
    best = {}
    for p, f, q in zip(predicted, y, question_of):
        if q not in best or p > best[q][0]:
            best[q] = (p, f)
    return 100 * np.mean([f for _, f in best.values()])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("held_out_run", help="a QA run evaluated on held-out training articles (first command)")
    parser.add_argument("--apply", nargs="*", default=[], help="QA runs evaluated on the slice's dev.json")
    args = parser.parse_args()
    for run in [args.held_out_run, *args.apply]:
        if not (Path(run) / NBEST).exists():
            sys.exit(f"error: {Path(run) / NBEST} not found: give QA output directories with an evaluation "
                     f"(see the commands in python bench/squad_rerank.py --help)")
    if not DATA.exists():
        sys.exit(f"error: {DATA} not found: put the shared data (../shared/data, beside the clone) in place")
    torch.set_num_threads(1)
    X, y, question_of, passage_of = table(DATA / "train.json", json.loads((Path(args.held_out_run) / NBEST).read_text()))
    lines = ["# A learned re-ranker of the QA run's candidates (SQuAD slice)", "",
             f"Written by `python bench/squad_rerank.py {' '.join(sys.argv[1:])}`.", "",
             f"Held-out training articles ({args.held_out_run}): {len(set(question_of))} questions, "
             f"{len(set(passage_of))} passages, {len(y)} candidates. F1 in points; 5-fold cross-validation, passages "
             "kept whole:", "", "| choice | held-out F1 |", "|---|---|",
             f"| the run's own first candidate | {chosen_f1(first_candidates(question_of), y, question_of):.2f} |"]
    scores = {}
    for name, make in MODELS.items():
        predicted = np.zeros(len(y))
        for fit, held in GroupKFold(n_splits=5).split(X, y, passage_of):
            predicted[held] = make().fit(X[fit], y[fit]).predict(X[held])
        scores[name] = chosen_f1(predicted, y, question_of)
        lines.append(f"| re-ranked by the {name} model | {scores[name]:.2f} |")
    chosen = max(scores, key=scores.get)
    lines += ["", f"Chosen there: the {chosen} model, fitted on all held-out candidates for dev.", ""]
    if args.apply:
        model = MODELS[chosen]().fit(X, y)
        lines += ["| dev run | its own F1 | re-ranked F1 |", "|---|---|---|"]
        before, after = [], []
        for run in args.apply:
            nbest = json.loads((Path(run) / NBEST).read_text())
            Xd, yd, qd, _ = table(DATA / "dev.json", nbest)
            before.append(chosen_f1(first_candidates(qd), yd, qd))
            after.append(chosen_f1(model.predict(Xd), yd, qd))
            lines.append(f"| {run} | {before[-1]:.2f} | {after[-1]:.2f} |")
        if len(args.apply) > 1:
            lines.append(f"| mean ± std | {np.mean(before):.2f} ± {np.std(before, ddof=1):.2f} | "
                         f"{np.mean(after):.2f} ± {np.std(after, ddof=1):.2f} |")
    RESULTS.write_text("\n".join(lines) + "\n")
    print(RESULTS.read_text())


if __name__ == "__main__":
    main()
