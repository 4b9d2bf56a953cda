"""Question-sentence pairs from the SQuAD slice's training articles, in RTE's format (GLUE's QNLI, built the
same way from all of SQuAD): a first fine-tuning on them before RTE (intermediate training, Phang et al. 2018).

    python bench/qnli_from_squad.py      # writes bench/out/qnli_squad/train.tsv

Each question gives two pairs: the sentence holding its answer (label 0, "entailment", as RTE's 0) and the other
sentence of its passage that shares the most words with it (label 1, "not_entailment"), so word overlap alone
does not tell them apart. sentence1 is the passage's sentence, sentence2 the question, as RTE's premise and
hypothesis. Only train.json is read; the slice's dev articles are never used.

Measured (bench/search/rte_qnli.log has the commands): the default model after 2 epochs on these pairs, then
RTE with the bench config's settings and no re-initialising, scores 65.9 on RTE's held-out training pairs
(60.9 from the default model) and 67.5 ± 2.0 on RTE dev over 3 seeds (the bench config: 59.6 ± 1.0).
The two stages are bench/configs/qnli_squad.yaml and rte_qnli.yaml: `python bench/quality.py rte_qnli` runs
this script, then both with each seed (67.0 ± 2.0 on dev with the first stage's seed varied too).
"""
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from squad_errors import sentence_of, sentence_spans  # noqa: E402

SQUAD = ROOT.parent / "shared" / "data" / "squad" / "train.json"
TARGET = ROOT / "bench" / "out" / "qnli_squad" / "train.tsv"


def words(text):
    return set(re.findall(r"\w+", text.lower()))


def pairs(articles):
    """(sentence, question, label) rows: each question's answer sentence (0) and its likeliest other (1)."""
    rows = []
    for article in articles:
        for paragraph in article["paragraphs"]:
            context = paragraph["context"]
            spans = sentence_spans(context)
            sentences = [context[a:b] for a, b in spans]
            for qa in paragraph["qas"]:
                answer = sentence_of(spans, qa["answers"][0]["answer_start"])
                others = [i for i in range(len(sentences)) if i != answer]
                rows.append((sentences[answer], qa["question"], 0))
                if others:
                    asked = words(qa["question"])
                    closest = max(others, key=lambda i: len(asked & words(sentences[i])))
                    rows.append((sentences[closest], qa["question"], 1))
    return rows


def main():
    if not SQUAD.exists():
        sys.exit(f"error: {SQUAD} not found: put the shared data (../shared/data, beside the clone) in place")
    rows = pairs(json.loads(SQUAD.read_text())["data"])
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    with open(TARGET, "w", encoding="utf-8") as fh:  # GLUE's TSV: no quoting, so no tabs or newlines in a field
        for row in [("sentence1", "sentence2", "label"), *rows]:
            fh.write("\t".join(" ".join(str(field).split()) for field in row) + "\n")
    print(f"{len(rows)} pairs ({sum(r[2] == 0 for r in rows)} entailment) from {SQUAD.name} -> {TARGET}")


if __name__ == "__main__":
    main()
