"""The extractive QA recipe: windows over long contexts, the span search, SQuAD metrics, end to end."""
import json
import random

import numpy as np
import pytest
from transformers import AutoModelForQuestionAnswering, AutoTokenizer

from common import modeling
from common.tasks import span_extraction, squad
from common.techniques import case_marks, question_marks
from common.tools import demo_data as demo
from conftest import FAST, read_json, read_jsonl, run_recipe, write_csv, write_jsonl

TASK = "qa"
FILLER = " ".join(demo.FILLER)  # about 40 tokens of text that answers nothing


def _long_rows(n, seed=1):
    """The fact comes after the filler: with --max_seq_length 48 it lies only in the second window."""
    rows = []
    for row in demo.qa_rows(n, random.Random(seed), "long-", filler_sentences=(0, 0)):
        answer, start = row["answers"]["text"][0], row["answers"]["answer_start"][0]
        fact_start = row["context"].rfind(". ", 0, start) + 2 if ". " in row["context"][:start] else 0
        fact_end = row["context"].find(".", start) + 1
        context = f"{FILLER} {row['context'][fact_start:fact_end]}"
        rows.append({**row, "context": context,
                     "answers": {"text": [answer], "answer_start": [context.index(answer, len(FILLER))]}})
    return rows


def _windows(tokenizer, rows, max_seq_length, doc_stride):
    import datasets
    ds = datasets.Dataset.from_list(rows)
    encode = span_extraction.window_encoder(tokenizer, "question", "context", "answers", max_seq_length, doc_stride)
    return ds.map(encode, batched=True, with_indices=True, remove_columns=ds.column_names)


def test_answer_only_in_second_window_points_at_cls_in_the_first():
    tokenizer = AutoTokenizer.from_pretrained(modeling.default_model_path())
    row = _long_rows(1)[0]
    windows = _windows(tokenizer, [row], 48, 8)
    assert len(windows) == 2 and windows["example_index"] == [0, 0]
    first, second = windows[0], windows[1]
    assert (first["start_positions"], first["end_positions"]) == (first["cls_index"], first["cls_index"]) == (0, 0)
    start, end = second["start_positions"], second["end_positions"]
    text = row["context"][second["offset_mapping"][start][0]:second["offset_mapping"][end][1]]
    assert text == row["answers"]["text"][0]
    # The question's tokens are never part of the context: their offsets are masked.
    assert second["offset_mapping"][1] == [-1, -1]

    # The span search picks it from window 2 when the logits there say so, over all windows of the example.
    width = max(len(w) for w in windows["input_ids"])
    start_logits, end_logits = np.zeros((2, width)), np.zeros((2, width))
    start_logits[1, start], end_logits[1, end] = 5.0, 5.0
    start_logits[0, 20], end_logits[0, 21] = 3.0, 3.0  # a weaker span in window 1
    texts, _, nbest = span_extraction.extract_answers((start_logits, end_logits), windows, [row["context"]], ["q"],
                                                      n_best_size=3, with_nbest=True)
    assert texts == {"q": row["answers"]["text"][0]}
    assert len(nbest["q"]) == 3 and nbest["q"][0]["score"] == 10.0
    assert sum(e["probability"] for e in nbest["q"]) == pytest.approx(1.0)
    for entry in nbest["q"]:  # each candidate's offsets locate its text in the context
        assert row["context"][slice(*entry["offsets"])] == entry["text"]


def test_left_padding_tokenizer_puts_the_context_first():
    tokenizer = AutoTokenizer.from_pretrained(modeling.default_model_path())
    tokenizer.padding_side = "left"
    row = _long_rows(1)[0]
    windows = _windows(tokenizer, [row], 48, 8)
    assert len(windows) == 2
    tokens = tokenizer.convert_ids_to_tokens(windows[1]["input_ids"])
    question_start = len(tokens) - 1 - tokens[::-1].index("[SEP]", 1)  # the second [SEP] from the end
    assert tokenizer.convert_tokens_to_string(tokens[question_start + 1:-1]) == row["question"].lower()
    start, end = windows[1]["start_positions"], windows[1]["end_positions"]
    offsets = windows[1]["offset_mapping"]
    assert row["context"][offsets[start][0]:offsets[end][1]] == row["answers"]["text"][0]


