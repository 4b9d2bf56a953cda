"""Real public data (GLUE SST-2 from ../shared/data), when that folder is beside the clone: a short run, and the
sentence groups the SST-2 search holds out (bench/sst2_groups.py), and the other bench scripts' data helpers."""
import pytest

from conftest import FAST, ROOT, SHARED_DATA, read_json, run_recipe

SST2 = SHARED_DATA / "sst2"
pytestmark = pytest.mark.skipif(not SST2.is_dir(), reason="../shared/data/sst2 is not beside this clone")


def test_sst2_subset_learns_real_sentiment(tmp_path):
    out = tmp_path / "out"
    run_recipe("text_classification", "bench/configs/sst2.yaml", "--output_dir", out, "--max_train_samples", "3000",
               "--num_train_epochs", "1", "--eval_strategy", "no", *FAST)
    results = read_json(out / "all_results.json")
    # all-MiniLM-L6-v2 after 3,000 sentences: well above the 50.9% majority class on the official dev set.
    assert results["eval_samples"] == 872 and results["eval_accuracy"] >= 0.75, results


def test_sst2_phrases_join_the_sentence_they_come_from():
    """bench/sst2_groups.py: every row joins a longer row (its sentence) that contains it as a run of words, so
    holding out a group holds out the sentence's phrases with it."""
    import sys

    import pandas as pd
    sys.path.insert(0, str(ROOT / "bench"))
    from sst2_groups import held_out, sentence_groups

    assert sentence_groups(["kids , spirit", "a film of kids , spirit and heart", "a film", "other words"]) == [1, 1, 1, 3]
    texts = pd.read_csv(SST2 / "train.tsv", sep="\t", quoting=3, keep_default_na=False).sentence.tolist()
    groups = sentence_groups(texts)
    roots = set(groups)
    # The treebank's training split has 8,544 sentences, some of them repeated as phrases of longer ones.
    assert 6000 < len(roots) < 8544
    for row in range(0, len(texts), 97):
        assert f" {' '.join(texts[row].split())} " in f" {' '.join(texts[groups[row]].split())} "
    # --hold_out: whole groups on one side, a fifth of them held out
    frame = pd.DataFrame({"sentence_group": groups})
    held = held_out(frame.sentence_group)
    assert not set(frame.sentence_group[held]) & set(frame.sentence_group[~held])
    assert abs(frame.sentence_group[held].nunique() / len(roots) - 0.2) < 0.01
    assert 0.1 < held.mean() < 0.3


def test_cloze_questions_ask_about_an_entity_the_rest_of_the_story_names(tmp_path):
    """bench/squad_cloze.py: the question is one sentence with an entity replaced by a question word, the
    context the sentences around it without it, and the answer that entity where the context names it."""
    import json
    import subprocess
    import sys
    sys.path.insert(0, str(ROOT / "bench"))
    from squad_cloze import cloze_questions

    story = [("Shearer , back from injury , played for Newcastle on Saturday .".split(),
              "B-PER O O O O O O O B-ORG O O O".split()),
             ("The England striker Shearer scored twice in the second half at the ground .".split(),
              "O B-LOC O B-PER O O O O O O O O O O".split()),
             ("1 2 3".split(), "O O O".split())]
    asked = {q["question"]: (p["context"], q["answers"][0]) for p in cloze_questions(story, 7) for q in p["qas"]}
    assert set(asked) == {"The England striker who scored twice in the second half at the ground ?",
                          "who, back from injury, played for Newcastle on Saturday ?"}  # not Newcastle: named once
    context, answer = asked["The England striker who scored twice in the second half at the ground ?"]
    assert "scored twice" not in context and answer["text"] == "Shearer"
    assert context[answer["answer_start"]:].startswith("Shearer, back from injury")  # spaced as news text
    if (SHARED_DATA / "conll2003" / "train.txt").exists():
        out = tmp_path / "cloze.json"
        subprocess.run([sys.executable, "bench/squad_cloze.py", "--max_questions", "300", "--output", str(out)],
                       cwd=ROOT, check=True, capture_output=True)
        paragraphs = [p for article in json.loads(out.read_text())["data"] for p in article["paragraphs"]]
        assert len(paragraphs) == 300
        for p in paragraphs:
            answer = p["qas"][0]["answers"][0]
            assert p["context"][answer["answer_start"]:].startswith(answer["text"])
            assert p["qas"][0]["question"].endswith("?")


