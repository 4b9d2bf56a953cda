"""The NLI recipe end to end, and both recipes under a real `accelerate launch` with 2 CPU processes."""
import shutil
import sys

import pytest
from transformers import pipeline

from conftest import FAST, read_json, read_jsonl, run_recipe, write_jsonl

TASK = "nli"


def test_real_weights_report_each_evaluation_set_and_pipeline_reads_pairs(demo_data, tmp_path):
    out = tmp_path / "out"
    nli = demo_data / "nli"
    run_recipe(TASK, "recipes/nli/config.yaml", "--output_dir", out, "--train_file", nli / "train.jsonl",
               "--validation_file", nli / "dev_matched.jsonl", nli / "dev_mismatched.jsonl", "--test_file",
               nli / "test.jsonl", "--num_train_epochs", "2", "--max_train_samples", "450", *FAST)
    results = read_json(out / "all_results.json")
    assert results["eval_accuracy"] > 0.6 and results["eval_dev_mismatched_accuracy"] > 0.6, results  # chance: 1/3
    assert results["eval_samples"] == results["eval_dev_mismatched_samples"] == 150
    assert (out / "eval_dev_mismatched_results.json").exists() and (out / "dev_mismatched_predictions.jsonl").exists()
    rows = read_jsonl(out / "predictions.jsonl")
    assert set(rows[0]["input"]) == {"premise", "hypothesis"}
    assert set(rows[0]["probabilities"]) == {"entailment", "neutral", "contradiction"}
    # The saved model in pipeline() (fp32) agrees with the run's bf16 predictions where they are not near a tie.
    classify = pipeline("text-classification", model=str(out))

    def margin(row):
        top, second = sorted(row["probabilities"].values())[::-1][:2]
        return top - second
    confident = [r for r in rows if margin(r) > 0.1][:20]
    assert len(confident) >= 10
    for row in confident:
        pair = {"text": row["input"]["premise"], "text_pair": row["input"]["hypothesis"]}
        assert classify(pair)["label"] == row["predicted_label"]


def test_unlabelled_pairs_are_dropped_and_integer_labels_work(tiny_model, tmp_path):
    rows = [{"premise": f"p {i}", "hypothesis": f"h {i}", "label": [0, 1, 2, -1][i % 4]} for i in range(40)]
    write_jsonl(tmp_path / "train.jsonl", rows)
    out = tmp_path / "out"
    proc = run_recipe(TASK, "--model_name_or_path", tiny_model, "--train_file", tmp_path / "train.jsonl",
                      "--validation_file", tmp_path / "train.jsonl", "--do_train", "--do_eval",
                      "--num_train_epochs", "1", "--output_dir", out, *FAST)
    assert "dropped 10 rows without a label" in proc.stderr
    assert read_json(out / "all_results.json")["eval_samples"] == 30
    assert read_json(out / "config.json")["id2label"] == {"0": "0", "1": "1", "2": "2"}


def test_missing_hypothesis_column_names_the_flag(tiny_model, tmp_path):
    write_jsonl(tmp_path / "t.jsonl", [{"sentence1": "a", "sentence2": "b", "label": 0}])
    proc = run_recipe(TASK, "--model_name_or_path", tiny_model, "--train_file", tmp_path / "t.jsonl",
                      "--premise_column_name", "sentence1", "--do_train", "--output_dir", tmp_path / "o", check=False)
    assert proc.returncode == 2
    assert "no column 'hypothesis' (set by --hypothesis_column_name); columns there: sentence1, sentence2, label" \
        in proc.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("task, data", [("text_classification", "sentiment"), ("nli", "nli")])
def test_accelerate_launch_with_two_cpu_processes(tiny_model, demo_data, tmp_path, task, data):
    accelerate = shutil.which("accelerate", path=str(__import__("pathlib").Path(sys.executable).parent))
    out = tmp_path / "out"
    files = {"sentiment": ["train.csv", "validation.csv", "test.csv"], "nli": ["train.jsonl", "dev_matched.jsonl",
                                                                             "test.jsonl"]}[data]
    run_recipe(task, f"recipes/{task}/config.yaml", "--model_name_or_path", tiny_model, "--output_dir", out,
               "--train_file", demo_data / data / files[0], "--validation_file", demo_data / data / files[1],
               "--test_file", demo_data / data / files[2], "--num_train_epochs", "1", *FAST,
               launcher=[accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                         "--mixed_precision", "no", "--dynamo_backend", "no"])  # 2 CPU processes, gloo
    results = read_json(out / "all_results.json")
    assert results["predict_samples"] == 150 and results["eval_samples"] == 150
    # Written once, by the main process: one row per example, no duplicates from the second process.
    rows = read_jsonl(out / "predictions.jsonl")
    assert len(rows) == 150 and len({r["id"] for r in rows}) == 150
    # 150 does not divide by 2 x 64: the reported accuracy is that of the 150 written rows, each counted once.
    rows = read_jsonl(out / "validation_predictions.jsonl")
    assert len(rows) == 150 and len({r["id"] for r in rows}) == 150
    assert results["eval_accuracy"] == sum(r["predicted_label"] == r["label"] for r in rows) / 150
    train_size = {"sentiment": 600, "nli": 900}[data]
    assert read_json(out / "trainer_state.json")["global_step"] == -(-train_size // 32)  # 2 processes x 16 a step