def test_span_search_respects_max_answer_length_and_context():
    tokenizer = AutoTokenizer.from_pretrained(modeling.default_model_path())
    row = _long_rows(1)[0]
    windows = _windows(tokenizer, [row], 48, 8)
    width = max(len(w) for w in windows["input_ids"])
    start_logits, end_logits = np.zeros((2, width)), np.zeros((2, width))
    start_logits[0, 1], end_logits[0, 2] = 50.0, 50.0  # question tokens: never an answer
    start_logits[0, 15], end_logits[0, 30] = 9.0, 9.0  # 16 tokens: too long for max_answer_length 10
    start_logits[0, 15], end_logits[0, 17] = 9.0, 4.0
    texts, _, _ = span_extraction.extract_answers((start_logits, end_logits), windows, [row["context"]], ["q"],
                                                  max_answer_length=10)
    offsets = windows[0]["offset_mapping"]
    assert texts["q"] == row["context"][offsets[15][0]:offsets[17][1]]


def test_answer_normalisation_and_metrics_on_a_hand_checked_example():
    assert squad.normalize_answer("The  Cat's, a HAT!") == "cats hat"
    assert squad.exact_match("the Eiffel Tower.", "Eiffel tower") == 1
    # "cat sat" vs "the cat sat down": 2 common tokens, precision 2/2, recall 2/3 -> F1 0.8
    assert squad.f1("cat sat", "the cat sat down") == pytest.approx(0.8)
    predictions = {"a": "cat sat", "b": "Paris", "c": "", "d": "1999"}
    golds = {"a": ["the cat sat down", "a dog"], "b": ["paris", "Paris, France"], "c": [], "d": []}
    v1 = squad.score({k: predictions[k] for k in "ab"}, {k: golds[k] for k in "ab"})
    assert v1 == {"exact_match": 50.0, "f1": pytest.approx(90.0)}  # max over gold answers: (0.8 + 1) / 2
    null_odds = {"a": -2.0, "b": -1.0, "c": 3.0, "d": 0.5}
    v2 = squad.score(predictions, golds, null_odds)
    assert v2["HasAns_total"] == 2 and v2["NoAns_total"] == 2
    assert v2["HasAns_f1"] == pytest.approx(90.0) and v2["NoAns_exact"] == 50.0  # "" right, "1999" wrong
    assert v2["f1"] == pytest.approx(100 * (0.8 + 1 + 1 + 0) / 4)
    # A threshold between a/b (-2, -1) and d (0.5) answers "" for d too: every question right but a's F1.
    assert v2["best_f1"] == pytest.approx(100 * (0.8 + 1 + 1 + 1) / 4) and v2["best_f1_thresh"] == -1.0


def test_real_weights_find_answers_in_the_second_window_and_outputs_reload(demo_data, tmp_path):
    """Default model on the templated biographies; evaluated on long contexts whose fact lies only in
    window 2 of 2. Predictions are checked against the saved model answering on its own."""
    write_jsonl(tmp_path / "long.jsonl", _long_rows(24))
    out = tmp_path / "out"
    run_recipe(TASK, "recipes/qa/config.yaml", "--output_dir", out, "--train_file", demo_data / "qa/train.json",
               "--validation_file", tmp_path / "long.jsonl", "--test_file", "", "--do_predict", "false",
               "--max_seq_length", "48", "--doc_stride", "8", "--num_train_epochs", "1", "--eval_strategy", "no",
               *FAST)
    results = read_json(out / "all_results.json")
    assert results["eval_samples"] == 48  # two windows per question
    assert results["eval_exact_match"] >= 80, results  # the fact is found in window 2
    assert results["eval_loss"] > 0  # windows carry start/end positions at evaluation time
    predictions = read_json(out / "validation_predictions.json")
    rows = read_jsonl(out / "validation_predictions.jsonl")
    assert [r["prediction"] for r in rows] == list(predictions.values())
    exact = np.mean([squad.exact_match(r["prediction"], r["answers"][0]) for r in rows]) * 100
    assert results["eval_exact_match"] == pytest.approx(exact)
    assert set(read_json(out / "validation_nbest_predictions.json")) == set(predictions)

    # The output directory is a plain QA model: it answers on its own exactly as evaluation did (the run's
    # 48-token windows, read from its run_config.yaml).
    long_rows = _long_rows(24)[:8]
    answers = span_extraction.answer(str(out), [r["question"] for r in long_rows], [r["context"] for r in long_rows])
    assert answers == [predictions[r["id"]] for r in long_rows]
    assert AutoModelForQuestionAnswering.from_pretrained(out).config.architectures == ["BertForQuestionAnswering"]
    assert "case_token_types: true" in (out / "run_config.yaml").read_text()  # the default, for an uncased model


