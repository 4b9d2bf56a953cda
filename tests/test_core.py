"""common/: argument parsing, data loading, labels and metrics, checked in-process."""
import json

import numpy as np
import pytest
import yaml

from common import args, data, labels, metrics
from common.errors import UserError
from conftest import write_csv, write_jsonl


# --- args -------------------------------------------------------------------------------------------

def test_yaml_and_json_config_files_with_cli_overrides(tmp_path):
    settings = {"train_file": "a.csv", "learning_rate": 1e-4, "num_train_epochs": 2, "lora": True,
                "output_dir": str(tmp_path / "out"), "report_to": "none", "lr_scheduler_kwargs": {"power": 2.0}}
    for name, dump in (("c.yaml", yaml.safe_dump), ("c.json", json.dumps)):
        path = tmp_path / name
        path.write_text(dump(settings))
        cfg = args.parse(argv=[str(path), "--learning_rate", "3e-5"])
        assert cfg.data.train_file == "a.csv"
        assert cfg.model.lora is True
        assert cfg.training.num_train_epochs == 2
        assert cfg.training.learning_rate == 3e-5  # the command line wins over the file
        assert cfg.training.lr_scheduler_kwargs == {"power": 2.0}


@pytest.mark.parametrize("config, config_error, flags, flag_error", [
    ("learning_rat: 0.1", r"unknown key 'learning_rat' \(did you mean 'learning_rate'\?\)",  # closest name
     ["--lora_alhpa", "4"], r"unknown argument --lora_alhpa \(did you mean 'lora_alpha'\?\)"),
    ("num_train_epochs: three", r"invalid float value: 'three' \(from .*c.yaml or the command line\)",  # bad value
     ["--learning_rat", "1e-4"], r"unknown argument --learning_rat "),  # no abbreviations
])
def test_bad_keys_values_and_flags_are_one_line_errors(tmp_path, config, config_error, flags, flag_error):
    path = tmp_path / "c.yaml"
    path.write_text(config + "\n")
    with pytest.raises(UserError, match=config_error):
        args.parse(argv=[str(path)])
    with pytest.raises(UserError, match=flag_error):
        args.parse(argv=["--output_dir", str(tmp_path), *flags])


def test_resolved_config_is_itself_a_valid_config(tmp_path):
    cfg = args.parse(argv=["--output_dir", str(tmp_path), "--train_file", "x.csv", "--lora_r", "4",
                           "--learning_rate", "1e-3", "--warmup_steps", "0.2", "--report_to", "none"])
    saved = args.save_resolved(cfg, str(tmp_path))
    written = yaml.safe_load(open(saved))
    assert "use_cpu" not in written and "overwrite_output_dir" not in written  # machine choice, run control
    again = args.parse(argv=[saved])
    assert again.model == cfg.model and again.data == cfg.data and again.run == cfg.run
    assert again.training.learning_rate == 1e-3 and again.training.warmup_steps == 0.2


def test_bf16_on_a_cpu_only_machine_runs_on_the_cpu(tmp_path):
    cfg = args.parse(argv=["--output_dir", str(tmp_path), "--bf16", "true", "--report_to", "none"])
    assert cfg.training.bf16 and cfg.training.use_cpu
    cfg = args.parse(argv=["--output_dir", str(tmp_path), "--auto_bf16", "false", "--report_to", "none"])
    assert not cfg.training.bf16


def test_a_finished_output_dir_is_not_overwritten(tmp_path):
    (tmp_path / "all_results.json").write_text("{}")
    with pytest.raises(UserError, match="already holds a finished run.*--overwrite_output_dir"):
        args.parse(argv=["--output_dir", str(tmp_path)])
    args.parse(argv=["--output_dir", str(tmp_path), "--overwrite_output_dir"])


# --- data -------------------------------------------------------------------------------------------

def _cfg(tmp_path, *argv):
    return args.parse(argv=["--output_dir", str(tmp_path / "out"), "--report_to", "none", *argv])


def test_each_format_loads_and_tsv_keeps_quotes(tmp_path):
    rows = [{"text": 'a "quoted" word', "label": "x"}, {"text": "plain", "label": "y"}]
    write_csv(tmp_path / "t.csv", rows)
    write_jsonl(tmp_path / "t.jsonl", rows)
    (tmp_path / "t.tsv").write_text('text\tlabel\n"starts with a quote\tx\nplain\ty\n')
    for name in ("t.csv", "t.jsonl"):
        raw = data.load(_cfg(tmp_path, "--train_file", str(tmp_path / name)))
        assert raw.splits["train"]["text"] == [r["text"] for r in rows]
    raw = data.load(_cfg(tmp_path, "--train_file", str(tmp_path / "t.tsv")))
    assert raw.splits["train"]["text"] == ['"starts with a quote', "plain"]


