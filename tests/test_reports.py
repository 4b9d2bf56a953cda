"""The plots' contents. Every recipe's plots, model card and TensorBoard logs after a real run are checked
in test_copy_recipe.py (and pipeline() loading a folder with its card in test_readme_commands.py)."""
from matplotlib.figure import Figure

from common import reports
from common.tasks import classification, span_extraction, squad
from conftest import assert_valid_png


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
    span_extraction.draw_qa_scores_by_answer_length(figure, predictions, golds, squad.exact_match, squad.f1)
    axes = figure.axes[0]
    groups = [label.get_text().split("\n")[0] for label in axes.get_xticklabels()]
    assert groups == ["1 word", "3 words", "6+ words", "no answer", "all"]
    exact_bars = axes.containers[0]
    assert [round(bar.get_height()) for bar in exact_bars] == [100, 0, 0, 100, 50]
    reports.task_plot(str(tmp_path), "validation", "qa", lambda f: span_extraction.draw_qa_scores_by_answer_length(
        f, predictions, golds, squad.exact_match, squad.f1))
    assert_valid_png(tmp_path / "validation_qa.png")


def test_confusion_matrix_counts_gold_rows_against_predicted_columns(tmp_path):
    reports.task_plot(str(tmp_path), "test", "confusion_matrix", lambda f: classification.draw_confusion_matrix(
        f, [0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 2, 0], ["billing", "delivery", "praise"]))
    assert_valid_png(tmp_path / "confusion_matrix.png")  # the test split's plot has no prefix
    figure = Figure()
    classification.draw_confusion_matrix(figure, [0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 2, 0], ["billing", "delivery", "praise"])
    cells = [t.get_text() for t in figure.axes[0].texts]
    assert cells[:3] == ["1\n50%", "1\n50%", "0\n0%"] and cells[-1] == "2\n67%"
    assert "accuracy 0.667" in figure.axes[0].get_title()


def test_a_failing_plot_is_reported_and_leaves_no_file(tmp_path, caplog):
    assert reports.task_plot(str(tmp_path), "validation", "broken", lambda f: 1 / 0) is None
    assert "validation_broken.png not written: ZeroDivisionError" in caplog.text and not list(tmp_path.iterdir())
