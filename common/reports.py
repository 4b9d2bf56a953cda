"""What a finished run shows a person without reading logs: plots next to the metrics, and a model card.

    learning_curve.png       training loss, evaluation loss and the main metric against steps (every run)
    README.md                the model card: data, command, resolved config, results, how to load it
    <split>_<what>.png       task plots, drawn by the recipes' prediction writers (no prefix for test):
                             confusion_matrix (classification, NLI), entity_scores (NER),
                             scores_by_answer_length (QA), examples (time series)

A recipe adds its own plot with `task_plot(output_dir, split, "examples", draw)`, where draw(figure)
fills a matplotlib Figure; called from a prediction writer, it runs on the main process only.
Figures are built without pyplot, so nothing here touches a global backend or leaks open figures.
"""
import logging
import os
import shlex
import sys
from pathlib import Path

import matplotlib.style
import numpy as np
import yaml
from matplotlib.figure import Figure

from common import artifacts
from common.args import FINISHED_MARKER, RESOLVED_CONFIG_NAME
from common.data import TEST

logger = logging.getLogger(__name__)

LEARNING_CURVE = "learning_curve.png"
MODEL_CARD = "README.md"
# Hub id of the packaged default model (common.modeling.default_model_path), for the card's base_model.
DEFAULT_BASE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
PIPELINE_TAGS = {"ForSequenceClassification": "text-classification", "ForTokenClassification": "token-classification",
                 "ForQuestionAnswering": "question-answering"}


def plot_path(output_dir, split, what):
    """<output_dir>/<what>.png for the test split (or none), <split>_<what>.png otherwise (as predictions.jsonl)."""
    return os.path.join(output_dir, f"{what}.png" if split in (TEST, None) else f"{split}_{what}.png")


def task_plot(output_dir, split, what, draw, size=(6.4, 4.8)):
    """Draws one plot with draw(figure) and saves it atomically. A plot that fails is reported and skipped:
    it must not cost the user a finished training run."""
    path = plot_path(output_dir, split, what)
    try:
        with matplotlib.style.context("default"):  # not a style another library left set (optuna's plots)
            figure = Figure(figsize=size)
            draw(figure)
            artifacts.save_figure(figure, path)
        return path
    except Exception as err:  # noqa: BLE001  (any plotting error: the run's results still stand)
        logger.warning("plot %s not written: %s: %s", path, type(err).__name__, err)
        return None


# ---- every run ----

def finish(trainer, cfg, all_results):
    """The learning curve and the model card of a training run; main process only, before the finished marker."""
    output_dir = cfg.training.output_dir
    task_plot(output_dir, None, "learning_curve",
              lambda figure: draw_learning_curve(figure, trainer.state.log_history, cfg.training.metric_for_best_model,
                                                 all_results), size=(10, 4))
    artifacts.write_text(os.path.join(output_dir, MODEL_CARD), model_card(trainer, cfg, all_results))


def draw_learning_curve(figure, log_history, main_metric, final_results=None):
    """Left: training and evaluation loss against steps; right: the main evaluation metric. The final
    evaluation (from all_results) is marked at the last step, so a short run still shows its result."""
    main_key = f"eval_{main_metric}" if main_metric and not main_metric.startswith("eval_") else main_metric
    train = [(e["step"], e["loss"]) for e in log_history if "loss" in e]
    evals = [(e["step"], e["eval_loss"]) for e in log_history if "eval_loss" in e]
    metric = [(e["step"], e[main_key]) for e in log_history if main_key in e]
    last_step = max([e.get("step", 0) for e in log_history] or [0])
    final_results = final_results or {}
    loss_axes, metric_axes = figure.subplots(1, 2)
    for points, label, style, color in ((train, "training loss", ".-", "tab:blue"),
                                        (evals, "evaluation loss", "o-", "tab:orange")):
        if points:
            loss_axes.plot(*zip(*points), style, color=color, label=label)
    if not train and "train_loss" in final_results:  # fewer steps than --logging_steps: the run's mean
        loss_axes.axhline(final_results["train_loss"], color="tab:blue", linestyle="--",
                          label="training loss, mean of the run")
    if "eval_loss" in final_results:
        loss_axes.plot([last_step], [final_results["eval_loss"]], "k*", markersize=10, label="final evaluation")
    if metric:
        metric_axes.plot(*zip(*metric), "o-", color="tab:green", label=main_key)
    if main_key in final_results:
        metric_axes.plot([last_step], [final_results[main_key]], "k*", markersize=10, label="final evaluation")
    for axes, title in ((loss_axes, "loss"), (metric_axes, main_key or "main metric")):
        axes.set_xlabel("step")
        axes.set_title(title)
        axes.grid(alpha=0.3)
        if axes.lines:
            axes.legend()
        else:
            axes.text(0.5, 0.5, "nothing logged\n(lower --logging_steps / set --eval_strategy)",
                      ha="center", va="center", transform=axes.transAxes)
    figure.suptitle(f"{last_step} training steps")