def _v2_squad(n, seed):
    """SQuAD v2.0 JSON: every other question asks about someone the context never mentions."""
    rows = demo.qa_rows(n, random.Random(seed), f"v2-{seed}-")
    document = demo.squad_json(rows)
    document["version"] = "v2.0"
    for i, paragraph in enumerate(document["data"][0]["paragraphs"]):
        if i % 2:
            qa = paragraph["qas"][0]
            qa["question"] = "Where was Zoltan born?"
            qa["plausible_answers"], qa["answers"], qa["is_impossible"] = qa["answers"], [], True
    return document


def test_unanswerable_questions_v2(tiny_model, tmp_path):
    for name, seed in (("train", 0), ("dev", 1)):
        (tmp_path / f"{name}.json").write_text(json.dumps(_v2_squad(32, seed)))
    out = tmp_path / "out"
    common = ["--model_name_or_path", tiny_model, "--train_file", tmp_path / "train.json", "--validation_file",
              tmp_path / "dev.json", "--test_file", tmp_path / "dev.json", "--do_train", "--do_eval", "--do_predict",
              "--max_steps", "3", "--max_seq_length", "64", "--doc_stride", "16", *FAST]
    run_recipe(TASK, *common, "--output_dir", out)
    results = read_json(out / "all_results.json")
    assert results["eval_HasAns_total"] == 16 and results["eval_NoAns_total"] == 16
    assert {"eval_best_f1", "eval_best_f1_thresh", "eval_HasAns_f1", "eval_NoAns_f1", "eval_loss"} <= set(results)
    assert results["eval_best_f1"] >= results["eval_f1"]
    null_odds, predictions = read_json(out / "null_odds.json"), read_json(out / "predictions.json")
    assert set(null_odds) == set(predictions) and len(predictions) == 32
    assert all((predictions[q] == "") == (null_odds[q] > 0) for q in null_odds)  # default threshold 0
    assert any(e["text"] == "" for e in read_json(out / "nbest_predictions.json")["v2-1-1"])



def test_null_score_threshold_decides_no_answer():
    """v2.0: answer "" when the null ([CLS]) score beats the best span by more than the threshold; the
    null score of a question is the smallest over its windows."""
    tokenizer = AutoTokenizer.from_pretrained(modeling.default_model_path())
    row = _long_rows(1)[0]
    windows = _windows(tokenizer, [row], 48, 8)
    width = max(len(w) for w in windows["input_ids"])
    start_logits, end_logits = np.zeros((2, width)), np.zeros((2, width))
    start, end = windows[1]["start_positions"], windows[1]["end_positions"]
    start_logits[1, start], end_logits[1, end] = 2.0, 2.0  # best span: 4
    start_logits[:, 0], end_logits[:, 0] = [4.0, 3.0], [4.0, 3.0]  # null: min(8, 6) = 6, so null odds = 6 - 4 = 2
    for threshold, expected in ((0.0, ""), (1.99, ""), (2.0, row["answers"]["text"][0])):
        texts, null_odds, nbest = span_extraction.extract_answers(
            (start_logits, end_logits), windows, [row["context"]], ["q"], version_2=True,
            null_score_diff_threshold=threshold, with_nbest=True)
        assert null_odds == {"q": 2.0} and texts == {"q": expected}
    assert nbest["q"][0]["text"] == "" and nbest["q"][0]["score"] == 6.0 and nbest["q"][0]["probability"] > 0.5


