"""What a run shows a person: plots next to the metrics, a model card, TensorBoard logs."""
import glob

import yaml
from matplotlib.figure import Figure
from transformers import pipeline

from common import reports, squad
from conftest import assert_valid_png, read_json, run_recipe, write_csv

LABELS = ["billing", "delivery", "praise"]


def _tickets(n, offset=0):
    words = {"billing": "charged twice on my invoice", "delivery": "parcel arrived late", "praise": "great support"}
    return [{"ticket": f"{words[LABELS[i % 3]]} {i}", "team": LABELS[i % 3]} for i in range(offset, offset + n)]


def test_training_run_writes_plots_model_card_and_tensorboard_events(tiny_model, tmp_path):
    write_csv(tmp_path / "train.csv", _tickets(48))
    write_csv(tmp_path / "dev.csv", _tickets(12, 100))
    out = tmp_path / "out"
    run_recipe("text_classification", "recipes/text_classification/config.yaml", "--model_name_or_path", tiny_model,
               "--train_file", tmp_path / "train.csv", "--validation_file", tmp_path / "dev.csv", "--test_file",
               tmp_path / "dev.csv", "--text_column_names", "ticket", "--label_column_name", "team",
               "--output_dir", out, "--max_steps", "4", "--eval_strategy", "steps", "--eval_steps", "2",
               "--logging_steps", "1", "--save_strategy", "no", "--per_device_train_batch_size", "8",
               "--disable_tqdm", "true", "--report_to", "tensorboard")
    results = read_json(out / "all_results.json")
    for plot in ("learning_curve.png", "confusion_matrix.png", "validation_confusion_matrix.png"):
        assert_valid_png(out / plot)

    card = (out / "README.md").read_text()
    metadata = yaml.safe_load(card.split("---\n")[1])
    assert metadata["library_name"] == "transformers" and metadata["pipeline_tag"] == "text-classification"
    assert metadata["metrics"] == ["accuracy"] and "text_classification" in metadata["tags"]
    assert all(f"| `{name}` |" in card for name in results), "every result of all_results.json is in the card"
    assert "--report_to tensorboard" in card and str(tmp_path / "train.csv") in card  # the command, the data
    assert (out / "run_config.yaml").read_text().strip() in card
    assert "![learning_curve](learning_curve.png)" in card
    # The card does not get in the way of loading the folder.
    assert pipeline("text-classification", model=str(out))("parcel arrived late")[0]["label"] in LABELS

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = glob.glob(str(out / "runs" / "*" / "events.out.tfevents.*"))
    assert events, "--report_to tensorboard writes under output_dir/runs/"
    logged = EventAccumulator(events[0]).Reload().Tags()["scalars"]
    assert "train/loss" in logged and "eval/accuracy" in logged


def test_learning_curve_of_a_run_that_logged_nothing_still_draws(tmp_path):
    path = tmp_path / "curve.png"
    figure = Figure(figsize=(10, 4))
    reports.draw_learning_curve(figure, [{"step": 3, "train_runtime": 1.0}], "accuracy", {"eval_accuracy": 0.5})
    figure.savefig(path)
    assert_valid_png(path)


def test_qa_plot_groups_by_answer_length_and_unanswerable(tmp_path):
    golds = {"a": ["Paris"], "b": ["New York City"], "c": [], "d": ["the old market square near the river bank"]}
    predictions = {"a": "Paris", "b": "New York", "c": "", "d": "market"}
    figure = Figure()
    reports.draw_qa_scores_by_answer_length(figure, predictions, golds, squad.exact_match, squad.f1)
    axes = figure.axes[0]
    groups = [label.get_text().split("\n")[0] for label in axes.get_xticklabels()]
    assert groups == ["1 word", "3 words", "6+ words", "no answer", "all"]
    exact_bars = axes.containers[0]
    assert [round(bar.get_height()) for bar in exact_bars] == [100, 0, 0, 100, 50]
    reports.task_plot(str(tmp_path), "validation", "qa", lambda f: reports.draw_qa_scores_by_answer_length(
        f, predictions, golds, squad.exact_match, squad.f1))
    assert_valid_png(tmp_path / "validation_qa.png")
