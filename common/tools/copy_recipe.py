"""Copy a recipe to a folder of its own, to adapt it to your data.

    python -m common.tools.copy_recipe ner ~/work/drug_ner

Copies recipes/<recipe>/ (run.py, config.yaml, README.md and any other file there), common/ (the shared code run.py imports,
found next to it) and requirements.txt, then prints what to edit next. The copy needs no install of
this project: `cd ~/work/drug_ner && python -m common.tools.demo_data demo_data && python run.py config.yaml`.
"""
import os
import shutil
import sys
from pathlib import Path

from common.errors import UserError, exits_cleanly

ROOT = Path(__file__).resolve().parents[2]  # the folder holding common/
RECIPE_FILE_TYPES = (".py", ".yaml", ".yml", ".json", ".md")  # not outputs/ or caches a user left there

# What to edit first, per recipe: columns in the config, the labels, and the one task-specific function.
NEXT_STEPS = {
    "text_classification": (
        "text_column_names (one column, or 'a,b' for pairs) and label_column_name",
        "found in your data (strings, ints, lists for multi-label, floats for regression); fix the set and "
        "its order with label_list",
        "classification.encoder (common/tasks/classification.py) if a row needs more than its text columns"),
    "nli": (
        "premise_column_name, hypothesis_column_name and label_column_name",
        "any names (entailment/neutral/contradiction or yes/no); label_list fixes their order",
        "classification.encoder (common/tasks/classification.py) if a pair needs building from other columns"),
    "ner": (
        "text_column_name (word lists) and label_column_name (tag lists); CoNLL files: conll_tag_index",
        "the tags in your data (IOB1, IOB2 or BIOES, tag_scheme); label_list for integer tags",
        "tagging.window_encoder (common/tasks/tagging.py): how words become sub-token windows and labels"),
    "qa": (
        "question_column_name, context_column_name and answer_column_name ({text, answer_start}); "
        "SQuAD JSON files need no change",
        "none: answers are spans of the context; unanswerable questions switch on version_2_with_negative",
        "span_extraction.window_encoder (common/tasks/span_extraction.py): how a question and its context become windows"),
    "time_series_classification": (
        "series_column_name (a list per row, a list of lists when multivariate) or one column per time step, "
        "and label_column_name; or dataset_name: ucr/NAME, or .ts files",
        "found in your data (any names); label_list fixes the set and its order",
        "series_data.prepare (common/tasks/series_data.py): resampling to context_length and per-channel scaling"),
}


def recipes() -> list:
    """Recipes next to this common/ (none in a copy, which holds one recipe and no recipes/ folder)."""
    folder = ROOT / "recipes"
    return sorted(p.name for p in folder.iterdir() if (p / "run.py").is_file()) if folder.is_dir() else []


def copy(recipe: str, dest: str) -> Path:
    """Copies the recipe; refuses an unknown recipe or a destination that already holds files."""
    known = recipes()
    if not known:
        raise UserError(f"no recipes/ folder next to {ROOT / 'common'}: run this from a clone of the repository")
    if recipe not in known:
        raise UserError(f"unknown recipe '{recipe}'; choose one of: {', '.join(known)}")
    dest = Path(dest).expanduser()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise UserError(f"{dest} already exists and is not empty; choose a new folder")
    dest.mkdir(parents=True, exist_ok=True)
    for source in sorted((ROOT / "recipes" / recipe).iterdir()):
        name = source.name
        if source.is_file() and source.suffix in RECIPE_FILE_TYPES:  # paths in docs and comments as in the copy
            text = source.read_text(encoding="utf-8").replace(f"recipes/{recipe}/", "")
            (dest / name).write_text(text, encoding="utf-8")
            shutil.copymode(source, dest / name)
    shutil.copytree(ROOT / "common", dest / "common", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    if (ROOT / "requirements.txt").is_file():
        shutil.copy2(ROOT / "requirements.txt", dest / "requirements.txt")
    return dest


def next_steps(recipe: str, dest: Path) -> str:
    columns, labels, function = NEXT_STEPS.get(recipe, ("the data columns", "the label set", "run.py"))
    shown = os.path.relpath(dest) if not os.path.relpath(dest).startswith("..") else str(dest)
    return "\n".join([
        f"copied recipe '{recipe}' to {shown}/ ({', '.join(sorted(p.name + '/' * p.is_dir() for p in dest.iterdir()))})",
        "try it on the demo data first:",
        f"    cd {shown} && python -m common.tools.demo_data demo_data && python run.py config.yaml",
        "then edit:",
        "  1. config.yaml, data: train_file / validation_file / test_file (csv, tsv, json, jsonl, parquet) "
        f"and the columns: {columns}",
        f"  2. labels: {labels}",
        f"  3. the task-specific function, if your data needs it: {function}",
        "and run again: python run.py config.yaml  (flags after the file override it)"])


@exits_cleanly
def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0].startswith("-"):
        raise UserError(f"usage: python -m common.tools.copy_recipe RECIPE DEST (recipes: {', '.join(recipes())})")
    dest = copy(*argv)
    print(next_steps(argv[0], dest))


if __name__ == "__main__":
    main()