def test_flat_files_other_column_names_and_lora(tiny_model, tmp_path):
    rows = demo.qa_rows(24, random.Random(3), "flat-")
    write_csv(tmp_path / "train.csv", [{"qid": r["id"], "q": r["question"], "passage": r["context"],
                                        "gold": json.dumps(r["answers"])} for r in rows])
    out = tmp_path / "out"
    run_recipe(TASK, "--model_name_or_path", tiny_model, "--train_file", tmp_path / "train.csv", "--validation_file",
               tmp_path / "train.csv", "--question_column_name", "q", "--context_column_name", "passage",
               "--answer_column_name", "gold", "--do_train", "--do_eval", "--max_steps", "2", "--lora",
               "--output_dir", out, *FAST)
    from safetensors.torch import load_file
    adapter = load_file(out / modeling.ADAPTER_DIR / "adapter_model.safetensors")
    assert any("qa_outputs" in key for key in adapter) and any("lora_A" in key for key in adapter)
    assert "qa_outputs.weight" in load_file(out / "model.safetensors")  # merged: a plain QA model
    assert len(read_json(out / "validation_predictions.json")) == 24 and "eval_f1" in read_json(out / "all_results.json")
    # The adapter folder answers as the merged model: it holds the run's settings (capitals marked) too.
    questions, contexts = [r["question"] for r in rows], [r["context"] for r in rows]
    assert (out / modeling.ADAPTER_DIR / "run_config.yaml").read_text() == (out / "run_config.yaml").read_text()
    assert "mark_question_words: false" in (out / "run_config.yaml").read_text()  # the default
    assert span_extraction.answer(out / modeling.ADAPTER_DIR, questions, contexts) == span_extraction.answer(
        out, questions, contexts)


def test_case_token_types_mark_capitalised_words_in_question_and_context():
    """--case_token_types: type 1 on every piece of a word that starts with a capital, in the question and in
    each window's slice of context (a later window's first piece too), never on punctuation or special tokens;
    the input ids are unchanged."""
    tokenizer = AutoTokenizer.from_pretrained(modeling.default_model_path())
    row = {"question": ["Who met McDonald's Kowalczykowski?"],
           "context": ["Then Kowalczykowski met anna in OSLO, with McDonald's crew. " * 4]}
    plain = span_extraction.window_encoder(tokenizer, "question", "context", None, 48, 16)(row, [0])
    marked = span_extraction.window_encoder(tokenizer, "question", "context", None, 48, 16, True)(row, [0])
    assert marked["input_ids"] == plain["input_ids"] and len(marked["input_ids"]) > 1
    capitals = {"who", "mcdonald", "ko", "then", "oslo"}  # the first pieces of the capitalised words
    for ids, types in zip(marked["input_ids"], marked["token_type_ids"]):
        pieces = tokenizer.convert_ids_to_tokens(ids)
        word_marks, mark, previous = [], 0, None
        for piece in pieces:  # a piece after [SEP] that continues a word: only capitalised words split here
            if piece.startswith("##"):
                mark = mark or int(previous == "[SEP]")
            else:
                mark = int(piece in capitals)
            word_marks.append(mark)
            previous = piece
        assert types == word_marks, list(zip(pieces, types))
    assert case_marks.capitalised("McDonald's", 3) == 1 and case_marks.capitalised("McDonald's", 8) == 0
    assert case_marks.capitalised("iPhone", 1) == 0 and case_marks.capitalised("x, Y", 1) == 0


def test_case_token_types_let_an_uncased_model_find_the_capitalised_answer(tiny_model, tmp_path):
    """The answer is the capitalised one of two words that lowercase alike ("may met May"): without marks the
    model cannot tell them apart; with --case_token_types it can, and answer() marks as training did. (Scored
    on the exact predicted text: SQuAD's EM and F1 ignore case.)"""
    rows = []
    for i, (first, second) in enumerate([("May", "may"), ("may", "May")] * 12):
        context = f"{first} met {second} ."
        rows.append({"id": str(i), "question": "who is named?", "context": context,
                     "answers": {"text": ["May"], "answer_start": [context.index("May")]}})
    write_jsonl(tmp_path / "t.jsonl", rows)
    right = {}
    for flags in (["--case_token_types", "false"], []):  # the default marks them, for this uncased tokenizer
        out = tmp_path / f"out{len(flags)}"  # out2: without, out0: with
        run_recipe(TASK, "--model_name_or_path", tiny_model, "--train_file", tmp_path / "t.jsonl", "--validation_file",
                   tmp_path / "t.jsonl", "--do_train", "--do_eval", "--learning_rate", "1e-2", "--num_train_epochs",
                   "20", "--output_dir", out, *FAST, "--per_device_train_batch_size", "8", "--seed", "0", *flags)
        right[len(flags)] = sum(text == "May" for text in read_json(out / "validation_predictions.json").values())
    assert right[0] == 24 and right[2] < 20, right
    answers = span_extraction.answer(str(out), [r["question"] for r in rows], [r["context"] for r in rows])
    assert answers == ["May"] * 24


