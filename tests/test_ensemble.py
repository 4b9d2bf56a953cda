"""python -m common.tools.ensemble: real members trained by the text-classification recipe (tiny model, a few steps)."""
import subprocess
import sys

import pytest

from common.tools import ensemble
from conftest import FAST, OFFLINE_ENV, ROOT, read_json, read_jsonl, run_recipe, write_jsonl

WORDS = ["good", "bad", "great", "awful"]


def _rows(n, offset):
    return [{"text": f"this is {WORDS[i % 4]} item {i}", "label": "pos" if i % 4 in (0, 2) else "neg"}
            for i in range(offset, offset + n)]


@pytest.fixture(scope="module")
def members(tiny_model, tmp_path_factory):
    """Two seeds of one run (validation + test predictions), and one trained with the labels in another order."""
    tmp = tmp_path_factory.mktemp("ensemble")
    for name, n, offset in (("train", 48, 0), ("dev", 16, 100), ("test", 16, 200)):
        write_jsonl(tmp / f"{name}.jsonl", _rows(n, offset))
    common = ["--model_name_or_path", tiny_model, "--train_file", tmp / "train.jsonl", "--learning_rate", "1e-3",
              "--num_train_epochs", "1", "--do_train", *FAST]
    for seed in (1, 2):
        run_recipe("text_classification", *common, "--validation_file", tmp / "dev.jsonl", "--test_file",
                   tmp / "test.jsonl", "--do_eval", "--do_predict", "--seed", seed, "--output_dir", tmp / f"seed{seed}")
    run_recipe("text_classification", *common, "--max_steps", "1", "--label_list", "pos", "neg",
               "--output_dir", tmp / "reordered")
    return tmp


def _ensemble(*argv):
    ensemble.main([str(a) for a in argv])


def test_ensemble_of_one_member_equals_that_member(members, tmp_path):
    _ensemble(members / "seed1", "--output_dir", tmp_path / "ens")
    for split, stem, results in (("validation", "validation_predictions", "eval"), ("test", "predictions", "predict")):
        member_rows = read_jsonl(members / "seed1" / f"{stem}.jsonl")
        assert read_jsonl(tmp_path / "ens" / f"{stem}.jsonl") == member_rows  # probabilities, labels, inputs
        reported = read_json(members / "seed1" / f"{results}_results.json")
        ours = read_json(tmp_path / "ens" / f"{split}_results.json")
        for metric in ("accuracy", "f1_macro", "precision_macro", "recall_macro", "f1_weighted"):
            assert ours[metric] == pytest.approx(reported[f"{results}_{metric}"]), metric
    summary = read_json(tmp_path / "ens" / "ensemble_results.json")
    assert summary["splits"]["test"]["best_member"] == "seed1"
    assert summary["splits"]["test"]["accuracy_gain_over_best_member"] == 0


def test_two_members_average_their_probabilities(members, tmp_path, capsys):
    _ensemble(members / "seed1", members / "seed2", "--output_dir", tmp_path / "ens")
    a, b = (read_jsonl(members / seed / "validation_predictions.jsonl") for seed in ("seed1", "seed2"))
    rows = read_jsonl(tmp_path / "ens" / "validation_predictions.jsonl")
    assert len(rows) == 16 and [r["id"] for r in rows] == [r["id"] for r in a]
    assert a[0]["probabilities"] != b[0]["probabilities"]  # the seeds differ, so the mean is a real average
    for row, x, y in zip(rows, a, b):
        mean = {k: (x["probabilities"][k] + y["probabilities"][k]) / 2 for k in ("neg", "pos")}
        assert row["probabilities"] == pytest.approx(mean, abs=1e-6)
        assert row["predicted_label"] == max(mean, key=mean.get) and row["label"] == x["label"]
    split = read_json(tmp_path / "ens" / "ensemble_results.json")["splits"]["validation"]
    accuracy = sum(r["predicted_label"] == r["label"] for r in rows) / len(rows)
    assert split["ensemble"]["accuracy"] == pytest.approx(accuracy)
    for seed, member_rows in (("seed1", a), ("seed2", b)):  # members scored from their files, the same way
        assert split["members"][seed]["accuracy"] == pytest.approx(
            sum(r["predicted_label"] == r["label"] for r in member_rows) / 16)
    assert split["best_member"] in ("seed1", "seed2")
    assert "ensemble" in capsys.readouterr().out  # the table


