"""Bad input, recipe by recipe: each case stops with one line `error: ...` that names the file, column or flag and
what to do, exit code 2, no traceback, and nothing written in --output_dir.

The recipes' main() runs in this process (argv set, stderr captured): the same code path as the command line,
without 20 interpreter starts. Two cases also run as real subprocesses, for the exit code and stderr a user sees.
"""
import runpy
import sys

import pytest

from conftest import ROOT, run_recipe, write_csv, write_jsonl

SENTIMENT = [{"text": f"good film {i}" if i % 2 else f"bad film {i}", "label": "pos" if i % 2 else "neg"}
             for i in range(8)]
PAIRS = [{"premise": f"p {i}", "hypothesis": f"h {i}", "label": ["entailment", "neutral"][i % 2]} for i in range(8)]
SENTENCES = [{"tokens": ["Ann", "lives", "in", "Rome"], "ner_tags": ["B-PER", "O", "O", "B-LOC"]}] * 4
QUESTIONS = [{"id": f"q{i}", "question": "Where does Ann live?", "context": f"Ann lives in Rome. Item {i}.",
              "answers": {"text": ["Rome"], "answer_start": [13]}} for i in range(4)]


def _files(tmp_path):
    """Good files of each kind, which the cases then break one at a time."""
    write_csv(tmp_path / "train.csv", SENTIMENT)
    write_jsonl(tmp_path / "pairs.jsonl", PAIRS)
    write_jsonl(tmp_path / "ner.jsonl", SENTENCES)
    write_jsonl(tmp_path / "qa.jsonl", QUESTIONS)


def _write(tmp_path, name, content):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, list):
        write_jsonl(path, content) if name.endswith(".jsonl") else write_csv(path, content)
    else:
        path.write_text(content)
    return path


