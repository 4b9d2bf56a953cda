"""HF's example scripts' command lines, files and metric API work here unchanged: every argument of run_glue,
run_classification, run_ner and run_qa (tests/fixtures/hf_example_arguments.json, written down from HF's files),
typical HF command lines end to end, columns found as HF finds them, HF's `data`-key JSON, and the metrics as
local `evaluate` modules giving the old results to the last digit."""
import importlib.util
import json
import logging
import os
import re
import subprocess
import sys

import pytest

from common import args, data, metrics
from common.errors import UserError
from conftest import FAST, OFFLINE_ENV, ROOT, read_json, run_recipe, write_csv, write_jsonl

FIXTURES = ROOT / "tests" / "fixtures"
HF = json.loads((FIXTURES / "hf_example_arguments.json").read_text())["scripts"]
CODE = "\n".join(p.read_text() for p in [*ROOT.glob("common/**/*.py"), *ROOT.glob("recipes/*/run.py")])


def recipe_arguments(recipe):
    """The recipe's DataArguments subclass, from its run.py."""
    spec = importlib.util.spec_from_file_location(f"{recipe}_run", ROOT / "recipes" / recipe / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return next(v for v in vars(module).values() if isinstance(v, type) and issubclass(v, args.DataArguments)
                and v is not args.DataArguments)


SAMPLE = {"int": "3", "float": "0.5", "str": "x"}
HF_ARGUMENTS = [(script, spec["recipe"], a) for script, spec in HF.items()
                for group in ("ModelArguments", "DataTrainingArguments") for a in spec[group]]


def test_the_fixture_lists_the_four_scripts():
    assert sorted(HF) == ["run_classification", "run_glue", "run_ner", "run_qa"]
    assert len(HF_ARGUMENTS) == 102 and all(a["type"] in ("bool", "int", "float", "str") for _, _, a in HF_ARGUMENTS)


@pytest.mark.parametrize("script,recipe,argument", HF_ARGUMENTS, ids=[f"{s}-{a['name']}" for s, _, a in HF_ARGUMENTS])
def test_every_hf_argument_parses_and_reaches_its_code_or_says_what_to_use(script, recipe, argument, tmp_path):
    name, kind = argument["name"], argument["type"]
    data_class = recipe_arguments(recipe)
    out = ["--output_dir", str(tmp_path / "out")]
    if name in args.RETIRED:
        with pytest.raises(UserError, match="pass --token"):
            args.parse(data_class, [f"--{name}", *out])
        return
    ours = args.RENAMED.get(name, name)
    forms = [([f"--{name}"], True), ([f"--{name}", "false"], False), ([f"--{name.replace('_', '-')}", "true"], True)] \
        if kind == "bool" else [([f"--{name}", SAMPLE[kind]], {"int": 3, "float": 0.5, "str": "x"}[kind])]
    for flag, expected in forms:
        cfg = args.parse(data_class, [*flag, *out])
        holder = next(part for part in (cfg.model, cfg.data) if hasattr(part, ours))
        value = getattr(holder, ours)
        assert value in (expected, [expected]), (flag, value)
    # The code it controls reads the field (its definition is `name: type = ...`, never `.name`).
    assert re.search(rf"\.{ours}\b", CODE), f"nothing reads {ours}"


def test_optional_booleans_bare_true_false_and_absent(tmp_path):
    qa = recipe_arguments("qa")
    out = ["--output_dir", str(tmp_path)]
    for flag, expected in ((["--version_2_with_negative"], True), (["--version-2-with-negative", "--do_train"], True),
                           (["--version_2_with_negative", "false"], False), (["--version_2_with_negative=True"], True),
                           ([], None)):
        assert args.parse(qa, [*flag, *out]).data.version_2_with_negative is expected, flag
    # The same for every Optional[bool] with default None, TrainingArguments' included.
    assert args.parse(qa, ["--disable_tqdm", *out]).training.disable_tqdm is True
    config = tmp_path / "c.yaml"
    config.write_text("version_2_with_negative: true\nvalidation_split_name: dev\n")
    cfg = args.parse(qa, [str(config), *out])
    assert cfg.data.version_2_with_negative is True and cfg.data.eval_split_names == ["dev"]


def test_columns_found_as_hf_finds_them_and_flags_win(tmp_path, caplog):
    from common.tasks import classification, squad, tagging
    tc, ner, qa = (recipe_arguments(r) for r in ("text_classification", "ner", "qa"))

    def found(detect, data_class, rows, *flags):
        path = write_jsonl(tmp_path / "t.jsonl", rows)
        cfg = args.parse(data_class, ["--train_file", str(path), "--output_dir", str(tmp_path / "o"), *flags])
        with caplog.at_level(logging.WARNING):
            return detect(data.load(cfg), cfg.data)
    glue = classification.detect_text_columns
    assert found(glue, tc, [{"idx": 1, "sentence1": "a", "label": 0, "sentence2": "b"}]) == ["sentence1", "sentence2"]
    assert "sentence1 + sentence2" in caplog.text and "t.jsonl" in caplog.text
    assert found(glue, tc, [{"question": "q", "label": 1, "passage": "p"}]) == ["question", "passage"]
    assert found(glue, tc, [{"review": "r", "label": 1}]) == ["review"]
    assert found(glue, tc, [{"sentence1": "a", "text": "t", "label": 1}]) == ["text"]  # this recipe's default first
    assert found(glue, tc, [{"a": "x", "b": "y", "label": 1}], "--text_column_names", "b") == ["b"]
    assert found(glue, tc, [{"a": "x", "y": 1}], "--label_column_name", "y") == ["a"]
    words = [{"words": ["Ann", "sings"], "ner": ["B-PER", "O"]}]
    assert found(tagging.detect_columns, ner, words) == ("words", "ner")
    assert found(tagging.detect_columns, ner, [{"id": 3, "tokens": ["a"], "pos_tags": ["DT"], "x": ["O"]}],
                 "--task_name", "pos") == ("tokens", "pos_tags")
    assert found(tagging.detect_columns, ner, words, "--label_column_name", "words", "--text_column_name", "ner") == \
        ("ner", "words")
    row = {"q": "Who?", "c": "Ann.", "a": {"text": ["Ann"], "answer_start": [0]}}
    assert found(squad.detect_columns, qa, [row]) == ["q", "c", "a"]
    assert found(squad.detect_columns, qa, [{**row, "question": "Who?"}]) == ["question", "c", "a"]
    assert found(squad.detect_columns, qa, [row], "--context_column_name", "q") == ["q", "q", "a"]


def test_data_and_model_flags_of_run_classification_reach_their_code(tmp_path, tiny_model):
    from common import modeling
    rows = [{"text": f"t{i}", "extra": i, "label": i % 2} for i in range(20)]
    train, test = write_jsonl(tmp_path / "train.jsonl", rows), write_jsonl(tmp_path / "test.jsonl", rows[:3])
    tc = recipe_arguments("text_classification")

    def load(*flags):
        return data.load(args.parse(tc, ["--train_file", str(train), "--test_file", str(test), "--output_dir",
                                         str(tmp_path / "o"), *flags]))
    raw = load("--shuffle_train_dataset", "--shuffle_seed", "3", "--max_train_samples", "5", "--remove_splits", "test",
               "--remove_columns", "extra")
    assert list(raw.splits) == ["train"] and raw.splits["train"].column_names == ["text", "label"]
    shuffled = [r["text"] for r in data.read_file(str(train)).shuffle(seed=3).select(range(5))]
    assert raw.splits["train"]["text"] == shuffled != [f"t{i}" for i in range(5)]
    with pytest.raises(UserError, match="--remove_columns nope: .*train.jsonl has no column 'nope'"):
        load("--remove_columns", "nope")
    with pytest.raises(UserError, match="--remove_splits validation: no split 'validation'; splits: train, test"):
        load("--remove_splits", "validation")
    # --config_name: the config comes from there, the weights from --model_name_or_path.
    cfg = args.parse(tc, ["--config_name", tiny_model, "--output_dir", str(tmp_path / "o")])
    assert modeling.load_config(cfg.model).hidden_size == 32 and cfg.model.model_name_or_path is None
    # --token reaches from_pretrained and load_dataset, and is never written to run_config.yaml.
    cfg = args.parse(tc, ["--token", "hf_secret", "--output_dir", str(tmp_path / "o")])
    assert "hf_secret" not in open(args.save_resolved(cfg, str(tmp_path))).read()


def _squad_rows(n, prefix="q"):
    rows = []
    for i in range(n):
        name = ["Ann", "Bob", "Cleo", "Dan"][i % 4]
        context = f"{name} lives in Paris. The sky is blue today."
        rows.append({"id": f"{prefix}{i}", "title": "t", "context": context, "question": "Who lives in Paris?",
                     "answers": {"text": [name], "answer_start": [0]}})
    rows[-1]["answers"] = {"text": [], "answer_start": []}  # unanswerable: v2.0
    return rows


def test_json_with_rows_under_data_and_duplicate_squad_ids(tmp_path, caplog):
    flat = tmp_path / "flat.json"
    flat.write_text(json.dumps({"version": "v2.0", "data": _squad_rows(3)}))
    ds = data.read_file(str(flat))
    assert ds.column_names == ["id", "title", "context", "question", "answers"] and ds["id"] == ["q0", "q1", "q2"]
    nested = tmp_path / "nested.json"
    qas = [{"id": "same", "question": "Who?", "answers": [{"text": "Ann", "answer_start": 0}]}] * 3
    nested.write_text(json.dumps({"data": [{"title": "t", "paragraphs": [{"context": "Ann lives.", "qas": qas}]}]}))
    with caplog.at_level(logging.WARNING):
        assert data.read_file(str(nested))["id"] == ["same", "same#2", "same#3"]
    assert "2 questions repeat an id used before (first: same)" in caplog.text
    flat.write_text(json.dumps({"data": [{**_squad_rows(1)[0], "id": i} for i in (7, 8, 7)]}))
    assert data.read_file(str(flat))["id"] == ["7", "8", "7#2"]


def test_metric_modules_give_the_old_results_to_the_last_digit():
    """tests/fixtures/metrics_golden.json: the metric functions of commit 2cf541d on fixed inputs (its script)."""
    sys.path.insert(0, str(FIXTURES))
    import metrics_golden
    golden = json.loads((FIXTURES / "metrics_golden.json").read_text())
    assert metrics_golden.outputs(golden["inputs"]) == golden["outputs"]
    import evaluate
    accuracy = evaluate.load(os.path.join(metrics.MODULES, "classification"))  # the users' call
    case = golden["inputs"]["classification"][0]
    assert accuracy.compute(predictions=case["pred"], references=case["gold"], num_labels=case["n"]) == \
        golden["outputs"]["classification"][0]


def test_metric_modules_load_offline_from_a_copied_recipe(tmp_path):
    """evaluate copies a module into HF_MODULES_CACHE and imports it from there: from a copy of a recipe (its own
    common/), in a fresh process with an empty cache, with the squad_v2-style inputs."""
    subprocess.run([sys.executable, "-m", "common.tools.copy_recipe", "qa", str(tmp_path / "my_qa")], cwd=ROOT,
                   env=OFFLINE_ENV, check=True, capture_output=True)
    code = ("import evaluate, json; m = evaluate.load('common/metric_modules/squad'); print(json.dumps(m.compute("
            "predictions=[{'id': '1', 'prediction_text': 'Ann', 'no_answer_probability': -1.0},"
            " {'id': '2', 'prediction_text': '', 'no_answer_probability': 2.0}],"
            " references=[{'id': '1', 'answers': {'text': ['Ann'], 'answer_start': [0]}},"
            " {'id': '2', 'answers': {'text': [], 'answer_start': []}}])))")
    cache = tmp_path / "modules"
    env = {**OFFLINE_ENV, "HF_MODULES_CACHE": str(cache)}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path / "my_qa", env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["exact_match"] == 100.0 and result["HasAns_total"] == 1 and result["NoAns_total"] == 1
    assert list(cache.glob("evaluate_modules/metrics/squad/*/squad.py"))


SHARE_RIGHT = """import datasets
import evaluate


class ShareRight(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(description="", citation="", features=datasets.Features(
            {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}))

    def _compute(self, predictions, references):
        return {"share_right": sum(p == r for p, r in zip(predictions, references)) / len(references)}
"""
def test_glue_task_name_offline_says_what_to_use_instead(tmp_path):
    proc = run_recipe("text_classification", "--task_name", "MRPC", "--do_train", "--output_dir", tmp_path / "o",
                      check=False)
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 2 and "could not load Hub dataset --dataset_name nyu-mll/glue" in last
    assert last.endswith("without the Hub, pass local files with --train_file/--validation_file")
    proc = run_recipe("text_classification", "--task_name", "imdb", "--output_dir", tmp_path / "o", check=False)
    assert "--task_name imdb: a GLUE task (cola, mnli" in proc.stderr and not (tmp_path / "o").exists()


HF_LINE = ["--do_train", "--do_eval", "--max_seq_length", "128", "--per_device_train_batch_size", "8",
           "--num_train_epochs", "1", "--overwrite_output_dir", *FAST]


def test_run_glue_command_line_with_columns_found(tiny_model, tmp_path):
    rows = [{"sentence1": f"the cat sat on mat {i}", "sentence2": ["so it did", "no it did not"][i % 2], "label": i % 2,
             "idx": i} for i in range(24)]
    train, dev = write_csv(tmp_path / "train.csv", rows), write_csv(tmp_path / "dev.csv", rows[:8])
    out = tmp_path / "out"
    proc = run_recipe("text_classification", "--model_name_or_path", tiny_model, "--train_file", train,
                      "--validation_file", dev, "--output_dir", out, *HF_LINE, "--pad_to_max_length", "--overwrite_cache")
    assert "text column(s) sentence1 + sentence2, label column 'label'" in proc.stderr
    assert "eval_accuracy" in read_json(out / "all_results.json")
    assert "text_column_names: sentence1,sentence2" in (out / "run_config.yaml").read_text()


def test_run_classification_command_line_joins_columns_and_adds_an_evaluate_metric(tiny_model, tmp_path):
    rows = [{"title": f"t{i}", "body": ["good", "bad"][i % 2], "extra": "-", "label": ["pos", "neg"][i % 2]}
            for i in range(24)]
    train, dev = write_jsonl(tmp_path / "train.jsonl", rows), write_jsonl(tmp_path / "dev.jsonl", rows[:8])
    module = tmp_path / "share_right" / "share_right.py"  # a user's own evaluate module, in place of a Hub one
    module.parent.mkdir()
    module.write_text(SHARE_RIGHT)
    out = tmp_path / "out"
    run_recipe("text_classification", "--model_name_or_path", tiny_model, "--train_file", train, "--validation_file",
               dev, "--output_dir", out, *HF_LINE, "--text_column_names", "title,body", "--text_column_delimiter", " ",
               "--label_column_name", "label", "--remove_columns", "extra", "--shuffle_train_dataset",
               "--shuffle_seed", "7", "--do_regression", "false", "--metric_name", module.parent,
               "--ignore_mismatched_sizes", "--use_fast_tokenizer", "true")
    results = read_json(out / "all_results.json")
    assert results["eval_share_right"] == results["eval_accuracy"]
    # HF's default Hub metric loads nothing: the project's own module computes it, offline.
    offline = run_recipe("text_classification", "--model_name_or_path", tiny_model, "--train_file", train,
                         "--output_dir", tmp_path / "o2", "--do_train", "--metric_name", "accuracy", "--max_steps", "1")
    assert "--metric_name accuracy: computed by the project's own metric module, offline" in offline.stderr
    with pytest.raises(AssertionError, match="--metric_name bleu: could not load it"):  # a Hub-only metric
        run_recipe("text_classification", "--model_name_or_path", tiny_model, "--train_file", train,
                   "--output_dir", tmp_path / "o3", "--do_train", "--metric_name", "bleu", "--max_steps", "1")


def test_run_ner_command_line_with_columns_found(tiny_model, tmp_path):
    rows = [{"words": ["Ann", "lives", "in", "Rome"], "ner": ["B-PER", "O", "O", "B-LOC"]}] * 12
    train = write_jsonl(tmp_path / "train.json", rows)
    out = tmp_path / "out"
    proc = run_recipe("ner", "--model_name_or_path", tiny_model, "--train_file", train, "--validation_file", train,
                      "--output_dir", out, *HF_LINE, "--task_name", "ner", "--return_entity_level_metrics", "false",
                      "--label_all_tokens")
    assert "words in column 'words', tags in column 'ner'" in proc.stderr
    results = read_json(out / "all_results.json")
    assert "eval_f1" in results and not any(k.startswith("eval_PER_") for k in results)


def test_run_qa_command_line_on_hf_data_key_json(tiny_model, tmp_path):
    train = tmp_path / "train.json"
    train.write_text(json.dumps({"version": "v2.0", "data": _squad_rows(12)}))
    out = tmp_path / "out"
    run_recipe("qa", "--model_name_or_path", tiny_model, "--train_file", train, "--validation_file", train,
               "--output_dir", out, *HF_LINE, "--version_2_with_negative", "--doc_stride", "32",
               "--n_best_size", "5", "--max_answer_length", "10", "--null_score_diff_threshold", "0.0")
    results = read_json(out / "all_results.json")
    assert results["eval_NoAns_total"] == 1 and results["eval_HasAns_total"] == 11  # v2.0 scoring
    assert len(read_json(out / "validation_predictions.json")) == 12