def test_test_file_mode_predicts_a_new_file_with_each_members_recipe(members, tmp_path):
    """Each member's recipe runs predict-only on the new file (no labels in it); the training files of its
    run_config.yaml are not needed."""
    test_rows = read_jsonl(members / "seed1" / "predictions.jsonl")
    write_jsonl(tmp_path / "new.jsonl", [{"text": r["input"]} for r in reversed(test_rows[:6])])
    assert (members / "seed1" / "run_config.yaml").read_text().startswith(
        "# recipe: recipes/text_classification/run.py\n")
    _ensemble(members / "seed1", "--test_file", tmp_path / "new.jsonl", "--output_dir", tmp_path / "ens")
    rows = read_jsonl(tmp_path / "ens" / "predictions.jsonl")
    assert rows == read_jsonl(tmp_path / "ens" / "members" / "seed1" / "predictions.jsonl")
    expected = {r["input"]: r for r in test_rows}
    assert [r["input"] for r in rows] == [r["text"] for r in read_jsonl(tmp_path / "new.jsonl")]
    for row in rows:  # the member's own model: the probabilities it gave these texts in its own test run
        assert row["probabilities"] == pytest.approx(expected[row["input"]]["probabilities"], abs=2e-3)
        assert "label" not in row
    assert not (tmp_path / "ens" / "test_results.json").exists()  # no gold labels, no metrics


def test_different_label_orders_are_refused_in_one_line(members, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        _ensemble(members / "seed1", members / "reordered", "--output_dir", tmp_path / "ens")
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and "\n" not in err and err.startswith("error: label sets differ")
    assert str(members / "seed1") in err and str(members / "reordered") in err and "['neg', 'pos']" in err
    assert "['pos', 'neg']" in err
    assert not (tmp_path / "ens").exists()


def test_ner_member_is_refused_in_one_line(members, tiny_model, tmp_path):
    """A token-classification output directory (as the NER recipe saves one) from the command line."""
    from transformers import AutoModelForTokenClassification
    ner = tmp_path / "ner"
    AutoModelForTokenClassification.from_pretrained(tiny_model, num_labels=3).save_pretrained(ner)
    proc = subprocess.run([sys.executable, "-m", "common.tools.ensemble", str(members / "seed1"), str(ner),
                           "--output_dir", str(tmp_path / "ens")], cwd=ROOT, env=OFFLINE_ENV, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(f"error: {ner}: a token classification (NER) model; ensembling supports")
    assert not (tmp_path / "ens").exists()


def test_training_only_settings_come_from_the_recipes_field_metadata():
    """What a member drops to predict another file is derived from the argument classes (the hand-kept
    list it replaced, plus the flags added since)."""
    before = {"train_file", "validation_file", "dataset_name", "dataset_config_name", "validation_split_percentage",
              "max_train_samples", "max_eval_samples", "max_predict_samples", "label_list", "lora",
              "reinit_top_layers", "early_stopping_patience", "average_last_epochs", "class_weights", "focal_gamma",
              "oversample", "augment", "pretrain_epochs", "validation_split_by", "classifier_pooling",
              "hpo_trials", "hpo_space", "hpo_storage", "hpo_metric", "hpo_study_name", "hpo_pruner", "hpo_timeout",
              "hpo_seed", "hpo_heartbeat_interval", "hpo_runs_per_trial", "hpo_folds", "eval_strategy",
              "save_strategy", "load_best_model_at_end", "metric_for_best_model", "greater_is_better", "report_to",
              "resume_from_checkpoint", "output_dir", "do_train", "do_eval", "do_predict", "test_file"}
    series = ensemble.recipe_training_only(str(ROOT / "recipes" / "time_series_classification" / "run.py"))
    assert series == before
    text = ensemble.recipe_training_only(str(ROOT / "recipes" / "text_classification" / "run.py"))
    assert text == before - {"pretrain_epochs"}