# (case id, recipe, files to write {name: content}, arguments ({tmp} = the test's directory), expected in the line)
CASES = [
    ("missing-file", "text_classification", {}, ["--train_file", "{tmp}/nope.csv"],
     "--train_file {tmp}/nope.csv: file not found"),
    ("wrong-extension", "text_classification", {"train.xlsx": "x"}, ["--train_file", "{tmp}/train.xlsx"],
     "unsupported extension '.xlsx'; use one of .csv, .tsv, .json, .jsonl, .parquet"),
    ("empty-file", "text_classification", {"e.csv": ""}, ["--train_file", "{tmp}/e.csv"],
     "--train_file {tmp}/e.csv: file is empty"),
    ("header-only", "text_classification", {"h.csv": "text,label\n"}, ["--train_file", "{tmp}/h.csv"],
     "--train_file {tmp}/h.csv: file has no rows"),
    ("not-utf8", "text_classification", {"l.csv": "text,label\ncaf\xe9 cr\xe8me,pos\n".encode("latin-1")},
     ["--train_file", "{tmp}/l.csv"], "--train_file {tmp}/l.csv: not UTF-8 text (byte 14); re-save the file"),
    ("missing-column", "text_classification", {}, ["--train_file", "{tmp}/train.csv", "--text_column_names", "review"],
     "{tmp}/train.csv: no column 'review' (set by --text_column_names); columns there: text, label"),
    ("text-of-wrong-type", "text_classification", {"n.csv": [{"text": 3, "label": "a"}, {"text": 4, "label": "b"}]},
     ["--train_file", "{tmp}/n.csv"], "{tmp}/n.csv: data row 1 of column 'text' is 3, not text"),
    ("label-of-wrong-type", "text_classification",
     {"d.jsonl": [{"text": "a", "label": {"x": 1}}, {"text": "b", "label": {"x": 2}}]}, ["--train_file", "{tmp}/d.jsonl"],
     "{tmp}/d.jsonl: column 'label' holds dict values such as {{'x': 1}}; labels must be strings or numbers"),
    ("unseen-label-strict", "text_classification", {"v.csv": [{"text": "meh", "label": "neutral"}]},
     ["--train_file", "{tmp}/train.csv", "--validation_file", "{tmp}/v.csv", "--do_eval", "--strict_labels"],
     "{tmp}/v.csv: label(s) 'neutral' never occur in the train split (--strict_labels)"),
    ("label-not-in-label-list", "text_classification", {},
     ["--train_file", "{tmp}/train.csv", "--label_list", "pos", "neutral"], "'neg' in column 'label' are not in --label_list"),
    ("zero-sample-limit", "text_classification", {}, ["--train_file", "{tmp}/train.csv", "--max_train_samples", "0"],
     "--max_train_samples must be a positive number of examples, got 0"),
    ("negative-sample-limit", "text_classification", {}, ["--train_file", "{tmp}/train.csv", "--validation_file",
                                                          "{tmp}/train.csv", "--max_eval_samples", "-3"],
     "--max_eval_samples must be a positive number of examples, got -3"),
    ("config-unknown-key", "text_classification", {"c.yaml": "train_file: x.csv\nlearning_rat: 0.1\n"},
     ["{tmp}/c.yaml"], "{tmp}/c.yaml: unknown key 'learning_rat' (did you mean 'learning_rate'?)"),
    ("config-not-yaml", "text_classification", {"c.yaml": "train_file: [x.csv\n"}, ["{tmp}/c.yaml"],
     "config file {tmp}/c.yaml is not valid YAML"),
    ("output-dir-not-writable", "text_classification", {"blocker": "a file"},
     ["--train_file", "{tmp}/train.csv", "--output_dir", "{tmp}/blocker/out"],
     "--output_dir {tmp}/blocker/out: {tmp}/blocker is a file, not a directory; choose another directory"),
    ("resume-path-missing", "text_classification", {},
     ["--train_file", "{tmp}/train.csv", "--resume_from_checkpoint", "{tmp}/checkpoint-9"],
     "--resume_from_checkpoint {tmp}/checkpoint-9: no such directory"),
    ("predict-without-test-file", "text_classification", {}, ["--train_file", "{tmp}/train.csv", "--do_predict"],
     "--do_predict needs a test split: pass --test_file"),
    ("nli-missing-hypothesis", "nli", {}, ["--train_file", "{tmp}/pairs.jsonl", "--hypothesis_column_name", "claim"],
     "{tmp}/pairs.jsonl: no column 'claim' (set by --hypothesis_column_name)"),
    ("nli-unseen-label-strict", "nli", {"dev.jsonl": [{"premise": "a", "hypothesis": "b", "label": "contradiction"}]},
     ["--train_file", "{tmp}/pairs.jsonl", "--validation_file", "{tmp}/dev.jsonl", "--do_eval", "--strict_labels"],
     "{tmp}/dev.jsonl: label(s) 'contradiction' never occur in the train split (--strict_labels)"),
    ("ner-ragged-tags", "ner", {"r.jsonl": [{"tokens": ["a", "b", "c"], "ner_tags": ["O", "O"]}]},
     ["--train_file", "{tmp}/r.jsonl"], "{tmp}/r.jsonl: row 1 has 3 words in 'tokens'"),
    ("ner-tokens-not-a-list", "ner", {"s.jsonl": [{"tokens": "Ann lives in Rome", "ner_tags": ["B-PER"]}]},
     ["--train_file", "{tmp}/s.jsonl"], "{tmp}/s.jsonl: row 1: column 'tokens' must be a list"),
    ("ner-bad-tag", "ner", {"t.jsonl": [{"tokens": ["Ann"], "ner_tags": ["PERSON"]}]}, ["--train_file", "{tmp}/t.jsonl"],
     "{tmp}/t.jsonl: tag 'PERSON' in column 'ner_tags' is neither O nor"),
    ("ner-unseen-tag-strict", "ner", {"dev.jsonl": [{"tokens": ["Acme"], "ner_tags": ["B-ORG"]}]},
     ["--train_file", "{tmp}/ner.jsonl", "--validation_file", "{tmp}/dev.jsonl", "--do_eval", "--strict_labels"],
     "{tmp}/dev.jsonl: tag(s) 'B-ORG' never occur in the train split (--strict_labels)"),
    ("ner-conll-ragged-fields", "ner", {"x.conll": "Ann NNP B-PER\nlives O\n"}, ["--train_file", "{tmp}/x.conll"],
     "--train_file {tmp}/x.conll: line 2 has 2 fields, the lines before it 3"),
    ("ner-stride-too-large", "ner", {}, ["--train_file", "{tmp}/ner.jsonl", "--max_seq_length", "16", "--stride", "20"],
     "--stride 20: must be at least 0 and below the 14 word pieces a window of"),
    ("validation-percentage-out-of-range", "text_classification", {},
     ["--train_file", "{tmp}/train.csv", "--validation_split_percentage", "150"],
     "--validation_split_percentage must be between 1 and 99, got 150"),
    ("qa-answer-not-in-context", "qa",
     {"a.jsonl": [{**q, "answers": {"text": ["Paris"], "answer_start": [13]}} for q in QUESTIONS]},
     ["--train_file", "{tmp}/a.jsonl"], "{tmp}/a.jsonl: no answer's answer_start matches its text in 'context'"),
    ("qa-answers-malformed", "qa", {"m.jsonl": [{**QUESTIONS[0], "answers": 42}]}, ["--train_file", "{tmp}/m.jsonl"],
     "{tmp}/m.jsonl: row 1, column 'answers' (--answer_column_name)"),
    ("qa-duplicate-ids", "qa", {"i.jsonl": [QUESTIONS[0], QUESTIONS[0]]}, ["--train_file", "{tmp}/i.jsonl"],
     "{tmp}/i.jsonl: id 'q0' occurs more than once"),
    ("qa-stride-too-large", "qa", {}, ["--train_file", "{tmp}/qa.jsonl", "--max_seq_length", "32", "--doc_stride", "30"],
     "--doc_stride 30 does not fit"),
]


