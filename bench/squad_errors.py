"""Where a QA run's SQuAD-slice errors are: the right sentence, or the right span within it?

    python bench/squad_errors.py bench/out/squad_seed42 bench/out/squad_seed43 bench/out/squad_seed44

For each run (its validation_predictions.json and validation_nbest_predictions.json on the slice's dev
articles) it prints how often the answer lies in a gold answer's sentence, how many questions score 0 F1, the
F1 of the best of the top 5 and top 20 candidates (what a perfect re-ranker could reach), and dev F1 when the
default encoder's question-sentence similarity (the mean-pooled sentence embedding it was trained for) is
added to each candidate's score with weight 0, 1, 2, 4 or 8; given several runs, the F1 of their vote (each
answer text's probabilities summed over the runs' candidates: an ensemble of the runs). An analysis on dev, for reading, never for
choosing settings. Sentences are split at ". " before a capital, digit or quote.
"""
import argparse
import collections
import json
import re
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "studies")]
from common import modeling  # noqa: E402
from common.metric_modules.squad.squad import f1  # noqa: E402
from frozen_heads import summaries  # noqa: E402

DEV = ROOT.parent / "shared" / "data" / "squad" / "dev.json"
WEIGHTS = (0, 1, 2, 4, 8)
PREDICTIONS = ("validation_predictions.json", "validation_nbest_predictions.json")  # best answer, candidates


def sentence_spans(context):
    spans, start = [], 0
    for boundary in re.finditer(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])", context):
        spans.append((start, boundary.start()))
        start = boundary.end()
    return spans + [(start, len(context))]


def sentence_of(spans, position):
    return next((i for i, (a, b) in enumerate(spans) if a <= position <= b), -1)


def questions():
    """(id, context, sentence spans, similarity of each sentence to the question, gold texts, gold sentences)."""
    from transformers import AutoModel, AutoTokenizer
    path = modeling.default_model_path()
    model, tokenizer = AutoModel.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)
    out = []
    for article in json.loads(DEV.read_text())["data"]:
        for paragraph in article["paragraphs"]:
            context, qas = paragraph["context"], paragraph["qas"]
            spans = sentence_spans(context)
            texts = [context[a:b] for a, b in spans] + [q["question"] for q in qas]
            vectors = summaries(model, tokenizer, texts, max_length=256)["mean of token outputs"]
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            for q, vector in zip(qas, vectors[len(spans):]):
                out.append((q["id"], context, spans, vectors[:len(spans)] @ vector, [a["text"] for a in q["answers"]],
                            {sentence_of(spans, a["answer_start"]) for a in q["answers"]}))
    return out


def with_similarity(candidates, weight, context, spans, sims):
    """The candidate whose score plus `weight` times its sentence's similarity to the question is highest."""
    def score(candidate):
        at = context.find(candidate["text"])
        return candidate["score"] + (weight * sims[sentence_of(spans, at)] if at >= 0 else 0)
    return max(candidates, key=score)["text"]


def best_f1(text, golds):
    return max(f1(text, gold) for gold in golds)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", help="QA output directories evaluated on the slice's dev.json")
    args = parser.parse_args()
    if not DEV.exists():
        sys.exit(f"error: {DEV} not found: put the shared data (../shared/data, beside the clone) in place")
    for run in args.runs:
        for name in PREDICTIONS:
            if not (Path(run) / name).exists():
                sys.exit(f"error: {Path(run) / name} not found: give QA output directories evaluated on the slice's "
                         f"dev.json, e.g. from python bench/quality.py squad --seeds 42 43 44")
    torch.set_num_threads(1)
    rows = questions()
    print(f"{len(rows)} questions; the encoder's most similar sentence holds the answer for "
          f"{100 * np.mean([int(np.argmax(sims)) in gold for _, _, _, sims, _, gold in rows]):.1f}%")
    predictions = {run: [json.loads((Path(run) / name).read_text()) for name in PREDICTIONS] for run in args.runs}
    for run, (best, nbest) in predictions.items():
        in_sentence = np.mean([sentence_of(spans, context.find(best[qid])) in gold
                               for qid, context, spans, _, _, gold in rows])
        zero = np.mean([best_f1(best[qid], golds) == 0 for qid, _, _, _, golds, _ in rows])
        oracle = {k: np.mean([max(best_f1(c["text"], golds) for c in nbest[qid][:k]) for qid, *_, golds, _ in rows])
                  for k in (5, 20)}
        reranked = [100 * np.mean([best_f1(with_similarity(nbest[qid][:20], w, context, spans, sims), golds)
                                   for qid, context, spans, sims, golds, _ in rows]) for w in WEIGHTS]
        print(f"{run}: answer in a gold sentence {100 * in_sentence:.1f}%, F1 0 for {100 * zero:.1f}%, "
              f"best of top 5 {100 * oracle[5]:.1f} / top 20 {100 * oracle[20]:.1f} F1; with the similarity "
              f"weighted {WEIGHTS}: " + " ".join(f"{f:.2f}" for f in reranked))
    if len(args.runs) > 1:
        nbests = [nbest for _, nbest in predictions.values()]
        voted = []
        for qid, *_, golds, _ in rows:
            votes = collections.Counter()
            for nbest in nbests:
                for candidate in nbest[qid]:
                    votes[candidate["text"]] += candidate["probability"]
            voted.append(best_f1(votes.most_common(1)[0][0], golds))
        print(f"the {len(args.runs)} runs' vote (an ensemble): F1 {100 * np.mean(voted):.2f}")


if __name__ == "__main__":
    main()