def test_several_validation_files_become_named_splits_and_limits_apply(tmp_path):
    rows = [{"text": f"t{i}", "label": "a"} for i in range(10)]
    for name in ("train", "dev_matched", "dev_mismatched"):
        write_csv(tmp_path / f"{name}.csv", rows)
    raw = data.load(_cfg(tmp_path, "--train_file", str(tmp_path / "train.csv"), "--validation_file",
                         str(tmp_path / "dev_matched.csv"), str(tmp_path / "dev_mismatched.csv"),
                         "--max_train_samples", "4", "--max_eval_samples", "3"))
    assert list(raw.splits) == ["train", "dev_matched", "dev_mismatched"]
    assert raw.eval_names == ["dev_matched", "dev_mismatched"]
    assert [len(ds) for ds in raw.splits.values()] == [4, 3, 3]


@pytest.mark.parametrize("setup, flag, message", [
    (lambda p: None, "missing.csv", r"--train_file .*missing.csv: file not found"),
    (lambda p: (p / "d.xlsx").write_text("x"), "d.xlsx", r"unsupported extension '.xlsx'; use one of .csv"),
    (lambda p: (p / "e.csv").write_text(""), "e.csv", r"e.csv: file is empty"),
    (lambda p: (p / "h.csv").write_text("text,label\n"), "h.csv", r"h.csv: file has no rows"),
    (lambda p: (p / "l.csv").write_bytes("text,label\ncaf\xe9,a\n".encode("latin-1")), "l.csv", r"not UTF-8"),
])
def test_bad_files_give_one_line_errors(tmp_path, setup, flag, message):
    setup(tmp_path)
    with pytest.raises(UserError, match=message) as err:
        data.load(_cfg(tmp_path, "--train_file", str(tmp_path / flag)))
    assert "\n" not in str(err.value)


def test_missing_column_names_the_flag_and_the_columns_there(tmp_path):
    write_csv(tmp_path / "t.csv", [{"sentence": "x", "label": "a"}])
    raw = data.load(_cfg(tmp_path, "--train_file", str(tmp_path / "t.csv")))
    with pytest.raises(UserError, match=r"t.csv: no column 'text' \(set by --text_column_names\); "
                                        r"columns there: sentence, label"):
        raw.require_columns({"text": "text_column_names"})


def test_validation_split_percentage(tmp_path):
    write_csv(tmp_path / "t.csv", [{"text": f"x{i}", "label": "a"} for i in range(50)])
    train = ["--train_file", str(tmp_path / "t.csv")]
    raw = data.load(_cfg(tmp_path, *train, "--validation_split_percentage", "20"))
    assert len(raw.splits["train"]) == 40 and len(raw.splits["validation"]) == 10
    raw = data.load(_cfg(tmp_path, *train, "--validation_file", "", "--validation_split_percentage", "20"))
    assert raw.eval_names == ["validation"]  # "" clears a config file's validation file
    with pytest.raises(UserError, match="must be between 1 and 99, got 150"):
        data.load(_cfg(tmp_path, *train, "--validation_split_percentage", "150"))
    with pytest.raises(UserError, match="holds out part of train, but evaluation data is given"):
        data.load(_cfg(tmp_path, *train, "--validation_file", str(tmp_path / "t.csv"),
                       "--validation_split_percentage", "20"))