@pytest.fixture(scope="module")
def recipes():
    """Each recipe's main(), loaded once."""
    return {task: runpy.run_path(str(ROOT / "recipes" / task / "run.py"))["main"]
            for task in ("text_classification", "nli", "ner", "qa")}


@pytest.mark.parametrize("case, task, files, argv, expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_naming_the_culprit(recipes, tiny_model, tmp_path, capsys, monkeypatch,
                                                   case, task, files, argv, expected):
    _files(tmp_path)
    for name, content in files.items():
        _write(tmp_path, name, content)
    out = tmp_path / "out"
    argv = [a.format(tmp=tmp_path) for a in argv]
    if "--output_dir" not in argv:
        argv += ["--output_dir", str(out)]
    if not argv[0].endswith(".yaml"):
        argv += ["--do_train"]
    monkeypatch.setattr(sys, "argv", ["run.py", *argv, "--model_name_or_path", tiny_model, "--report_to", "none"])
    with pytest.raises(SystemExit) as exit_info:
        recipes[task]()
    stderr = capsys.readouterr().err
    last = stderr.strip().splitlines()[-1]
    assert exit_info.value.code == 2, stderr
    assert last.startswith("error: ") and expected.format(tmp=tmp_path) in last, last
    assert "Traceback" not in stderr
    assert not out.exists() or not any(p.is_file() for p in out.rglob("*"))


def test_a_user_sees_one_line_and_exit_code_2(tiny_model, tmp_path):
    _files(tmp_path)
    out = tmp_path / "out"
    proc = run_recipe("text_classification", "--train_file", tmp_path / "train.csv", "--label_column_name",
                      "sentiment", "--do_train", "--output_dir", out, "--model_name_or_path", tiny_model, check=False)
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 2 and last == (f"error: {tmp_path}/train.csv: no column 'sentiment' (set by "
                                             f"--label_column_name); columns there: text, label"), proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and not out.exists()