# ---- task plots, called by the prediction writers ----

def confusion_matrix_plot(output_dir, split, gold_ids, predicted_ids, names):
    """<split>_confusion_matrix.png, sized to the number of labels."""
    n = len(names)
    return task_plot(output_dir, split, "confusion_matrix", lambda figure: draw_confusion_matrix(
        figure, gold_ids, predicted_ids, names), size=(4 + 0.5 * n, 3 + 0.5 * n))


def draw_confusion_matrix(figure, gold_ids, predicted_ids, names):
    """Counts, gold labels as rows; each cell also shows its share of the row (recall on the diagonal)."""
    n = len(names)
    counts = np.zeros((n, n), dtype=int)
    np.add.at(counts, (np.asarray(gold_ids, dtype=int), np.asarray(predicted_ids, dtype=int)), 1)
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    axes = figure.subplots()
    image = axes.imshow(share, cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=axes, label="share of the gold label's rows")
    if n <= 30:  # beyond that, the numbers would not be readable
        for i in range(n):
            for j in range(n):
                axes.text(j, i, f"{counts[i, j]}\n{share[i, j]:.0%}", ha="center", va="center", fontsize=8,
                          color="white" if share[i, j] > 0.5 else "black")
    axes.set_xticks(range(n), names, rotation=45, ha="right")
    axes.set_yticks(range(n), names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("gold")
    accuracy = np.trace(counts) / max(counts.sum(), 1)
    axes.set_title(f"confusion matrix ({counts.sum()} examples, accuracy {accuracy:.3f})")


def draw_grouped_bars(figure, groups, series, title, ylabel, ylim=None):
    """Bars of several scores per group. groups: labels; series: {name: [value per group]}."""
    axes = figure.subplots()
    width = 0.8 / max(len(series), 1)
    for k, (name, values) in enumerate(series.items()):
        bars = axes.bar(np.arange(len(groups)) + (k - (len(series) - 1) / 2) * width, values, width, label=name)
        axes.bar_label(bars, fmt="%.2f", fontsize=7)
    axes.set_xticks(range(len(groups)), groups, rotation=30 if len(groups) > 6 else 0)
    axes.set_ylabel(ylabel)
    if ylim:
        axes.set_ylim(*ylim)
    axes.set_title(title)
    axes.legend()


def draw_entity_scores(figure, scores, types):
    """Per entity type precision/recall/F1 from common.tasks.tagging.entity_scores (support in the labels)."""
    groups = [f"{t}\n(n={int(scores.get(f'{t}_support', 0))})" for t in types] + ["all"]
    series = {name: [scores.get(f"{t}_{name}", 0.0) for t in types] + [scores[name]]
              for name in ("precision", "recall", "f1")}
    draw_grouped_bars(figure, groups, series, "entity-level scores (seqeval, strict)", "score", (0, 1.05))


ANSWER_LENGTHS = ((1, 1, "1 word"), (2, 2, "2 words"), (3, 3, "3 words"), (4, 5, "4-5 words"), (6, 10 ** 9, "6+ words"))


def draw_qa_scores_by_answer_length(figure, predictions, golds, exact_match, f1):
    """EM and F1 (percent) by the length of the first gold answer; unanswerable questions (SQuAD v2.0)
    form their own "no answer" group, so the HasAns/NoAns split is visible too."""
    from common.tasks.squad import normalize_answer
    buckets = {}
    for qid, gold_texts in golds.items():
        gold_texts = [g for g in gold_texts if normalize_answer(g)]
        words = len(normalize_answer(gold_texts[0]).split()) if gold_texts else 0
        name = "no answer" if not gold_texts else next(
            label for low, high, label in ANSWER_LENGTHS if low <= words <= high)
        targets = gold_texts or [""]
        buckets.setdefault(name, []).append((max(exact_match(predictions[qid], g) for g in targets),
                                             max(f1(predictions[qid], g) for g in targets)))
    buckets["all"] = [score for scores in list(buckets.values()) for score in scores]
    order = [label for _, _, label in ANSWER_LENGTHS] + ["no answer", "all"]
    names = [n for n in order if n in buckets]
    groups = [f"{n}\n(n={len(buckets[n])})" for n in names]
    series = {"exact match": [100 * np.mean([em for em, _ in buckets[n]]) for n in names],
              "F1": [100 * np.mean([f for _, f in buckets[n]]) for n in names]}
    draw_grouped_bars(figure, groups, series, "scores by gold answer length", "percent", (0, 105))


# ---- the model card ----

def model_card(trainer, cfg, all_results) -> str:
    """README.md for the output directory, in the shape of Trainer.create_model_card: YAML metadata for a
    hub, then what was trained on what, how, the results, the plots and how to load it."""
    output_dir = cfg.training.output_dir
    model_name = cfg.model.model_name_or_path
    model = trainer.model.get_base_model() if hasattr(trainer.model, "get_base_model") else trainer.model  # LoRA
    # No model given: the packaged default (a BERT), or a recipe's own new model (time series: PatchTST).
    start = model_name or (DEFAULT_BASE_MODEL if model.config.model_type == "bert" else None)
    base_model = None if start is None or os.path.isdir(start) else start
    architecture = type(model).__name__
    pipeline_tag = next((tag for suffix, tag in PIPELINE_TAGS.items() if architecture.endswith(suffix)), None)
    recipe = os.path.basename(os.path.dirname(os.path.abspath(sys.argv[0])))
    main_metric = cfg.training.metric_for_best_model
    metadata = {"library_name": "transformers", **({"base_model": base_model} if base_model else {}),
                **({"pipeline_tag": pipeline_tag} if pipeline_tag else {}),
                "tags": ["generated_from_trainer", "fine-tuning-recipes", recipe],
                **({"datasets": [cfg.data.dataset_name]} if cfg.data.dataset_name else {}),
                **({"metrics": [main_metric.removeprefix("eval_")]} if main_metric else {})}
    resolved = os.path.join(output_dir, RESOLVED_CONFIG_NAME)
    config_text = Path(resolved).read_text() if os.path.exists(resolved) else ""
    plots = sorted(f for f in os.listdir(output_dir) if f.endswith(".png"))
    sections = [
        "---\n" + yaml.safe_dump(metadata, sort_keys=False) + "---",
        f"# {os.path.basename(os.path.abspath(output_dir))}",
        (f"Fine-tuned from `{start}`" if start else "Trained from a new model")
        + f" ({architecture}) by the `{recipe}` recipe of fine-tuning-recipes, with the Hugging Face `Trainer`.",
        "## Data\n\n" + _data_lines(cfg.data, all_results),
        "## Results\n\n" + _results_table(all_results) + f"\n\nThe same numbers are in `{FINISHED_MARKER}`.",
        *(["## Plots\n\n" + "\n".join(f"![{p[:-4]}]({p})" for p in plots)] if plots else []),
        "## Command\n\n```bash\n" + _command(trainer) + "\n```",
        f"## Configuration (`{RESOLVED_CONFIG_NAME}`: rerun with `run.py {RESOLVED_CONFIG_NAME}`)\n\n"
        f"```yaml\n{config_text.rstrip()}\n```",
        "## Use it\n\n" + _usage(pipeline_tag, architecture, output_dir),
        "## Framework versions\n\n" + _versions(),
    ]
    return "\n\n".join(sections) + "\n"


def _data_lines(data, results):
    lines = []
    if data.dataset_name:
        config = f" (`{data.dataset_config_name}`)" if data.dataset_config_name else ""
        lines.append(f"- dataset: `{data.dataset_name}`{config}")
    for flag in ("train_file", "validation_file", "test_file"):
        value = getattr(data, flag)
        if value:
            lines.append(f"- {flag}: " + ", ".join(f"`{v}`" for v in (value if isinstance(value, list) else [value])))
    counts = {k: v for k, v in results.items() if k.endswith("_samples") and not k.endswith("per_second")}
    if counts:
        lines.append("- examples: " + ", ".join(f"{k.removesuffix('_samples')} {v}" for k, v in counts.items()))
    return "\n".join(lines) or "- (none recorded)"


def _results_table(results):
    rows = [f"| `{k}` | {round(v, 4) if isinstance(v, float) else v} |" for k, v in results.items()]
    return "| metric | value |\n|---|---|\n" + "\n".join(rows)


def _command(trainer):
    script = os.path.relpath(sys.argv[0]) if not os.path.relpath(sys.argv[0]).startswith("..") else sys.argv[0]
    launcher = (["accelerate", "launch", "--num_processes", str(trainer.args.world_size)]
                if trainer.args.world_size > 1 else ["python"])
    return shlex.join([*launcher, script, *sys.argv[1:]])


def _usage(pipeline_tag, architecture, output_dir):
    model = output_dir  # as given on the command line; after pushing the folder to a hub, its repository id
    if pipeline_tag == "question-answering":  # transformers 5 has no question-answering pipeline
        body = (f"from common.tasks.span_extraction import answer  # from the recipe's common/ folder\n"
                f"print(answer({model!r}, [\"Who wrote it?\"], [\"It was written by Ada.\"]))")
    elif pipeline_tag == "token-classification":
        body = (f"from transformers import pipeline\n\ntag = pipeline(\"token-classification\", model={model!r}, "
                f"aggregation_strategy=\"simple\")\nprint(tag(\"Anna moved to Paris.\"))")
    elif pipeline_tag == "text-classification":
        body = (f"from transformers import pipeline\n\nclassify = pipeline(\"text-classification\", model={model!r})\n"
                f"print(classify(\"a text\"))  # a pair: classify({{\"text\": a, \"text_pair\": b}})")
    else:
        body = f"from transformers import {architecture}\n\nmodel = {architecture}.from_pretrained({model!r})"
    return f"```python\n{body}\n```"


def _versions():
    import datasets
    import torch
    import transformers
    return "\n".join(f"- {m.__name__} {m.__version__}" for m in (transformers, torch, datasets))


def draw_series_examples(figure, series, gold, predicted, names, per_class=3):
    """A few series of each gold class (one row of panels per class; every channel drawn), titled with the
    predicted label: green when right, red when wrong."""
    shown = [[i for i, g in enumerate(gold) if g == name][:per_class] for name in names]
    shown = [(name, rows) for name, rows in zip(names, shown) if rows][:8]  # beyond 8 classes: the first 8
    grid = figure.subplots(len(shown), per_class, squeeze=False, sharex=True)
    for (name, rows), axes_row in zip(shown, grid):
        axes_row[0].set_ylabel(f"gold: {name}", fontsize=8)
        for axes, i in zip(axes_row, rows + [None] * (per_class - len(rows))):
            if i is None:
                axes.axis("off")
                continue
            for channel in np.atleast_2d(np.asarray(series[i], dtype=float)):
                axes.plot(channel, linewidth=0.8)
            axes.set_title(f"predicted: {predicted[i]}", fontsize=8,
                           color="tab:green" if predicted[i] == name else "tab:red")
            axes.tick_params(labelsize=6)
    figure.suptitle(f"examples per class ({len(gold)} series)")
