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

from common import artifacts, modeling
from common.args import RUN_FINISHED_MARKER, RESOLVED_CONFIG_NAME

logger = logging.getLogger(__name__)

LEARNING_CURVE = "learning_curve.png"
MODEL_CARD = "README.md"
# Hub id of the packaged default model (common.modeling.default_model_path), for the card's base_model.
DEFAULT_BASE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
PIPELINE_TAGS = {"ForSequenceClassification": "text-classification", "ForTokenClassification": "token-classification",
                 "ForQuestionAnswering": "question-answering"}


def plot_path(output_dir, split, what):
    """<output_dir>/<what>.png for the test split (or none), <split>_<what>.png otherwise (as predictions.jsonl)."""
    return artifacts.split_file(output_dir, split, f"{what}.png")


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

def finish(trainer, cfg, all_results, usage=None):
    """The learning curve and the model card of a training run; main process only, before the finished marker.
    usage(model_dir) -> Python code: the task's "Use it" snippet for the card."""
    output_dir = cfg.training.output_dir
    task_plot(output_dir, None, "learning_curve",
              lambda figure: draw_learning_curve(figure, trainer.state.log_history, cfg.training.metric_for_best_model,
                                                 all_results), size=(10, 4))
    artifacts.write_text(os.path.join(output_dir, MODEL_CARD), model_card(trainer, cfg, all_results, usage))


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


# ---- for the tasks' plots (each task module draws its own) ----

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


# ---- the model card ----

def model_card(trainer, cfg, all_results, usage=None) -> str:
    """README.md for the output directory, in the shape of Trainer.create_model_card: YAML metadata for a
    hub, then what was trained on what, how, the results, the plots and how to load it."""
    output_dir = cfg.training.output_dir
    model_name = cfg.model.model_name_or_path
    model = trainer.model.get_base_model() if hasattr(trainer.model, "get_base_model") else trainer.model  # LoRA
    # No model given: the packaged default, or a recipe's own new model (time series: PatchTST).
    start = model_name or (DEFAULT_BASE_MODEL if modeling.is_packaged_default(model.name_or_path) else None)
    base_model = None if start is None or os.path.isdir(start) else start
    architecture = type(model).__name__
    pipeline_tag = next((tag for suffix, tag in PIPELINE_TAGS.items() if architecture.endswith(suffix)), None)
    recipe = os.path.basename(os.path.dirname(os.path.abspath(sys.argv[0])))
    main_metric = cfg.training.metric_for_best_model
    metadata = {"library_name": "transformers", "base_model": base_model, "pipeline_tag": pipeline_tag,
                "tags": ["generated_from_trainer", "fine-tuning-recipes", recipe],
                "datasets": [cfg.data.dataset_name] if cfg.data.dataset_name else None,
                "metrics": [main_metric.removeprefix("eval_")] if main_metric else None}
    metadata = {key: value for key, value in metadata.items() if value is not None}  # a hub reads no nulls
    resolved = os.path.join(output_dir, RESOLVED_CONFIG_NAME)
    config_text = Path(resolved).read_text() if os.path.exists(resolved) else ""
    plots = sorted(f for f in os.listdir(output_dir) if f.endswith(".png"))
    sections = [
        "---\n" + yaml.safe_dump(metadata, sort_keys=False) + "---",
        f"# {os.path.basename(os.path.abspath(output_dir))}",
        (f"Fine-tuned from `{start}`" if start else "Trained from a new model")
        + f" ({architecture}) by the `{recipe}` recipe of fine-tuning-recipes, with the Hugging Face `Trainer`.",
        "## Data\n\n" + _data_lines(cfg.data, all_results),
        "## Results\n\n" + _results_table(all_results) + f"\n\nThe same numbers are in `{RUN_FINISHED_MARKER}`.",
        *(["## Plots\n\n" + "\n".join(f"![{p[:-4]}]({p})" for p in plots)] if plots else []),
        "## Command\n\n```bash\n" + _command(trainer) + "\n```",
        f"## Configuration (`{RESOLVED_CONFIG_NAME}`: rerun with `run.py {RESOLVED_CONFIG_NAME}`)\n\n"
        f"```yaml\n{config_text.rstrip()}\n```",
        "## Use it\n\n" + _usage(usage, architecture, output_dir) + _own_code_note(model.config),
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


def _usage(usage, architecture, output_dir):
    """The task's snippet (usage(model_dir) -> code, handed in by the recipe), else the model class itself."""
    model = output_dir  # as given on the command line; after pushing the folder to a hub, its repository id
    body = usage(model) if usage else (f"from transformers import {architecture}\n\n"
                                       f"model = {architecture}.from_pretrained({model!r})")
    return f"```python\n{body}\n```"


def _own_code_note(config) -> str:
    """A model saved with its own code (config.json's auto_map, e.g. --classifier_pooling mean) loads in plain
    transformers only when that code may run."""
    if not getattr(config, "auto_map", None):
        return ""
    return ("\n\nThis model saves its own code beside the weights (config.json's `auto_map`): pass "
            "`trust_remote_code=True` to `pipeline()` or `from_pretrained()`.")


def _versions():
    import datasets
    import torch
    import transformers
    return "\n".join(f"- {m.__name__} {m.__version__}" for m in (transformers, torch, datasets))