def test_mark_question_words_adds_two_to_the_context_words_the_question_names():
    """--mark_question_words: the pieces of context words that occur in the question (any case, stop words
    aside) add 2 to their case mark (1 without case marks); question tokens, punctuation, stop words and special
    tokens are not marked; the input ids are unchanged."""
    tokenizer = AutoTokenizer.from_pretrained(modeling.default_model_path())
    row = {"question": ["Where did Kowalczykowski meet the crew?"],
           "context": ["Then KOWALCZYKOWSKI met anna in Oslo, with the crew's boat. " * 4]}
    cased = span_extraction.window_encoder(tokenizer, "question", "context", None, 48, 16, True)(row, [0])
    marked = span_extraction.window_encoder(tokenizer, "question", "context", None, 48, 16, True, True)(row, [0])
    alone = span_extraction.window_encoder(tokenizer, "question", "context", None, 48, 16, False, True)(row, [0])
    assert marked["input_ids"] == cased["input_ids"] and len(marked["input_ids"]) > 1
    named = set(tokenizer.tokenize("kowalczykowski")) | {"crew"}
    for ids, case, types, marks in zip(marked["input_ids"], cased["token_type_ids"], marked["token_type_ids"],
                                       alone["token_type_ids"]):
        pieces = tokenizer.convert_ids_to_tokens(ids)
        context = range(pieces.index("[SEP]") + 1, len(pieces) - 1)
        assert types == [c + 2 * m for c, m in zip(case, marks)], list(zip(pieces, types))
        assert {pieces[k] for k in context if marks[k]} == named & set(pieces[k] for k in context)
        assert not any(marks[k] for k in range(len(pieces)) if k not in context)
        assert "crew" in pieces[context.start:] or "ko" in pieces[context.start:]
    assert question_marks.question_words("Where was the Crew 3 times?") == {"crew", "3", "times"}


def test_mark_question_words_train_widen_the_model_and_answer_marks_the_same(tiny_model, tmp_path):
    """The answer is the context word the question names; validation uses words never trained on. With
    --mark_question_words (capitals marked too, the default here) the tiny model finds them; without (the
    default), it has no way to. The saved model has four token types and answer() marks as training did; with
    --lora the flag stops in one line."""
    words = ["apple", "zebra", "mango", "kiwi", "tiger", "lemon", "horse", "onion", "camel", "grape", "otter",
             "melon", "piano", "violin", "guitar", "drum", "river", "forest", "desert", "island"]
    rng = random.Random(3)

    def rows(pool, n, prefix):
        out = []
        for i in range(n):
            picked = rng.sample(pool, 4)
            context = " ".join(picked) + " ."
            answer = picked[rng.randrange(4)]
            out.append({"id": f"{prefix}{i}", "question": f"where is {answer} ?", "context": context,
                        "answers": {"text": [answer], "answer_start": [context.index(answer)]}})
        return out
    write_jsonl(tmp_path / "t.jsonl", rows(words[:10], 48, "t"))
    write_jsonl(tmp_path / "v.jsonl", rows(words[10:], 24, "v"))
    scores = {}
    for flags in ([], ["--mark_question_words"]):  # off by default
        out = tmp_path / f"out{len(flags)}"  # out0: without, out1: with
        run_recipe(TASK, "--model_name_or_path", tiny_model, "--train_file", tmp_path / "t.jsonl", "--validation_file",
                   tmp_path / "v.jsonl", "--do_train", "--do_eval", "--learning_rate", "1e-2", "--num_train_epochs",
                   "20", "--output_dir", out, *FAST, "--per_device_train_batch_size", "8", "--seed", "0", *flags)
        scores[len(flags)] = read_json(out / "all_results.json")["eval_exact_match"]
    assert scores[1] >= 70 and scores[0] < 40, scores  # measured: 91.7 with, 8.3 without
    assert AutoModelForQuestionAnswering.from_pretrained(out).config.type_vocab_size == 4
    assert "mark_question_words: true" in (out / "run_config.yaml").read_text()
    valid = read_jsonl(tmp_path / "v.jsonl")  # answer() marks too (without marks it would find about 2 of 24)
    answers = span_extraction.answer(str(out), [r["question"] for r in valid], [r["context"] for r in valid])
    assert sum(a == r["answers"]["text"][0] for a, r in zip(answers, valid)) >= 15, answers

    proc = run_recipe(TASK, "--model_name_or_path", tiny_model, "--train_file", tmp_path / "t.jsonl", "--do_train",
                      "--output_dir", tmp_path / "lora", "--mark_question_words", "--lora", check=False)
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 2 and "--mark_question_words needs the token type embedding to train" in last
    assert not (tmp_path / "lora").exists()


