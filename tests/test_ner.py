"""The NER recipe: CoNLL files, tag schemes, sub-token alignment, windows, entity-level scores, end to end."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from datasets import ClassLabel, Dataset, DatasetDict, Features, List, Value

from common import data, modeling
from common.data import ConllColumns, RawData
from common.errors import UserError
from common.tasks import tagging
from common.techniques import case_marks
from conftest import FAST, OFFLINE_ENV, ROOT, SHARED_DATA, read_json, read_jsonl, run_recipe, write_jsonl

TASK = "ner"
CONLL_IOB1 = """-DOCSTART- -X- -X- O

EU NNP I-NP I-ORG
rejects VBZ I-VP O
German JJ I-NP I-MISC
call NN I-NP O
.  . O O


Peter NNP I-NP I-PER
Blackburn NNP I-NP I-PER
-DOCSTART- -X- -X- O
BRUSSELS NNP I-NP I-LOC
1996-08-22 CD I-NP O

Smith NNP I-NP I-PER
Jones NNP I-NP B-PER
"""


def _raw(**splits):
    return RawData(DatasetDict(splits), {name: f"{name}.jsonl" for name in splits})


def test_conll_file_documents_blank_lines_and_iob1_to_iob2(tmp_path):
    path = tmp_path / "eng.train"
    path.with_suffix(".conll").write_text(CONLL_IOB1)
    ds = data.read_file(str(path.with_suffix(".conll")), "train_file", ConllColumns("tokens", "ner_tags", 3))
    # -DOCSTART- lines and repeated blank lines end sentences without being one; a DOCSTART with no blank
    # line before it still splits "Peter Blackburn" from "BRUSSELS".
    assert ds["tokens"] == [["EU", "rejects", "German", "call", "."], ["Peter", "Blackburn"],
                            ["BRUSSELS", "1996-08-22"], ["Smith", "Jones"]]
    assert ds[data.DOCUMENT] == [0, 0, 1, 1]  # for --document_context, which keeps windows in one document
    raw = _raw(train=ds)
    tags = tagging.TagSet.from_splits(raw, "ner_tags")
    assert tags.scheme == "IOB2"
    assert raw.splits["train"]["ner_tags"] == [["B-ORG", "O", "B-MISC", "O", "O"], ["B-PER", "I-PER"],
                                               ["B-LOC", "O"], ["B-PER", "B-PER"]]
    assert tags.names == ["O", "B-LOC", "B-MISC", "B-ORG", "B-PER", "I-PER"]
    with pytest.raises(UserError, match=r"--conll_tag_index 4: .* has 4 fields per line"):
        data.read_file(str(path.with_suffix(".conll")), "train_file", ConllColumns("tokens", "ner_tags", 4))
    with pytest.raises(UserError, match="unsupported extension '.txt'"):  # only recipes that ask read CoNLL
        data.read_file(str(tmp_path / "x.txt"), "train_file")


def test_iob2_with_an_entity_opened_by_i_is_repaired_and_counted(caplog):
    raw = _raw(train=Dataset.from_dict({"t": [["a", "b", "c"]] * 3,
                                        "g": [["B-PER", "O", "I-LOC"], ["O", "B-LOC", "I-LOC"], ["I-PER", "O", "O"]]}))
    with caplog.at_level("WARNING"):
        tags = tagging.TagSet.from_splits(raw, "g")
    assert "train.jsonl: 2 tags I-X follow O or another type (invalid in IOB2)" in caplog.text
    assert raw.splits["train"]["g"][0] == ["B-PER", "O", "B-LOC"] and tags.scheme == "IOB2"
    bioes = _raw(train=Dataset.from_dict({"t": [["a", "b", "c"]], "g": [["B-PER", "E-PER", "S-LOC"]]}))
    assert tagging.TagSet.from_splits(bioes, "g").scheme == "BIOES"


def test_hub_class_label_tags_keep_their_names_and_order():
    names = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    features = Features({"tokens": List(Value("string")), "ner_tags": List(ClassLabel(names=names))})
    raw = _raw(train=Dataset.from_dict({"tokens": [["Ann", "Lee", "in", "Oslo"]], "ner_tags": [[1, 2, 0, 3]]},
                                       features=features))
    tags = tagging.TagSet.from_splits(raw, "ner_tags")
    assert tags.names == names and raw.splits["train"]["ner_tags"] == [["B-PER", "I-PER", "O", "B-LOC"]]
    ints = _raw(train=Dataset.from_dict({"tokens": [["Ann", "x"]], "ner_tags": [[1, 0]]}))
    with pytest.raises(UserError, match="integer tags without names; pass --label_list"):
        tagging.TagSet.from_splits(ints, "ner_tags")
    assert tagging.TagSet.from_splits(ints, "ner_tags", label_list=["O", "B-PER"]).names == ["O", "B-PER"]


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(modeling.default_model_path())


def _encode(tokenizer, words, tags, max_length=128, stride=0, label_all_tokens=False, extra_tags=()):
    tag_set = tagging.TagSet(sorted({*tags, *extra_tags, "O"}, key=tagging._tag_order), "IOB2")
    encode = tagging.window_encoder(tokenizer, tag_set, "w", "t", max_length, stride, label_all_tokens)
    return tag_set, Dataset.from_dict(encode({"w": [words], "t": [tags]}, [0]))


def test_a_word_of_several_sub_tokens_is_labelled_on_its_first_piece(tokenizer):
    words, tags = ["Kowalczykowski", "visited", "Johannesburg"], ["B-PER", "O", "B-LOC"]
    tag_set, windows = _encode(tokenizer, words, tags)
    pieces = tokenizer.convert_ids_to_tokens(windows[0]["input_ids"])
    first_word = [i for i, word in enumerate(windows[0]["word_index"]) if word == 0]
    assert len([p for p in pieces if p.startswith("##")]) >= 2  # the names really split
    labels = windows[0]["labels"]
    b_per, b_loc = tag_set.label2id["B-PER"], tag_set.label2id["B-LOC"]
    assert [lab for lab in labels if lab != -100] == [b_per, tag_set.label2id["O"], b_loc]
    assert labels[first_word[0]] == b_per and labels[0] == labels[-1] == -100
    continuation = first_word[0] + 1
    assert pieces[continuation].startswith("##") and labels[continuation] == -100
    # --label_all_tokens: the later pieces take the I- form of the tag (here the set has I-PER).
    tag_set, windows = _encode(tokenizer, words, tags, label_all_tokens=True, extra_tags=["I-PER"])
    labels = windows[0]["labels"]
    assert labels[continuation] == tag_set.label2id["I-PER"] and labels[first_word[0]] == tag_set.label2id["B-PER"]


def test_a_sentence_longer_than_the_window_keeps_every_word(tokenizer):
    words = [f"Zurichberg{i}" if i % 5 == 0 else "and" for i in range(60)]
    tags = ["B-LOC" if i % 5 == 0 else "O" for i in range(60)]
    tag_set, windows = _encode(tokenizer, words, tags, max_length=24, stride=6)
    assert len(windows) > 3 and max(len(ids) for ids in windows["input_ids"]) <= 24
    # Feed the gold label of each word start back as the "prediction": the merge must recover all 60 words.
    predictions = [[max(lab, 0) for lab in labels] for labels in windows["labels"]]
    width = max(map(len, predictions))
    predictions = [p + [0] * (width - len(p)) for p in predictions]
    merged = tagging.words_from_windows(predictions, windows)
    assert [[tag_set.names[i] for i in merged[0]]] == [tags]
    assert tagging.gold_from_windows(windows) == [[tag_set.label2id[t] for t in tags]]
    with pytest.raises(RuntimeError, match="window predictions for"):  # e.g. gathered twice under DDP
        tagging.words_from_windows(predictions * 2, windows)


def test_document_context_packs_neighbouring_sentences_and_gives_each_word_back_once(tokenizer):
    """--document_context: the batch's sentences form one stream cut into windows, so a window holds several
    sentences; every word of every sentence (an empty one too) comes back once, from the gold fed back."""
    sentences = [[f"Kowalski{i}", "met", "Anna", "in", "Oslo"][: 1 + i % 5] for i in range(12)] + [[]]
    tags = [["B-PER", "O", "B-PER", "O", "B-LOC"][: len(words)] for words in sentences]
    tag_set = tagging.TagSet(["O", "B-LOC", "B-PER"], "IOB2")
    encode = tagging.window_encoder(tokenizer, tag_set, "w", "t", 24, 6, document_context=True)
    windows = Dataset.from_dict(encode({"w": sentences, "t": tags}, list(range(13))))
    assert 1 < len(windows) < len(sentences) and max(map(len, windows["input_ids"])) <= 24
    assert max(len({e for e in examples if e >= 0}) for examples in windows["example_index"]) >= 3
    reported = [row for rows in windows["sentences"] for row in rows]
    assert sorted(reported) == list(range(13))  # each row's size and gold once, the empty one included
    predictions = [[max(lab, 0) for lab in labels] + [0] * (24 - len(labels)) for labels in windows["labels"]]
    merged = tagging.words_from_windows(predictions, windows)
    assert [[tag_set.names[i] for i in sentence] for sentence in merged] == tags
    assert tagging.gold_from_windows(windows) == [[tag_set.label2id[t] for t in sentence] for sentence in tags]
    # With a document column (a CoNLL file's -DOCSTART- lines), no window spans two documents.
    documents = [i // 5 for i in range(13)]
    windows = encode({"w": sentences, "t": tags, data.DOCUMENT: documents}, list(range(13)))
    assert all(len({documents[e] for e in examples if e >= 0}) == 1 for examples in windows["example_index"])
    assert sorted(row for rows in windows["sentences"] for row in rows) == list(range(13))
    plain = tagging.window_encoder(tokenizer, tag_set, "w", "t", 24, 6)({"w": sentences, "t": tags}, list(range(13)))
    assert len(plain["input_ids"]) == 13  # without context: one window per (short) sentence


def test_case_token_types_mark_every_piece_of_a_capitalised_word(tokenizer):
    """--case_token_types: the uncased tokenizer lowercases, so a capital shows only as token type 1, on every
    piece of the word (a name split in pieces too) and on no special token."""
    tag_set = tagging.TagSet(["O", "B-PER"], "IOB2")
    words = ["Kowalczykowski", "met", "anna", "in", "OSLO"]
    batch = {"w": [words, ["Kowalczykowski"]], "t": [["B-PER", "O", "B-PER", "O", "O"], ["B-PER"]]}
    marked = tagging.window_encoder(tokenizer, tag_set, "w", "t", 128, 0, case_token_types=True)(batch, [0, 1])
    plain = tagging.window_encoder(tokenizer, tag_set, "w", "t", 128, 0)(batch, [0, 1])
    assert marked["input_ids"] == plain["input_ids"] and not any(map(any, plain["token_type_ids"]))
    encoding = tokenizer(words, is_split_into_words=True)
    expected = [0 if word is None else int(words[word][0].isupper()) for word in encoding.word_ids()]
    assert marked["token_type_ids"][0] == expected and sum(expected) > 2  # the surname's pieces, OSLO's
    assert tokenizer.convert_ids_to_tokens(marked["input_ids"][0])[2].startswith("##")
    assert marked["token_type_ids"][1][1:-1] == [1] * (len(marked["input_ids"][1]) - 2)
    from transformers import BertConfig
    assert case_marks.resolve(tokenizer, BertConfig()) is True  # default: on, since this tokenizer lowercases
    assert case_marks.resolve(tokenizer, BertConfig(type_vocab_size=1)) is False  # e.g. RoBERTa's one type
    assert case_marks.resolve(tokenizer, BertConfig(), wanted=False) is False
    with pytest.raises(UserError, match="--case_token_types needs a model with two token types"):
        case_marks.resolve(tokenizer, BertConfig(type_vocab_size=1), wanted=True)


def test_case_dropout_unmarks_training_windows_only():
    """--case_dropout: in training, the chosen windows see all-zero token types (the model's output equals
    that of unmarked input); in evaluation the marks pass through; 0 leaves the model as it was."""
    import torch
    from transformers import BertConfig, BertForTokenClassification
    torch.manual_seed(0)
    config = BertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model = BertForTokenClassification(config)
    ids, types = torch.randint(5, 100, (4, 6)), torch.ones(4, 6, dtype=torch.long)
    marked, unmarked = (model(input_ids=ids, token_type_ids=t).logits for t in (types, 0 * types))
    assert not torch.allclose(marked, unmarked)
    case_marks.unmark_in_training(model, 0.999)
    torch.testing.assert_close(model.train()(input_ids=ids, token_type_ids=types).logits, unmarked)
    torch.testing.assert_close(model.eval()(input_ids=ids, token_type_ids=types).logits, marked)
    halves = case_marks.unmark_in_training(BertForTokenClassification(config), 0.5).train()
    seen = []
    halves.bert.embeddings.register_forward_pre_hook(lambda m, a, k: seen.append(k["token_type_ids"][:, 0]),
                                                     with_kwargs=True)
    halves(input_ids=torch.randint(5, 100, (400, 3)), token_type_ids=torch.ones(400, 3, dtype=torch.long))
    assert 140 < int(seen[0].sum()) < 260  # about half the windows keep their marks
    with pytest.raises(UserError, match="--case_dropout 1.0"):
        case_marks.resolve(None, config, wanted=False, dropout=1.0)


def test_case_token_types_let_an_uncased_model_tell_may_from_may(tiny_model, tmp_path):
    """Rows that differ only in case ("may" the verb, "May" the name): lowercased, the model cannot tell them
    apart; with --case_token_types it can, and common.tools.predict marks the case the same way."""
    rows = [{"tokens": ["we", "saw", word, "."], "ner_tags": ["O", "O", tag, "O"]}
            for word, tag in [("may", "O"), ("May", "B-PER")] * 16]
    write_jsonl(tmp_path / "t.jsonl", rows)
    scores = {}
    for flags in (["--case_token_types", "false"], ["--case_token_types"]):
        out = tmp_path / f"out{len(flags)}"  # out2: without, out1: with
        run_recipe(TASK, "--model_name_or_path", tiny_model, "--train_file", tmp_path / "t.jsonl", "--test_file",
                   tmp_path / "t.jsonl", "--do_train", "--do_predict", "--learning_rate", "1e-2", "--num_train_epochs",
                   "15", "--document_context", "false", "--output_dir", out, *FAST, "--per_device_train_batch_size",
                   "8", "--seed", "0", *flags)
        scores[len(flags)] = read_json(out / "all_results.json")["predict_f1"]
    assert scores[1] == 1.0 and scores[2] < 0.8, scores
    assert "python -m common.tools.predict" in (out / "README.md").read_text()  # the card: not pipeline()
    proc = subprocess.run([sys.executable, "-m", "common.tools.predict", str(out), "--input", str(tmp_path / "t.jsonl"),
                           "--output", str(tmp_path / "again.jsonl")], cwd=ROOT, env=OFFLINE_ENV, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert [r["predicted_tags"] for r in read_jsonl(tmp_path / "again.jsonl")] == [r["ner_tags"] for r in rows]


def test_ner_holds_out_runs_of_consecutive_sentences():
    """A held-out part and the folds take runs of consecutive rows: a document's sentences (and names) stay
    on one side, and a held-out sentence keeps its neighbours for --document_context."""
    raw = _raw(train=Dataset.from_dict({"row": list(range(1000))}))
    kept, held = data._hold_out(raw, 20, data.CONSECUTIVE_ROWS, "held out", seed=3)
    held_rows = held["row"]
    assert len(held_rows) == 200 and len(kept) == 800 and held_rows == sorted(held_rows)
    run = data.run_length(1000)
    assert run == 50 and {r // run for r in held_rows}.isdisjoint(r // run for r in kept["row"])
    assert held_rows != list(range(800, 1000))  # runs drawn at random, not the file's tail
    folds = data._folds(raw, 3, data.CONSECUTIVE_ROWS, "folds", seed=3)
    assert sorted(r for fold in folds for r in fold) == list(range(1000))
    assert all(len({r // run for r in fold} & {r // run for r in other}) == 0
               for fold in folds for other in folds if fold is not other)


def test_entity_scores_on_a_hand_checked_example():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O", "B-LOC", "I-LOC"]]
    predicted = [["B-PER", "I-PER", "O", "B-ORG"], ["I-ORG", "O", "B-LOC", "I-LOC"]]
    # Gold: PER(0-2), LOC(3), ORG(0), LOC(2-4). Predicted: PER right, ORG where LOC is, and in strict IOB2 an
    # entity opened by I-ORG does not count. So 2 of 3 predicted entities right, 2 of 4 gold found.
    scores = tagging.entity_scores(gold, predicted)
    assert scores["precision"] == pytest.approx(2 / 3) and scores["recall"] == pytest.approx(2 / 4)
    assert scores["f1"] == pytest.approx(2 * (2 / 3) * (1 / 2) / (2 / 3 + 1 / 2))
    assert scores["accuracy"] == pytest.approx(6 / 8)  # per word: the LOC/ORG word and the I-ORG word are wrong
    assert scores["PER_f1"] == 1.0 and scores["ORG_precision"] == 0.0 and scores["LOC_recall"] == 0.5
    assert scores["LOC_support"] == 2.0
    assert tagging.entities(predicted[1], ["Acme", "in", "New", "York"]) == [
        {"type": "LOC", "start": 2, "end": 4, "text": "New York"}]


def _sentences(n, offset=0):
    people, places = ["Anna", "Peter Brown", "Maria"], ["Paris", "New York", "Oslo"]
    rows = []
    for i in range(offset, offset + n):
        person, place = people[i % 3].split(), places[(i // 3) % 3].split()
        rows.append({"tokens": person + ["visited"] + place + ["."],
                     "ner_tags": ["B-PER"] + ["I-PER"] * (len(person) - 1) + ["O"] + ["B-LOC"]
                     + ["I-LOC"] * (len(place) - 1) + ["O"]})
    return rows


def test_real_weights_learn_demo_ner_and_pipeline_shows_tag_names(demo_data, tmp_path):
    """Default model (all-MiniLM-L6-v2 from its package), the example config (so --document_context: windows
    of several sentences), the demo data; common.tools.predict reads the context setting back from the run."""
    from transformers import pipeline
    out = tmp_path / "out"
    run_recipe(TASK, "recipes/ner/config.yaml", "--output_dir", out, "--train_file", demo_data / "ner/train.jsonl",
               "--validation_file", demo_data / "ner/validation.jsonl", "--test_file", demo_data / "ner/test.jsonl",
               "--num_train_epochs", "3", *FAST, "--per_device_train_batch_size", "4")
    results = read_json(out / "all_results.json")
    assert results["eval_f1"] >= 0.9 and results["predict_f1"] >= 0.9, results  # templated names are easy
    assert results["predict_samples"] < 100  # windows of several sentences, not one per sentence
    assert "case_token_types: true" in (out / "run_config.yaml").read_text()  # the default, for an uncased model
    rows = read_jsonl(out / "predictions.jsonl")
    assert len(rows) == 100 and all(len(r["predicted_tags"]) == len(r["tokens"]) for r in rows)
    proc = subprocess.run([sys.executable, "-m", "common.tools.predict", str(out), "--input",
                           str(demo_data / "ner/test.jsonl"), "--output", str(tmp_path / "again.jsonl")],
                          cwd=ROOT, env=OFFLINE_ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    again = read_jsonl(tmp_path / "again.jsonl")
    agree = sum(a["predicted_tags"] == r["predicted_tags"] for a, r in zip(again, rows))
    assert len(again) == 100 and agree >= 95  # bf16 in the recipe, fp32 here: a near tie may flip
    assert {"tokens", "predicted_tags", "entities", "gold_tags", "gold_entities"} <= set(rows[0])
    correct = sum(r["entities"] == r["gold_entities"] for r in rows)
    assert correct >= 80
    conll = (out / "predictions.conll").read_text().split("\n\n")
    assert conll[0].splitlines()[0].split() == [rows[0]["tokens"][0], rows[0]["gold_tags"][0], rows[0]["predicted_tags"][0]]
    tagger = pipeline("token-classification", model=str(out), aggregation_strategy="simple")
    found = {(e["entity_group"], e["word"]) for e in tagger("Maria Garcia lives in Berlin .")}
    assert found == {("PER", "maria garcia"), ("LOC", "berlin")}, found


def test_long_sentences_are_windowed_and_merged_once_under_two_processes(tiny_model, tmp_path):
    """`accelerate launch` with 2 CPU processes (gloo): Trainer gathers window predictions from both, and the
    merge must see each window exactly once (it raises otherwise) to give every word of every sentence a tag."""
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    long = {"tokens": [f"Word{i}" for i in range(200)], "ner_tags": ["B-LOC" if i % 7 == 0 else "O" for i in range(200)]}
    write_jsonl(tmp_path / "t.jsonl", _sentences(20) + [long])
    out = tmp_path / "out"
    run_recipe(TASK, "--model_name_or_path", tiny_model, "--train_file", tmp_path / "t.jsonl", "--validation_file",
               tmp_path / "t.jsonl", "--do_train", "--do_eval", "--max_steps", "2", "--max_seq_length", "32",
               "--stride", "8", "--output_dir", out, *FAST, "--per_device_eval_batch_size", "5",
               launcher=[accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                         "--mixed_precision", "no", "--dynamo_backend", "no"])
    rows = read_jsonl(out / "validation_predictions.jsonl")
    assert len(rows) == 21 and len(rows[-1]["predicted_tags"]) == 200 == len(rows[-1]["gold_tags"])
    results = read_json(out / "all_results.json")
    assert results["eval_samples"] > 21 and results["eval_samples"] % 10  # windows; the last batch pair is ragged
    words = sum(len(r["tokens"]) for r in rows)
    hits = sum(g == p for r in rows for g, p in zip(r["gold_tags"], r["predicted_tags"]))
    assert results["eval_accuracy"] == pytest.approx(hits / words)  # scored on words, never sub-tokens


def _logits(model, tokenizer, words):
    import torch
    with torch.no_grad():
        return model.eval()(**tokenizer(words, is_split_into_words=True, return_tensors="pt")).logits


def test_lora_adapter_reloads_and_merged_model_predicts_the_same(tiny_model, tmp_path):
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer
    write_jsonl(tmp_path / "t.jsonl", _sentences(32))
    out = tmp_path / "out"
    run_recipe(TASK, "--model_name_or_path", tiny_model, "--train_file", tmp_path / "t.jsonl", "--do_train",
               "--lora", "--lora_r", "4", "--learning_rate", "1e-2", "--max_steps", "4", "--output_dir", out, *FAST)
    adapter = out / modeling.ADAPTER_DIR
    assert (adapter / "adapter_model.safetensors").exists()
    tokenizer = AutoTokenizer.from_pretrained(out)
    words = ["Peter", "Brown", "visited", "Oslo", "."]
    reloaded = _logits(modeling.load_trained(str(adapter), AutoModelForTokenClassification), tokenizer, words)
    merged_model = AutoModelForTokenClassification.from_pretrained(out)
    torch.testing.assert_close(_logits(merged_model, tokenizer, words), reloaded, atol=1e-4, rtol=1e-4)
    assert set(merged_model.config.id2label.values()) == {"O", "B-PER", "I-PER", "B-LOC", "I-LOC"}
    base = AutoModelForTokenClassification.from_pretrained(tiny_model, num_labels=5)
    assert not torch.equal(base.classifier.weight, merged_model.classifier.weight)  # the head was trained and saved


def test_freeze_encoder_trains_only_the_head(tiny_model, tmp_path):
    from safetensors.torch import load_file
    write_jsonl(tmp_path / "t.jsonl", _sentences(16))
    out = tmp_path / "out"
    run_recipe(TASK, "--model_name_or_path", tiny_model, "--train_file", tmp_path / "t.jsonl", "--do_train",
               "--freeze_encoder", "--learning_rate", "1e-2", "--max_steps", "2", "--output_dir", out, *FAST)
    before, after = load_file(os.path.join(tiny_model, "model.safetensors")), load_file(out / "model.safetensors")
    encoder_keys = [k for k in after if k.startswith("bert.")]
    assert len(encoder_keys) > 20 and all(after[k].equal(before[k.removeprefix("bert.")]) for k in encoder_keys)
    assert after["classifier.weight"].shape == (5, 32)


def test_ragged_row_is_a_one_line_error_with_its_row_number_and_leaves_no_output(tiny_model, tmp_path):
    write_jsonl(tmp_path / "t.jsonl", [{"tokens": ["a", "b"], "ner_tags": ["O", "O"]},
                                       {"tokens": ["Ann", "Lee", "x"], "ner_tags": ["B-PER", "O"]}])
    out = tmp_path / "out"
    proc = run_recipe(TASK, "--model_name_or_path", tiny_model, "--train_file", tmp_path / "t.jsonl", "--do_train",
                      "--output_dir", out, check=False)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last == (f"error: {tmp_path / 't.jsonl'}: row 2 has 3 words in 'tokens' but 2 tags in 'ner_tags'; "
                    f"each word needs exactly one tag"), proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and not out.exists()


@pytest.mark.parametrize("row, message", [
    ({"tokens": "Ann Lee", "ner_tags": ["B-PER", "I-PER"]}, "train.jsonl: row 1: column 'tokens' must be a list of words"),
    ({"tokens": ["Ann"], "ner_tags": ["PER"]}, "tag 'PER' in column 'ner_tags' is neither O nor B-/I-/E-/S-<type>"),
    ({"words": ["Ann"], "ner_tags": ["B-PER"]}, "no column 'tokens' (set by --text_column_name)"),
])
def test_other_bad_rows_are_named(row, message):
    raw = _raw(train=Dataset.from_list([row]))
    with pytest.raises(UserError) as err:
        raw.require_columns({"tokens": "text_column_name", "ner_tags": "label_column_name"})
        tagging.check_rows(raw, "tokens", "ner_tags")
        tagging.TagSet.from_splits(raw, "ner_tags")
    assert message in str(err.value)


def test_stride_must_fit_the_window(tokenizer):
    with pytest.raises(UserError, match=r"--stride 200: must be at least 0 and below the 126 word pieces"):
        _encode(tokenizer, ["a"], ["O"], max_length=128, stride=200)


CONLL = SHARED_DATA / "conll2003"


@pytest.mark.skipif(not CONLL.is_dir(), reason="../shared/data/conll2003 is not beside this clone")
def test_conll2003_files_read_as_iob2_with_the_published_counts():
    columns = ConllColumns("tokens", "ner_tags")
    sizes = {name: len(data.read_file(str(CONLL / f"{name}.txt"), "file", columns)) for name in ("train", "dev", "test")}
    assert sizes == {"train": 14041, "dev": 3250, "test": 3453}