def test_squad_errors_finds_the_sentence_of_a_position():
    """bench/squad_errors.py splits a context into sentences at ". " before a capital, digit or quote only (a rough
    splitter: "Mr. Smith" splits too)."""
    import sys
    sys.path.insert(0, str(ROOT / "bench"))
    from squad_errors import sentence_of, sentence_spans

    context = 'Mr. Smith came in 1901. He left. "Why?" she asked. e.g. this stays'
    spans = sentence_spans(context)
    assert [context[a:b] for a, b in spans] == ["Mr.", "Smith came in 1901.", "He left.", '"Why?" she asked. e.g. this stays']
    assert sentence_of(spans, context.index("left")) == 2 and sentence_of(spans, context.index("stays")) == 3


def test_qnli_pairs_hold_the_answer_sentence_and_its_closest_rival():
    """bench/qnli_from_squad.py: per question, its answer's sentence (label 0) and the other sentence of the
    passage sharing the most words with the question (label 1)."""
    import sys
    sys.path.insert(0, str(ROOT / "bench"))
    from qnli_from_squad import pairs

    context = "The dome is gold. The statue on the dome faces north. Tours start at noon."
    question = {"question": "Which way does the statue on the dome face?",
                "answers": [{"text": "north", "answer_start": context.index("north")}]}
    rows = pairs([{"paragraphs": [{"context": context, "qas": [question]}]}])
    assert rows == [("The statue on the dome faces north.", question["question"], 0),
                    ("The dome is gold.", question["question"], 1)]


def test_the_squad_re_ranker_reads_question_types_and_span_shapes():
    """bench/squad_rerank.py: a candidate's features name what a reader checks (a number for "how many", the
    question's own words are rarely the answer), and each question takes its candidate of highest prediction."""
    import sys

    import numpy as np
    sys.path.insert(0, str(ROOT / "bench"))
    from squad_errors import sentence_spans
    from squad_rerank import FEATURES, WH, candidate_features, chosen_f1, question_type

    assert [WH[question_type(q)] for q in ("How many moons?", "In what year did it end?", "Who wrote it?")] == \
           ["how many", "what year", "who"]
    context = "Mars has two moons. They were found in 1877."
    candidates = [{"text": text, "offsets": [context.index(text), context.index(text) + len(text)], "score": score,
                   "start_logit": score / 2, "end_logit": score / 2, "probability": p}
                  for text, score, p in (("Mars", 3.0, 0.7), ("two", 2.0, 0.2), ("1877", 1.0, 0.1))]
    spans = sentence_spans(context)
    rows = candidate_features("How many moons does Mars have?", context, spans, np.array([0.9, 0.1]), candidates)
    column = {name: rows[:, i] for i, name in enumerate(FEATURES)}
    assert rows.shape == (3, len(FEATURES))
    assert column["its words in the question"].tolist() == [1, 0, 0]
    assert column["has a year"].tolist() == [0, 0, 1] and column["asks how many"].tolist() == [1, 1, 1]
    assert column["its sentence most similar"].tolist() == [1, 1, 0]
    assert column["score below the first"].tolist() == [0, -1, -2]
    # Two questions: q1's second candidate predicted best (F1 1), q2's first (F1 0.5).
    assert chosen_f1(np.array([0.1, 0.9, 0.8, 0.2]), np.array([0, 1, 0.5, 1]), np.array(["q1", "q1", "q2", "q2"])) == 75