def test_held_out_questions_never_share_a_passage_with_training(tiny_model, tmp_path):
    """--validation_split_percentage holds out whole contexts by default: 8 passages of 3 questions each."""
    rows = []
    for k in range(8):
        group = demo.qa_rows(3, random.Random(k), f"p{k}-")
        context = " ".join(r["context"] for r in group)
        for i, row in enumerate(group):
            shift = sum(len(r["context"]) + 1 for r in group[:i])
            rows.append({**row, "context": context, "answers": {
                "text": row["answers"]["text"], "answer_start": [row["answers"]["answer_start"][0] + shift]}})
    write_jsonl(tmp_path / "train.jsonl", rows)
    out = tmp_path / "out"
    proc = run_recipe(TASK, "--model_name_or_path", tiny_model, "--train_file", tmp_path / "train.jsonl", "--do_train",
                      "--do_eval", "--validation_split_percentage", "25", "--max_steps", "1", "--output_dir", out, *FAST)
    assert "answer_start does not match" not in proc.stderr
    held_out = set(read_json(out / "validation_predictions.json"))
    passages = {row["id"].split("-")[0] for row in rows if row["id"] in held_out}
    assert len(passages) == 2 and held_out == {r["id"] for r in rows if r["id"].split("-")[0] in passages}
    assert read_json(out / "all_results.json")["train_samples"] == 18  # one window per training question


def test_answer_start_mismatches_are_reported_and_not_trained_on(tiny_model, tmp_path):
    rows = demo.qa_rows(20, random.Random(4), "m-")
    for row in rows[:3]:
        row["answers"]["answer_start"][0] += 1
    write_jsonl(tmp_path / "train.jsonl", rows)
    out = tmp_path / "out"
    proc = run_recipe(TASK, "--model_name_or_path", tiny_model, "--train_file", tmp_path / "train.jsonl", "--do_train",
                      "--max_steps", "1", "--output_dir", out, *FAST)
    assert "3 of 20 questions have an answer whose answer_start does not match" in proc.stderr
    assert "(first ids: m-0, m-1, m-2); dropped from training" in proc.stderr
    assert read_json(out / "all_results.json")["train_samples"] == 17  # one window per remaining question


@pytest.mark.parametrize("extra, message", [
    (["--max_seq_length", "32", "--doc_stride", "30"], "--doc_stride 30 does not fit: with --max_seq_length 32, the "
                                                       "longest question ({q} tokens, "),
    (["--max_seq_length", "8"], "--max_seq_length 8 leaves no room for context"),
    (["--answer_column_name", "gold"], "no column 'gold' (set by --answer_column_name)"),
])
def test_stride_guard_and_bad_input_fail_before_any_work(tiny_model, tmp_path, extra, message):
    rows = demo.qa_rows(4, random.Random(5), "s-")
    write_jsonl(tmp_path / "train.jsonl", rows)
    out = tmp_path / "out"
    proc = run_recipe(TASK, "--model_name_or_path", tiny_model, "--train_file", tmp_path / "train.jsonl", "--do_train",
                      "--output_dir", out, *extra, check=False)
    last = proc.stderr.strip().splitlines()[-1]
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    longest = max(len(tokenizer(r["question"], add_special_tokens=False)["input_ids"]) for r in rows)
    assert proc.returncode == 2 and last.startswith("error: ") and message.format(q=longest) in last, proc.stderr[-2000:]
    if "does not fit" in message:  # the stride it suggests is the largest that fits
        assert f"use --doc_stride {32 - longest - 3 - 1} or less" in last
    assert "windowing" not in proc.stderr and not out.exists()