def test_validation_split_by_holds_out_whole_groups(tmp_path):
    rows = [{"text": f"x{i}", "label": "a", "doc": f"d{i // 5}"} for i in range(100)]  # 20 groups of 5
    write_csv(tmp_path / "t.csv", rows)
    train = ["--train_file", str(tmp_path / "t.csv"), "--validation_split_percentage", "20"]
    raw = data.load(_cfg(tmp_path, *train, "--validation_split_by", "doc"))
    kept, held = set(raw.splits["train"]["doc"]), set(raw.splits["validation"]["doc"])
    assert len(held) == 4 and not kept & held and len(kept | held) == 20
    assert "whole groups of doc" in raw.sources["validation"]
    again = data.load(_cfg(tmp_path, *train, "--validation_split_by", "doc"))
    assert set(again.splits["validation"]["doc"]) == held  # the run's seed fixes the split
    other = data.load(_cfg(tmp_path, *train, "--validation_split_by", "doc", "--seed", "7"))
    assert set(other.splits["validation"]["doc"]) != held
    randomly = data.load(_cfg(tmp_path, *train, "--validation_split_by", ""))  # '' splits rows at random
    assert set(randomly.splits["train"]["doc"]) & set(randomly.splits["validation"]["doc"])
    with pytest.raises(UserError, match=r"--validation_split_by title, but .*t.csv has no column 'title' "
                                        r"\(columns: text, label, doc\): name one with --validation_split_by"):
        data.load(_cfg(tmp_path, *train, "--validation_split_by", "title"))
    with pytest.raises(UserError, match="has 1 distinct value"):
        data.load(_cfg(tmp_path, *train, "--validation_split_by", "label"))
    with pytest.raises(UserError, match="--validation_split_by doc chooses how --validation_split_percentage"):
        data.load(_cfg(tmp_path, "--train_file", str(tmp_path / "t.csv"), "--validation_split_by", "doc"))


def test_sample_limits_must_be_positive_and_needed_splits_exist(tmp_path):
    write_csv(tmp_path / "t.csv", [{"text": "x", "label": "a"}])
    with pytest.raises(UserError, match="--max_train_samples must be a positive number"):
        data.load(_cfg(tmp_path, "--train_file", str(tmp_path / "t.csv"), "--max_train_samples", "0"))
    with pytest.raises(UserError, match="--do_eval needs evaluation data"):
        data.load(_cfg(tmp_path, "--train_file", str(tmp_path / "t.csv"), "--do_eval"))


# --- labels -----------------------------------------------------------------------------------------

def _raw(tmp_path, **splits):
    for name, rows in splits.items():
        write_jsonl(tmp_path / f"{name}.jsonl", rows)
    argv = ["--train_file", str(tmp_path / "train.jsonl")]
    if "validation" in splits:
        argv += ["--validation_file", str(tmp_path / "validation.jsonl")]
    return data.load(_cfg(tmp_path, *argv))


def test_label_set_is_the_union_of_splits_in_numeric_order(tmp_path):
    raw = _raw(tmp_path, train=[{"label": 10}, {"label": 9}], validation=[{"label": 2}])
    label_set = labels.LabelSet.from_splits(raw, "label")
    assert label_set.names == ["2", "9", "10"] and label_set.problem_type == labels.SINGLE
    assert label_set.encode(10) == 2
    with pytest.raises(UserError, match=r"label\(s\) '2' never occur in the train split \(--strict_labels\)"):
        labels.LabelSet.from_splits(raw, "label", strict=True)


def test_integer_labels_read_as_floats_keep_integer_names(tmp_path):
    """A CSV label column with blank cells is read as floats (3.0): the label is still '3', in every split."""
    (tmp_path / "train.csv").write_text("text,label\na,3\nb,\nc,1\n")
    (tmp_path / "dev.csv").write_text("text,label\nd,3\ne,1\n")
    raw = data.load(_cfg(tmp_path, "--train_file", str(tmp_path / "train.csv"),
                         "--validation_file", str(tmp_path / "dev.csv")))
    assert raw.splits["train"]["label"][0] == 3.0  # as read
    label_set = labels.LabelSet.from_splits(raw, "label")
    assert label_set.names == ["1", "3"] and label_set.encode(3.0) == label_set.encode(3) == 1


def test_label_list_fixes_order_and_rejects_others(tmp_path):
    raw = _raw(tmp_path, train=[{"label": "pos"}, {"label": "neg"}])
    assert labels.LabelSet.from_splits(raw, "label", label_list=["pos", "neg"]).label2id == {"pos": 0, "neg": 1}
    with pytest.raises(UserError, match=r"'neg' in column 'label' are not in --label_list"):
        labels.LabelSet.from_splits(raw, "label", label_list=["pos"])


def test_lists_mean_multi_label_and_fractions_mean_regression(tmp_path):
    multi = labels.LabelSet.from_splits(_raw(tmp_path, train=[{"label": ["b", "a"]}, {"label": ["c"]}]), "label")
    assert multi.problem_type == labels.MULTI and multi.encode(["c", "a"]) == [1.0, 0.0, 1.0]
    scores = labels.LabelSet.from_splits(_raw(tmp_path, train=[{"label": 0.5}, {"label": 3.0}]), "label")
    assert scores.problem_type == labels.REGRESSION and scores.num_labels == 1 and scores.encode(3) == 3.0


