"""Cloze questions from CoNLL-2003's training news, in SQuAD's format: extra span-finding practice for the QA
recipe before it meets the 2,798 questions of the SQuAD slice (Dhingra et al. 2018; Lewis et al. 2019).

    python bench/squad_cloze.py      # writes bench/out/squad_cloze/train.json

A question is one sentence of a news story with a named entity replaced by a question word (a person: who, a
place: where, an organisation: which organisation, other names: what), its context the sentences around it, and
its answer the entity's mention in a nearby sentence; the question's own sentence is never there to copy from:
    question  "who scored twice in the second half ?"     (from "Shearer scored twice in the second half .")
    context   "Shearer, back from injury, played for ..."   answer "Shearer"
Measured, not kept: the default model after 2 epochs of these (4 min) then the SQuAD bench config scores 53.1
held-out F1 on whole training articles at its best epoch (52.2 averaged), against 55.1 (55.3) from the default
model (bench/search/squad_articles_cloze.log): a head start after the first epoch (+3.4) that is gone by the last.
That run had 4,135 questions; the script now reads entities as the NER recipe does (an I-X after another type
opens an entity) and writes 4,172.

Stories are told apart by their datelines ("LONDON 1996-08-22"): train.txt has no -DOCSTART- lines. Only the
training split is read; CoNLL's dev and test sets and SQuAD's dev articles are never used.
"""
import argparse
import json
import random
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from common import data  # noqa: E402
from common.tasks import tagging  # noqa: E402

CONLL = ROOT.parent / "shared" / "data" / "conll2003" / "train.txt"
QUESTION_WORDS = {"PER": "who", "LOC": "where", "ORG": "which organisation", "MISC": "what"}
DATELINE = re.compile(r"\d{4}-\d\d-\d\d$")
NO_SPACE_BEFORE = {",", ".", ";", ":", "!", "?", "%", ")", "'s", "n't"}


def sentences(path):
    """[(words, tags)] from a CoNLL file, read by the recipes' own reader."""
    table = data.read_conll(str(path), "conll", data.ConllColumns("words", "tags"))
    return list(zip(table["words"], table["tags"]))


def stories(rows):
    """The body sentences of each story: those after its dateline, up to the next story's headline."""
    starts = [i for i, (words, _) in enumerate(rows) if len(words) <= 8 and DATELINE.match(words[-1])]
    return [rows[start + 1:(following - 1 if following else len(rows))]
            for start, following in zip(starts, [*starts[1:], None])]


def mentions(words, tags):
    """[(first, end, type)] of the entities in one sentence, read as the NER recipe reads them (an I-X that opens
    an entity, as a few of this file's do, counts as B-X)."""
    return [(e["start"], e["end"], e["type"]) for e in tagging.entities(tagging.to_iob2(tags), words)]


def joined(words):
    """Text from tokens with the spaces news text would have, and each token's character offset."""
    text, offsets = "", []
    for word in words:
        if text and word not in NO_SPACE_BEFORE and not text.endswith(("(", "$")):
            text += " "
        offsets.append(len(text))
        text += word
    return text, offsets


def is_prose(words):
    """A sentence worth asking about: 8 words or more, mostly lowercase words (sports results and tables,
    frequent in this news, are mostly names and numbers)."""
    return len(words) >= 8 and sum(w.isalpha() and w.islower() for w in words) >= 0.4 * len(words)


def cloze_questions(story, story_id, reach=3):
    """SQuAD paragraphs, one per question. The context is a paragraph-sized stretch of the story, from the
    sentence before to the sentence after the question's sentence and the nearest other one naming the answer
    (at most `reach` sentences away), without the question's sentence."""
    entity_texts = [{" ".join(words[a:b]) for a, b, _ in mentions(words, tags)} for words, tags in story]
    paragraphs = []
    for q, (words, tags) in enumerate(story):
        if not is_prose(words):
            continue
        for first, end, kind in mentions(words, tags):
            answer = " ".join(words[first:end])
            elsewhere = [i for i, texts in enumerate(entity_texts) if i != q and answer in texts]
            if not elsewhere or min(abs(i - q) for i in elsewhere) > reach:
                continue
            named = min(elsewhere, key=lambda i: abs(i - q))
            kept = [i for i in range(max(0, min(q, named) - 1), min(len(story), max(q, named) + 2)) if i != q]
            context, offsets = joined([w for i in kept for w in story[i][0]])
            position = sum(len(story[i][0]) for i in kept if i < named)
            at = next(position + a for a, b, _ in mentions(*story[named]) if " ".join(story[named][0][a:b]) == answer)
            start = offsets[at]
            body = words[:first] + [QUESTION_WORDS[kind]] + words[end:]
            question = joined(body[:-1] if body[-1] in {".", "?", "!"} else body)[0] + " ?"
            span = joined(words[first:end])[0]
            if context[start:start + len(span)] != span:  # spaced differently in its context: skip it
                continue
            paragraphs.append({"context": context, "qas": [{
                "id": f"conll-{story_id}-{q}-{first}", "question": question,
                "answers": [{"text": span, "answer_start": start}]}]})
    return paragraphs


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max_questions", type=int, default=10000, help="a random sample of this many (seeded)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=str(ROOT / "bench/out/squad_cloze/train.json"))
    args = parser.parse_args()
    if not CONLL.exists():
        sys.exit(f"error: {CONLL} not found: put the shared data (../shared/data, beside the clone) in place")
    paragraphs = [p for i, story in enumerate(stories(sentences(CONLL))) for p in cloze_questions(story, i)]
    random.Random(args.seed).shuffle(paragraphs)
    paragraphs = paragraphs[:args.max_questions]
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    json.dump({"version": "cloze-conll2003-train", "data": [{"title": f"conll-{p['qas'][0]['id'].split('-')[1]}",
                                                              "paragraphs": [p]} for p in paragraphs]},
              open(args.output, "w"), ensure_ascii=False)
    kinds = [p["qas"][0]["question"] for p in paragraphs]
    print(f"{len(paragraphs)} cloze questions from {CONLL.name} -> {args.output}; e.g. {kinds[0]!r}")


if __name__ == "__main__":
    main()