# --- metrics ----------------------------------------------------------------------------------------

def test_classification_metrics_match_hand_computed_values():
    gold, pred = [0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 2, 0]
    m = metrics.classification(pred, gold, 3)
    assert m["accuracy"] == pytest.approx(4 / 6)
    # class 0: p=1/2 r=1/2; class 1: p=2/3 r=1; class 2: p=1 r=1/2
    f1 = [0.5, 0.8, 2 / 3]
    assert m["f1_macro"] == pytest.approx(np.mean(f1))
    assert m["precision_macro"] == pytest.approx((0.5 + 2 / 3 + 1) / 3)
    assert m["f1_micro"] == pytest.approx(4 / 6)
    report = metrics.per_class_report(pred, gold, ["a", "b", "c"])
    assert report["b"]["recall"] == 1.0 and report["c"]["support"] == 2


def test_regression_and_multi_label_metrics():
    m = metrics.regression([1.0, 2.0, 4.0], [1.0, 2.0, 3.0])
    assert m["mse"] == pytest.approx(1 / 3) and m["rmse"] == pytest.approx((1 / 3) ** 0.5)
    assert m["spearman"] == pytest.approx(1.0) and m["pearson"] < 1.0
    m = metrics.multi_label([[1, 0], [1, 1]], [[1, 0], [0, 1]])
    assert m["subset_accuracy"] == 0.5 and m["f1_micro"] == pytest.approx(0.8)


def test_unreachable_hub_names_fail_in_one_line(tmp_path):
    """Offline (as here, and behind firewalls) a Hub dataset or model name fails clearly, naming the flag."""
    from conftest import run_recipe
    write_csv(tmp_path / "t.csv", [{"text": "x", "label": "a"}])
    for flags, message in (
            (["--dataset_name", "no-such/dataset-xyz"], "could not load Hub dataset --dataset_name no-such/dataset-xyz"),
            (["--train_file", tmp_path / "t.csv", "--model_name_or_path", "no-such/model-xyz"],
             "--model_name_or_path no-such/model-xyz: could not load it")):
        proc = run_recipe("text_classification", *flags, "--do_train", "--output_dir", tmp_path / "o", check=False)
        assert proc.returncode == 2 and message in proc.stderr.strip().splitlines()[-1], proc.stderr[-1500:]


def test_class_label_features_keep_their_names_and_ids(tmp_path):
    """Hub datasets carry ClassLabel names (as parquet files written by datasets do): those are the labels."""
    from datasets import ClassLabel, Dataset, Features, Value
    features = Features({"text": Value("string"), "label": ClassLabel(names=["neg", "pos"])})
    Dataset.from_dict({"text": ["a", "b", "c"], "label": [1, 0, -1]}, features=features).to_parquet(tmp_path / "t.parquet")
    raw = data.load(_cfg(tmp_path, "--train_file", str(tmp_path / "t.parquet")))
    label_set = labels.LabelSet.from_splits(raw, "label")
    assert label_set.names == ["neg", "pos"] and label_set.ids_given and label_set.encode(1) == 1
    assert [label_set.is_labelled(v) for v in raw.splits["train"]["label"]] == [True, True, False]


def test_batches_pad_to_their_longest_unless_pad_to_max_length(tmp_path):
    from transformers import AutoTokenizer

    from common import collators
    from common.modeling import default_model_path
    tokenizer = AutoTokenizer.from_pretrained(default_model_path())
    features = [tokenizer(text) for text in ("a short one", "a slightly longer sentence than that one")]
    longest = max(len(f["input_ids"]) for f in features)
    assert longest % 8 and longest % 16, "pick texts whose longest is no multiple of 8 or 16"
    import torch
    tensor_cores = torch.cuda.is_available()  # bf16 pads to a multiple of 8 on GPUs only: faster there, slower on CPUs
    for flags, width in (([], longest), (["--bf16", "true"], -(-longest // 8) * 8 if tensor_cores else longest),
                         (["--bf16", "true", "--pad_to_multiple_of", "8"], -(-longest // 8) * 8),
                         (["--bf16", "true", "--pad_to_multiple_of", "1"], longest),
                         (["--pad_to_multiple_of", "16"], -(-longest // 16) * 16), (["--pad_to_max_length"], 64)):
        cfg = args.parse(argv=["--output_dir", str(tmp_path), "--max_seq_length", "64", "--auto_bf16", "false", *flags])
        assert collators.dynamic_padding(tokenizer, cfg)(features)["input_ids"].shape == (2, width), flags
